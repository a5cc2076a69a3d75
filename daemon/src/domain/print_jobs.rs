//! Print jobs: the durable record of every ticket sent to a kitchen printer.
//!
//! A job is resent with the same id until its printer reports `printed`, and printers print
//! once per id, so a job prints exactly once however often the network drops it. A job the
//! printer cannot print (offline, paper out, cover open, no report in time) is *failed over*:
//! it is closed and a new job, marked REPRINT, goes to the station's backup printer. Open jobs
//! are indexed separately so the hub finds them at start without scanning history.

use orderd_protocol::{PrintCopy, PrintFormat};
use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::TxResult;
use crate::store::writer::Tx;
use crate::store::{StoreError, Stored, codec, tables as t};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Created (a reprint) and not yet handed to the broker.
    Queued,
    /// Handed to the broker; waiting for the printer's report.
    Sent,
    /// The printer reported a problem and there is no backup: resent when it is ready again.
    Waiting,
    /// The printer reported `printed`. Final.
    Printed,
    /// Replaced by a job on the backup printer. Final.
    FailedOver,
}

impl JobState {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Waiting => "waiting",
            Self::Printed => "printed",
            Self::FailedOver => "failed_over",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Sent,
            Self::Waiting,
            Self::Printed,
            Self::FailedOver,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether the job still has to be printed.
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Queued | Self::Sent | Self::Waiting)
    }
}

/// One print job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintJobRow {
    /// De-duplication key on the printer.
    pub job_id: String,
    /// Order id.
    pub order_id: String,
    /// Order number.
    pub order_number: String,
    /// Station.
    pub station: String,
    /// Printer device id.
    pub printer: String,
    /// Original or reprint.
    pub copy: PrintCopy,
    /// Payload format.
    pub format: PrintFormat,
    /// The rendered ticket.
    pub data: Vec<u8>,
    /// State.
    pub state: JobState,
    /// The printer's last report or the reason for the last state change.
    pub report: Option<String>,
    /// The backup job that replaced this one.
    pub replaced_by: Option<String>,
    /// The job this one replaces (on a backup printer).
    pub replaces: Option<String>,
    /// Created, ms.
    pub created_at: u64,
    /// Last change, ms.
    pub updated_at: u64,
}

impl Stored for PrintJobRow {
    const WHAT: &'static str = "print job";
}

/// Writes a job and keeps the open index in step with its state.
pub fn put(tx: &mut Tx<'_>, job: &PrintJobRow) -> TxResult<()> {
    tx.print_jobs
        .insert(job.job_id.as_str(), codec::encode(job)?.as_slice())?;
    if job.state.is_open() {
        tx.print_open.insert(job.job_id.as_str(), ())?;
    } else {
        tx.print_open.remove(job.job_id.as_str())?;
    }
    Ok(())
}

/// One job, inside a write.
pub fn get_tx(tx: &Tx<'_>, id: &str) -> TxResult<Option<PrintJobRow>> {
    Ok(match tx.print_jobs.get(id)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

/// Every open job, oldest id first.
pub fn open(rtx: &ReadTransaction) -> Result<Vec<PrintJobRow>, StoreError> {
    let idx = rtx.open_table(t::PRINT_OPEN)?;
    let jobs = rtx.open_table(t::PRINT_JOBS)?;
    let mut out = Vec::new();
    for row in idx.iter()? {
        let (id, _) = row?;
        if let Some(v) = jobs.get(id.value())? {
            out.push(codec::decode(v.value())?);
        }
    }
    Ok(out)
}

/// Jobs, newest first, optionally only those in `state`; at most `limit`.
pub fn list(
    rtx: &ReadTransaction,
    state: Option<JobState>,
    limit: usize,
) -> Result<Vec<PrintJobRow>, StoreError> {
    let jobs = rtx.open_table(t::PRINT_JOBS)?;
    let mut out: Vec<PrintJobRow> = Vec::new();
    for row in jobs.iter()? {
        let job: PrintJobRow = codec::decode(row?.1.value())?;
        if state.is_none_or(|s| s == job.state) {
            out.push(job);
        }
    }
    out.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.job_id.cmp(&a.job_id))
    });
    out.truncate(limit);
    Ok(out)
}

/// Removes closed jobs last changed before `before_ms`. Returns how many.
pub fn prune(tx: &mut Tx<'_>, before_ms: u64, max: usize) -> TxResult<usize> {
    let mut doomed = Vec::new();
    for row in tx.print_jobs.iter()? {
        let (k, v) = row?;
        let job: PrintJobRow = codec::decode(v.value())?;
        if !job.state.is_open() && job.updated_at < before_ms {
            doomed.push(k.value().to_owned());
            if doomed.len() >= max {
                break;
            }
        }
    }
    for id in &doomed {
        tx.print_jobs.remove(id.as_str())?;
    }
    Ok(doomed.len())
}

/// The JSON view of a job (without its bytes).
pub fn view(job: &PrintJobRow) -> serde_json::Value {
    serde_json::json!({
        "job_id": job.job_id,
        "order_id": job.order_id,
        "order_number": job.order_number,
        "station": job.station,
        "printer": job.printer,
        "copy": job.copy,
        "state": job.state.as_str(),
        "report": job.report,
        "replaced_by": job.replaced_by,
        "replaces": job.replaces,
        "bytes": job.data.len(),
        "created_at": super::rfc3339(job.created_at),
        "updated_at": super::rfc3339(job.updated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_open_ones_are_open() {
        for s in [
            JobState::Queued,
            JobState::Sent,
            JobState::Waiting,
            JobState::Printed,
            JobState::FailedOver,
        ] {
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert!(JobState::Waiting.is_open() && !JobState::Printed.is_open());
        assert_eq!(JobState::parse("lost"), None);
    }
}
