//! A network or USB printer's state from its real-time status replies (`DLE EOT n`), and the
//! text of ESC/POS bytes (for the emulator, tests and a test print). No I/O.

use super::config::CodePage;

/// `DLE EOT 1`: printer status.
pub const QUERY_PRINTER: [u8; 3] = [0x10, 0x04, 1];
/// `DLE EOT 2`: offline cause.
pub const QUERY_OFFLINE: [u8; 3] = [0x10, 0x04, 2];
/// `DLE EOT 4`: roll paper sensor.
pub const QUERY_PAPER: [u8; 3] = [0x10, 0x04, 4];

/// What a printer's three status bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrinterState {
    /// Online, paper in, cover shut.
    Ready,
    /// Paper is running low (it still prints).
    PaperLow,
    /// Out of paper.
    PaperOut,
    /// The cover is open.
    CoverOpen,
    /// Offline for another reason, or an error.
    Error,
}

impl PrinterState {
    /// The device state text the hub knows (`device/{id}/state`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::PaperLow => "paper_low",
            Self::PaperOut => "paper_out",
            Self::CoverOpen => "cover_open",
            Self::Error => "error",
        }
    }

    /// Whether a job may be sent now.
    pub const fn prints(self) -> bool {
        matches!(self, Self::Ready | Self::PaperLow)
    }
}

/// The state from the replies to `DLE EOT 1`, `2` and `4` (each one byte, `0b0xx1xx10` framed).
pub fn parse(printer: u8, offline: u8, paper: u8) -> PrinterState {
    if paper & 0x60 != 0 || offline & 0x20 != 0 {
        return PrinterState::PaperOut;
    }
    if offline & 0x04 != 0 {
        return PrinterState::CoverOpen;
    }
    if offline & 0x40 != 0 || printer & 0x08 != 0 {
        return PrinterState::Error;
    }
    if paper & 0x0c != 0 {
        return PrinterState::PaperLow;
    }
    PrinterState::Ready
}

/// The replies a printer in `state` gives to `DLE EOT 1`, `2` and `4` (for the emulator).
pub const fn replies(state: PrinterState) -> [u8; 3] {
    const BASE: u8 = 0x12; // bits 1 and 4 are always set
    match state {
        PrinterState::Ready => [BASE, BASE, BASE],
        PrinterState::PaperLow => [BASE, BASE, BASE | 0x0c],
        PrinterState::PaperOut => [BASE | 0x08, BASE | 0x20, BASE | 0x60],
        PrinterState::CoverOpen => [BASE | 0x08, BASE | 0x04, BASE],
        PrinterState::Error => [BASE | 0x08, BASE | 0x40, BASE],
    }
}

/// The readable text of ESC/POS bytes: the commands this crate writes are skipped (a cut shows
/// as a line of `✂`), PC858 is decoded, a `DLE EOT` query is dropped.
pub fn decode_text(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut page = CodePage::Pc858;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0x1b if bytes.get(i + 1) == Some(&b'@') => i += 2,
            // ESC t n: the code page the text after it is in.
            0x1b if bytes.get(i + 1) == Some(&b't') => {
                if let Some(p) = bytes
                    .get(i + 2)
                    .and_then(|n| CodePage::ALL.into_iter().find(|c| c.select() == *n))
                {
                    page = p;
                }
                i += 3;
            }
            0x1d if bytes.get(i + 1) == Some(&b'V') => {
                out.push_str("✂✂✂\n");
                i += 4;
            }
            0x10 if bytes.get(i + 1) == Some(&0x04) => i += 3,
            0x1b | 0x1d => i += 3,
            b if b >= 0x80 => {
                out.push(
                    page.high()
                        .chars()
                        .nth(usize::from(b - 0x80))
                        .unwrap_or('?'),
                );
                i += 1;
            }
            b => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_status_bytes() {
        for s in [
            PrinterState::Ready,
            PrinterState::PaperLow,
            PrinterState::PaperOut,
            PrinterState::CoverOpen,
            PrinterState::Error,
        ] {
            let [a, b, c] = replies(s);
            assert_eq!(parse(a, b, c), s, "{s:?}");
        }
        assert!(PrinterState::PaperLow.prints());
        assert!(!PrinterState::PaperOut.prints());
    }

    #[test]
    fn decoded_text_has_the_albanian_letters_and_the_euro() {
        let mut b = vec![0x1b, b'@', 0x1b, b't', 19];
        b.extend(super::super::encode_text("Tavë kosi 11.00 € Çaj"));
        b.extend([b'\n', 0x1d, b'V', 66, 0]);
        assert_eq!(decode_text(&b), "Tavë kosi 11.00 € Çaj\n✂✂✂\n");
    }
}
