//! The chain collector's client: posts one upload batch (postcard, see
//! `orderd_protocol::upload`) over HTTPS with the site's token, and classifies the answer once;
//! `[upload]`, the daemon's settings for it, is its `Config`.

mod client;
mod config;
#[cfg(test)]
mod tests;

pub use client::*;
pub use config::Config;
