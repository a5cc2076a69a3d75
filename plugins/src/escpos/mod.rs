//! ESC/POS rendering of kitchen tickets and guest checks (`bill`). Tickets: a big short number, table, order type and time; the
//! station's lines with modifiers and notes; a REPRINT banner on copies; 58 mm and 80 mm paper;
//! text in code page PC850, so Albanian `ë` and `ç` print as themselves.
//!
//! Rendering is a pure function from a [`TicketDoc`] to bytes: no I/O, so the daemon's printer
//! jobs carry the bytes and tests compare them exactly.

mod bill;
mod config;
mod render;
pub mod status;
#[cfg(test)]
mod tests;

pub use bill::{BillHeader, bill_text, money, render_bill, render_z, z_text};
pub use config::{CodePage, EscPosConfig, PaperWidth};
pub use render::{TicketDoc, encode_text, encode_text_in, mark_reprint, render, render_text};
