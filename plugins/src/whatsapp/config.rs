//! `[whatsapp]` settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::messaging::Secret;

/// `[whatsapp]`: the WhatsApp Cloud API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Send through WhatsApp.
    pub enabled: bool,
    /// API base URL.
    pub base_url: String,
    /// Graph API version, e.g. `v21.0`.
    pub api_version: String,
    /// The sending phone number's id.
    pub phone_number_id: String,
    /// The access token.
    pub access_token: Secret,
    /// Authentication template (copy-code button) per language.
    pub otp_template: BTreeMap<String, String>,
    /// Order-status template per language; its body takes {{1}} the restaurant's name,
    /// {{2}} the short order number and {{3}} the status text.
    pub status_template: BTreeMap<String, String>,
    /// Most messages per second (WhatsApp's limit is about 80).
    pub rate_per_sec: u32,
}

impl Default for Config {
    fn default() -> Self {
        let per_lang = |name: &str| {
            ["en", "sq"]
                .into_iter()
                .map(|l| (l.to_owned(), name.to_owned()))
                .collect()
        };
        Self {
            enabled: false,
            base_url: "https://graph.facebook.com".into(),
            api_version: "v21.0".into(),
            phone_number_id: String::new(),
            access_token: Secret::default(),
            otp_template: per_lang("orderd_otp"),
            status_template: per_lang("orderd_status"),
            rate_per_sec: 50,
        }
    }
}

impl Config {
    /// Problems with the settings, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=1000).contains(&self.rate_per_sec) {
            out.push(("whatsapp.rate_per_sec", "must be 1-1000".into()));
        }
        if !self.enabled {
            return out;
        }
        if !self.base_url.starts_with("http") {
            out.push(("whatsapp.base_url", "must be an http(s) URL".into()));
        }
        if self.phone_number_id.is_empty()
            || !self.phone_number_id.bytes().all(|b| b.is_ascii_digit())
        {
            out.push((
                "whatsapp.phone_number_id",
                "the sending number's id (digits)".into(),
            ));
        }
        match self.access_token.load() {
            Ok(Some(_)) => {}
            Ok(None) => out.push((
                "whatsapp.access_token",
                "set value, file or env of [whatsapp.access_token]".into(),
            )),
            Err(e) => out.push(("whatsapp.access_token", e)),
        }
        if !self.otp_template.contains_key("en") || !self.status_template.contains_key("en") {
            out.push((
                "whatsapp.otp_template",
                "otp_template and status_template need at least an \"en\" entry".into(),
            ));
        }
        out
    }
}
