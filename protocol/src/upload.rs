//! Store-and-forward upload to the chain's collector: the batch a box posts (a run of its
//! event log, `first_seq..=last_seq`, no gaps) and the acknowledgement it gets back.
//!
//! On the wire a batch is postcard (`application/x-orderd-batch`); its `events` field holds
//! the postcard encoding of the events, LZ4-compressed when `compression` says so. JSON
//! (`application/json`, [`JsonBatch`]) is the documented alternative, with the events inline.
//! The collector answers [`Ack`] in the request's encoding.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Media type of a postcard batch and of its postcard acknowledgement.
pub const POSTCARD_MEDIA_TYPE: &str = "application/x-orderd-batch";

/// How a batch's `events` bytes are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Plain postcard.
    #[default]
    None,
    /// LZ4 block format, uncompressed size prepended (little-endian u32).
    Lz4,
}

/// A postcard batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// [`crate::FORMAT_VERSION`] when written.
    pub format_version: u16,
    /// The restaurant (site) id.
    pub site_id: String,
    /// The box's id within the site.
    pub box_id: String,
    /// Seq of the first event.
    pub first_seq: u64,
    /// Seq of the last event.
    pub last_seq: u64,
    /// How `events` is compressed.
    pub compression: Compression,
    /// postcard of `Vec<Event>`, compressed per `compression`.
    #[serde(with = "crate::encoding::bytes")]
    pub events: Vec<u8>,
}

/// A JSON batch: the same fields with the events inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonBatch {
    /// [`crate::FORMAT_VERSION`] when written.
    pub format_version: u16,
    /// The restaurant (site) id.
    pub site_id: String,
    /// The box's id within the site.
    pub box_id: String,
    /// Seq of the first event.
    pub first_seq: u64,
    /// Seq of the last event.
    pub last_seq: u64,
    /// The events, in seq order.
    pub events: Vec<Event>,
}

/// The collector's answer: everything up to and including `acked_seq` is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The highest seq stored for the site.
    pub acked_seq: u64,
}

/// Why a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Not valid postcard / LZ4 / JSON.
    Malformed,
    /// An unknown format version.
    Version(u16),
    /// `first_seq..=last_seq` does not match the events (count, order, gaps).
    Inconsistent,
}

impl core::fmt::Display for BatchError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Malformed => f.write_str("the batch could not be decoded"),
            Self::Version(v) => write!(f, "unknown batch format version {v}"),
            Self::Inconsistent => {
                f.write_str("the events do not run without gaps from first_seq to last_seq")
            }
        }
    }
}

impl core::error::Error for BatchError {}

/// Checks that `events` run `first..=last` without a gap.
fn consistent(events: &[Event], first: u64, last: u64) -> Result<(), BatchError> {
    let runs = !events.is_empty()
        && events.first().map(|e| e.seq) == Some(first)
        && events.last().map(|e| e.seq) == Some(last)
        && events.windows(2).all(|w| w[1].seq == w[0].seq + 1);
    if runs {
        Ok(())
    } else {
        Err(BatchError::Inconsistent)
    }
}

impl Batch {
    /// A batch of consecutive events (at least one).
    pub fn new(
        site_id: &str,
        box_id: &str,
        events: &[Event],
        compression: Compression,
    ) -> Result<Self, BatchError> {
        let first_seq = events.first().ok_or(BatchError::Inconsistent)?.seq;
        let last_seq = events.last().ok_or(BatchError::Inconsistent)?.seq;
        consistent(events, first_seq, last_seq)?;
        let plain = postcard::to_allocvec(events).map_err(|_| BatchError::Malformed)?;
        Ok(Self::from_plain(
            site_id,
            box_id,
            (first_seq, last_seq),
            &plain,
            compression,
        ))
    }

    /// A batch from the postcard encoding of its events (`Vec<Event>`: the count as a varint,
    /// then each event's encoding), for a caller that already encoded them one by one. The
    /// caller vouches that they run `seqs.0..=seqs.1`; the collector checks it.
    pub fn from_plain(
        site_id: &str,
        box_id: &str,
        seqs: (u64, u64),
        plain: &[u8],
        compression: Compression,
    ) -> Self {
        let events = match compression {
            Compression::None => plain.to_vec(),
            Compression::Lz4 => lz4_flex::block::compress_prepend_size(plain),
        };
        Self {
            format_version: crate::FORMAT_VERSION,
            site_id: site_id.into(),
            box_id: box_id.into(),
            first_seq: seqs.0,
            last_seq: seqs.1,
            compression,
            events,
        }
    }

