//! The fiscal seam: where a country's fiscal device or service would register a guest check
//! and give back the code (and QR payload) printed on it. No country is implemented; the
//! default, [`NotFiscal`], registers nothing, and the bill then says it is not a fiscal
//! receipt. An implementation must answer at once from what it holds: offline it defers
//! ([`Registration::Deferred`]) and registers later itself, so printing never waits on a
//! network (`docs/plugin-spec.md`).

use orderd_protocol::BillPrint;

/// What registering a bill gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// This box issues no fiscal receipts: the bill says "not a fiscal receipt".
    NotFiscal,
    /// Registered: the code (and QR payload, if the country has one) to print.
    Registered {
        /// The fiscal code.
        code: String,
        /// Text for a QR code on the slip.
        qr: Option<String>,
    },
    /// Not registered now (offline); the implementation registers it later itself.
    Deferred {
        /// Printed instead of the code, so the guest knows a receipt follows.
        note: String,
    },
}

/// A country's fiscal device or service.
pub trait Fiscal: Send + Sync {
    /// Registers a settled bill (called when it is printed).
    fn register(&self, bill: &BillPrint) -> Registration;
}

/// The default: no fiscal registration.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotFiscal;

impl Fiscal for NotFiscal {
    fn register(&self, _bill: &BillPrint) -> Registration {
        Registration::NotFiscal
    }
}
