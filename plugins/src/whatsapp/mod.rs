//! WhatsApp Cloud API: template messages (the authentication template with its copy-code
//! button for codes, order-status templates with parameters), every outcome classified once.
//!
//! Delivery receipts come only through a webhook on a public HTTPS URL, which a box behind NAT
//! does not have, so nothing here depends on them: "sent" means the Cloud API accepted the
//! message (see `docs/messaging.md` for how a chain could relay receipts).

mod client;
mod config;
#[cfg(test)]
mod tests;

pub use client::{WhatsApp, classify};
pub use config::Config;
