//! Printer jobs and the printer's report on them. The job id is the de-duplication key: QoS 1
//! may deliver a job twice and the box resends a job until it hears `printed`, so a printer
//! prints once per job id.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// First print or a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrintCopy {
    /// The first print of this ticket.
    Original,
    /// A reprint (staff asked, or failover to a backup printer); printed with a REPRINT banner.
    Reprint,
}

/// How `data` is to be sent to the print head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrintFormat {
    /// ESC/POS bytes, ready for the printer.
    EscPos,
    /// Plain UTF-8 text.
    Text,
}

/// `printer/{device}/job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintJob {
    /// Format version.
    pub version: u16,
    /// Unique per job; the same on every resend.
    pub job_id: String,
    /// The order's number.
    pub order: String,
    /// Original or reprint.
    pub copy: PrintCopy,
    /// Format of `data`.
    pub format: PrintFormat,
    /// What to print (base64 in JSON).
    #[serde(with = "crate::encoding::bytes")]
    pub data: Vec<u8>,
}

/// What a printer reports about a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// On paper.
    Printed,
    /// Out of paper; not printed.
    PaperOut,
    /// Cover open; not printed.
    CoverOpen,
    /// Any other failure; not printed.
    Error,
}

/// `printer/{device}/job/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// Format version.
    pub version: u16,
    /// The job reported on.
    pub job_id: String,
    /// What happened.
    pub status: JobState,
}