    /// The events, checked against `first_seq..=last_seq`. A decompressed size above
    /// `max_bytes` is refused before it is allocated.
    pub fn events(&self, max_bytes: usize) -> Result<Vec<Event>, BatchError> {
        if self.format_version != crate::FORMAT_VERSION {
            return Err(BatchError::Version(self.format_version));
        }
        let events: Vec<Event> = match self.compression {
            Compression::None => {
                postcard::from_bytes(&self.events).map_err(|_| BatchError::Malformed)?
            }
            Compression::Lz4 => {
                let size = self
                    .events
                    .get(..4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    .ok_or(BatchError::Malformed)?;
                if size > max_bytes {
                    return Err(BatchError::Malformed);
                }
                let plain = lz4_flex::block::decompress_size_prepended(&self.events)
                    .map_err(|_| BatchError::Malformed)?;
                postcard::from_bytes(&plain).map_err(|_| BatchError::Malformed)?
            }
        };
        consistent(&events, self.first_seq, self.last_seq)?;
        Ok(events)
    }
}

impl JsonBatch {
    /// The events, checked against the version and `first_seq..=last_seq`.
    pub fn check(&self) -> Result<(), BatchError> {
        if self.format_version != crate::FORMAT_VERSION {
            return Err(BatchError::Version(self.format_version));
        }
        consistent(&self.events, self.first_seq, self.last_seq)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;
    use crate::event::EventKind;

    fn ev(seq: u64) -> Event {
        Event {
            version: crate::FORMAT_VERSION,
            seq,
            at: 1_700_000_000_000,
            kind: EventKind::SoldOut {
                item_id: "burger".to_string(),
            },
        }
    }

    #[test]
    fn batches_round_trip_plain_and_compressed() {
        let events = vec![ev(5), ev(6), ev(7)];
        for c in [Compression::None, Compression::Lz4] {
            let b = Batch::new("s1", "box1", &events, c).unwrap();
            let bytes = postcard::to_allocvec(&b).unwrap();
            let back: Batch = postcard::from_bytes(&bytes).unwrap();
            assert_eq!(back, b);
            assert_eq!(back.events(1 << 20).unwrap(), events);
            assert_eq!((back.first_seq, back.last_seq), (5, 7));
        }
    }

    #[test]
    fn events_encoded_one_by_one_make_the_same_batch() {
        let events = vec![ev(5), ev(6)];
        let mut plain = postcard::to_allocvec(&events.len()).unwrap();
        for e in &events {
            plain.extend(postcard::to_allocvec(e).unwrap());
        }
        for c in [Compression::None, Compression::Lz4] {
            assert_eq!(
                Batch::from_plain("s", "b", (5, 6), &plain, c),
                Batch::new("s", "b", &events, c).unwrap()
            );
        }
    }

    #[test]
    fn gaps_versions_and_bombs_are_refused() {
        assert_eq!(
            Batch::new("s", "b", &[ev(1), ev(3)], Compression::None),
            Err(BatchError::Inconsistent)
        );
        let mut b = Batch::new("s", "b", &[ev(1), ev(2)], Compression::None).unwrap();
        b.last_seq = 3;
        assert_eq!(b.events(1 << 20), Err(BatchError::Inconsistent));
        b.last_seq = 2;
        b.format_version = 99;
        assert_eq!(b.events(1 << 20), Err(BatchError::Version(99)));
        let big = Batch::new("s", "b", &[ev(1)], Compression::Lz4).unwrap();
        assert_eq!(
            big.events(4),
            Err(BatchError::Malformed),
            "size checked first"
        );
        let mut junk = big.clone();
        junk.events = vec![1, 0, 0, 0, 0xff];
        assert_eq!(junk.events(1 << 20), Err(BatchError::Malformed));
    }

    #[test]
    fn golden_bytes() {
        // Do not update these vectors; add a new FORMAT_VERSION instead.
        let b = Batch::new("s1", "b1", &[ev(1)], Compression::None).unwrap();
        let bytes = postcard::to_allocvec(&b).unwrap();
        let mut golden = vec![1u8, 2, b's', b'1', 2, b'b', b'1', 1, 1, 0];
        let inner = postcard::to_allocvec(&vec![ev(1)]).unwrap();
        golden.push(inner.len() as u8);
        golden.extend_from_slice(&inner);
        assert_eq!(bytes, golden);
        assert_eq!(
            inner,
            [
                1, 1, 1, 128, 208, 149, 255, 188, 49, 4, 6, b'b', b'u', b'r', b'g', b'e', b'r'
            ]
        );
        assert_eq!(
            postcard::to_allocvec(&Ack { acked_seq: 300 }).unwrap(),
            [172, 2]
        );
        assert_eq!(
            serde_json::to_string(&Ack { acked_seq: 300 }).unwrap(),
            r#"{"acked_seq":300}"#
        );
        let j = JsonBatch {
            format_version: 1,
            site_id: "s1".into(),
            box_id: "b1".into(),
            first_seq: 1,
            last_seq: 1,
            events: vec![ev(1)],
        };
        assert_eq!(
            serde_json::to_string(&j).unwrap(),
            r#"{"format_version":1,"site_id":"s1","box_id":"b1","first_seq":1,"last_seq":1,"events":[{"version":1,"seq":1,"at":1700000000000,"kind":{"sold_out":{"item_id":"burger"}}}]}"#
        );
    }
}
