//! The write-ahead log: what makes a batch durable between redb checkpoints.
//!
//! redb's copy-on-write commit writes every page on the path to each changed row (about 20
//! scattered pages for an order) before its `fsync`, which costs several times a one-page
//! `fsync`. So the writer commits most batches to redb *without* an fsync
//! (`Durability::None`: visible at once, but rolled back by a crash) and makes them durable by
//! appending the batch's row changes to this log with one small `fdatasync`. Every so often it
//! commits a batch with `Durability::Immediate` — a checkpoint, after which the log starts over.
//! After a crash, redb reopens at its last checkpoint and [`Wal::recover`] returns the batches
//! logged since, which [`super::Store::open`] replays before anything else runs.
//!
//! Record: `len u32 | crc32 u32 | seq u64 | payload`, little endian; the CRC covers seq and
//! payload. Records are written at increasing offsets of a file that is zero-filled ahead of
//! the writes (so an `fdatasync` never also journals block allocation) and reused from offset 0
//! after each checkpoint. Reading stops at the first record that is torn, corrupt or out of
//! sequence; records older than the checkpoint are skipped by seq.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A logged batch: its seq and its op log.
pub type Record = (u64, Vec<u8>);

const HEADER: usize = 16;
/// The file is zero-filled ahead of writes in steps of this size.
const GROW_STEP: u64 = 1024 * 1024;
/// Largest record accepted (a batch of 4096 big orders fits).
const MAX_RECORD: usize = 64 * 1024 * 1024;

/// The file under the log: the data directory's `orderd.wal`, or (in the crash tests) a
/// simulated disk that loses what was not synced.
pub trait LogFile: Send + std::fmt::Debug {
    /// The file's length in bytes.
    fn byte_len(&self) -> io::Result<u64>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes what was written durable.
    fn sync_data(&self) -> io::Result<()>;
}

impl LogFile for File {
    fn byte_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    file: Box<dyn LogFile>,
    offset: u64,
    zeroed: u64,
}

impl Wal {
    /// Reads the log (the data directory's `orderd.wal`, open) and returns it with every intact
    /// record whose seq is greater than `after`, in order, with no gap. The log is then
    /// positioned at its start.
    pub fn recover(file: Box<dyn LogFile>, after: u64) -> io::Result<(Self, Vec<Record>)> {
        let len = file.byte_len()?;
        let mut records = Vec::new();
        let mut expected = after + 1;
        let mut offset = 0u64;
        let mut header = [0u8; HEADER];
        while offset + HEADER as u64 <= len {
            file.read_exact_at(&mut header, offset)?;
            let size = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
            let crc = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
            let seq = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
            if size == 0 || size > MAX_RECORD || offset + (HEADER + size) as u64 > len {
                break;
            }
            let mut payload = vec![0u8; size];
            file.read_exact_at(&mut payload, offset + HEADER as u64)?;
            let mut h = crc32fast::Hasher::new();
            h.update(&header[8..16]);
            h.update(&payload);
            if h.finalize() != crc {
                break;
            }
            if seq == expected {
                records.push((seq, payload));
                expected += 1;
            } else if seq > expected {
                break; // a gap: nothing after it can be trusted
            }
            offset += (HEADER + size) as u64;
        }
        Ok((
            Self {
                file,
                offset: 0,
                zeroed: len,
            },
            records,
        ))
    }

    /// Appends one record and makes it durable.
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> io::Result<()> {
        let total = (HEADER + payload.len()) as u64;
        let end = self.offset + total;
        while self.zeroed < end {
            let step = GROW_STEP.max(end - self.zeroed);
            let zeros = vec![0u8; usize::try_from(step).unwrap_or(usize::MAX)];
            self.file.write_all_at(&zeros, self.zeroed)?;
            self.zeroed += step;
        }
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        let mut h = crc32fast::Hasher::new();
        h.update(&seq.to_le_bytes());
        h.update(payload);
        buf.extend_from_slice(
            &u32::try_from(payload.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        buf.extend_from_slice(&h.finalize().to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(payload);
        self.file.write_all_at(&buf, self.offset)?;
        super::backend::bench_slow_sync();
        self.file.sync_data()?;
        self.offset = end;
        Ok(())
    }

    /// Starts over after a checkpoint (old records stay on disk and are skipped by seq).
    pub fn reset(&mut self) {
        self.offset = 0;
    }

    /// Marks the log empty on disk (a zero header at the start), so the next start reads
    /// nothing; used after the final checkpoint of a clean stop.
    pub fn mark_empty(&mut self) -> io::Result<()> {
        self.offset = 0;
        if self.zeroed >= HEADER as u64 {
            self.file.write_all_at(&[0u8; HEADER], 0)?;
            super::backend::bench_slow_sync();
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Bytes written since the last checkpoint.
    pub fn used(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Wal {
        /// Opens (or creates) the log file at `path` and recovers it.
        fn recover_path(path: &std::path::Path, after: u64) -> io::Result<(Self, Vec<Record>)> {
            Self::recover(Box::new(crate::files::open_rw(path)?), after)
        }
    }

    #[test]
    fn records_survive_and_torn_tails_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, none) = Wal::recover_path(&path, 0).unwrap();
        assert!(none.is_empty());
        for seq in 1..=3u64 {
            wal.append(seq, format!("batch {seq}").as_bytes()).unwrap();
        }
        let (_, got) = Wal::recover_path(&path, 0).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], (3, b"batch 3".to_vec()));
        // Records at or before the checkpoint are skipped.
        let (_, got) = Wal::recover_path(&path, 2).unwrap();
        assert_eq!(got, vec![(3, b"batch 3".to_vec())]);
        // A flipped byte in record 2 ends the log there.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let second = (HEADER + 7) as u64;
        FileExt::write_all_at(&f, b"X", second + HEADER as u64 + 2).unwrap();
        let (_, got) = Wal::recover_path(&path, 0).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn reuse_after_checkpoint_skips_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal");
        let (mut wal, _) = Wal::recover_path(&path, 0).unwrap();
        for seq in 1..=5u64 {
            wal.append(seq, &[seq as u8; 100]).unwrap();
        }
        // Checkpoint at 5, then two new batches overwrite the start of the file.
        wal.reset();
        wal.append(6, &[6; 10]).unwrap();
        wal.append(7, &[7; 10]).unwrap();
        let (_, got) = Wal::recover_path(&path, 5).unwrap();
        assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [6, 7]);
        // Nothing new since the checkpoint: nothing to replay.
        let (mut wal, _) = Wal::recover_path(&path, 7).unwrap();
        wal.reset();
        let (_, got) = Wal::recover_path(&path, 7).unwrap();
        assert!(got.is_empty());
    }
}
