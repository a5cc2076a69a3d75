//! Telegram Bot API through teloxide: text messages to chats, the contact-share prompt that
//! proves a customer's phone, and long polling of updates — every send classified once into
//! [`Outcome`], every update turned into a plain [`Inbound`] so the daemon never sees teloxide.
//!
//! teloxide's `repl`/`dispatch` panic when `getMe` fails at start, and a box must start
//! offline, so this plugin calls `getUpdates` itself and never uses the dispatcher. teloxide
//! also sleeps 10 s after any 5xx answer before it returns; callers bound a send with
//! [`Telegram::call_budget`].

mod client;
mod config;
#[cfg(test)]
mod tests;

pub use client::{Inbound, Telegram, classify, same_phone};
pub use config::Config;
