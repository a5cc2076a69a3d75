//! Small device messages: buzzer commands, bump-bar actions, availability and state.
//!
//! Availability and state are plain text payloads (`online`, `paper_out`, …) so that a device's
//! MQTT last will can carry them without any encoding.

use alloc::string::String;
use serde::{Deserialize, Serialize};

/// How a buzzer sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuzzPattern {
    /// One short beep (a new order).
    Single,
    /// Two short beeps (an order ready).
    Double,
    /// Three short beeps.
    Triple,
    /// One long tone.
    Long,
    /// Repeating until silenced (a printer down).
    Alarm,
}

/// `buzzer/{device}/set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuzzerSet {
    /// Format version.
    pub version: u16,
    /// Pattern.
    pub pattern: BuzzPattern,
    /// Total duration.
    pub duration_ms: u32,
}

/// What a bump bar asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BumpAction {
    /// Move the ticket's order to its next status.
    Bump,
    /// Undo the last bump.
    Recall,
    /// Acknowledge the ticket's allergy note (needed before its first bump).
    AckAllergy,
}

/// `station/{station}/bump`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bump {
    /// Format version.
    pub version: u16,
    /// The ticket (order id) from the station's board.
    pub ticket: String,
    /// Bump or recall.
    pub action: BumpAction,
}

/// `station/{station}/bump/result` — the box's answer to each bump, for the bump bars of the
/// station to show: done, or refused with a code (`not_found`, `not_at_station`,
/// `bad_payload`, `conflict`, …) and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BumpResult {
    /// Format version.
    pub version: u16,
    /// The ticket the bump named (empty when its payload could not be read).
    pub ticket: String,
    /// What was asked (none when the payload could not be read).
    pub action: Option<BumpAction>,
    /// Whether it was done.
    pub ok: bool,
    /// Why not, as a stable code (empty when done).
    pub code: String,
    /// Why not, for a person.
    pub message: String,
}

/// `device/{device}/availability` and `hub/status` (retained, last will).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Connected.
    Online,
    /// Gone (the broker published the last will, or the device said goodbye).
    Offline,
}

impl Availability {
    /// The payload.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }

    /// Parses a payload.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        match payload {
            b"online" => Some(Self::Online),
            b"offline" => Some(Self::Offline),
            _ => None,
        }
    }
}

/// `device/{device}/state` (retained): what the device says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    /// Working.
    Ready,
    /// Printer out of paper.
    PaperOut,
    /// Printer cover open.
    CoverOpen,
    /// Anything else the device reports (kept for display, at most 32 bytes of text).
    Other(String),
}

impl DeviceState {
    /// The payload.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Ready => "ready",
            Self::PaperOut => "paper_out",
            Self::CoverOpen => "cover_open",
            Self::Other(s) => s,
        }
    }

    /// Parses a payload: known states, or short printable text; `None` for anything else.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let text = core::str::from_utf8(payload).ok()?;
        Some(match text {
            "ready" => Self::Ready,
            "paper_out" => Self::PaperOut,
            "cover_open" => Self::CoverOpen,
            t if !t.is_empty() && t.len() <= 32 && t.bytes().all(|b| b.is_ascii_graphic()) => {
                Self::Other(String::from(t))
            }
            _ => return None,
        })
    }

    /// Whether a printer in this state can print.
    pub fn can_print(&self) -> bool {
        matches!(self, Self::Ready)
    }
}
