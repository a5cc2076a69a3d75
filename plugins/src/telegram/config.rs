//! `[telegram]` settings.

use serde::{Deserialize, Serialize};

use crate::messaging::Secret;

/// `[telegram]`: the Telegram bot.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Send through Telegram.
    pub enabled: bool,
    /// Bot API URL.
    pub api_url: String,
    /// The bot's username, for `https://t.me/{bot}?start=…` links.
    pub bot_username: String,
    /// The bot token.
    pub token: Secret,
    /// Chat that gets staff alerts (printer down, sold out, low stock); 0 = none.
    pub staff_chat_id: i64,
    /// Language of staff alerts.
    pub staff_lang: String,
    /// Most messages per second (Telegram allows about 30).
    pub rate_per_sec: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            enabled: false,
            api_url: "https://api.telegram.org".into(),
            bot_username: String::new(),
            token: Secret::default(),
            staff_chat_id: 0,
            staff_lang: "en".into(),
            rate_per_sec: 25,
        }
    }
}
