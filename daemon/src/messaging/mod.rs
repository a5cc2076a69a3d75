//! Customer and staff messaging: the outbox sender ([`worker`]), the Telegram bot that links
//! chats to proven phones ([`telegram`]), the message texts per language, and the key of the
//! one-time codes' hash.

pub mod telegram;
pub mod worker;

use std::collections::BTreeMap;
use std::path::Path;

use rand::RngCore as _;
use tokio::sync::Notify;

/// State shared between the API and the sender.
#[derive(Default)]
pub struct Messaging {
    /// Rung after a commit that queued a message, so codes go out at once.
    pub wake: Notify,
}

/// The file in the data directory holding the OTP hash key.
pub const KEY_FILE: &str = "otp-key";

/// Reads the OTP hash key, creating it (32 random bytes, mode 0600) on first start. It lives
/// beside the store, not in it, so a copied store file alone cannot test codes.
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context as _;
    let path = data_dir.join(KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = decode_hex(text.trim())
            .with_context(|| format!("{} is not 64 hex digits", path.display()))?;
        return Ok(bytes);
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let hex: String = key.iter().fold(String::with_capacity(64), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    });
    crate::auth::write_secret_file(&path, &format!("{hex}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Message texts per language: the built-in `en` and `sq`, overridden key by key by
/// `{texts_dir}/{lang}.toml`.
#[derive(Debug, Clone)]
pub struct Texts {
    by_lang: BTreeMap<String, BTreeMap<String, String>>,
}

impl Texts {
    /// The built-in texts plus the overrides in `dir` (if not empty).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut by_lang: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (lang, text) in [
            ("en", include_str!("../../../config/messages/en.toml")),
            ("sq", include_str!("../../../config/messages/sq.toml")),
        ] {
            by_lang.insert(lang.to_owned(), toml::from_str(text)?);
        }
        if !dir.as_os_str().is_empty() {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                let Some(lang) = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .filter(|_| path.extension().is_some_and(|e| e == "toml"))
                else {
                    continue;
                };
                let extra: BTreeMap<String, String> =
                    toml::from_str(&std::fs::read_to_string(&path)?)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                by_lang.entry(lang.to_owned()).or_default().extend(extra);
            }
        }
        Ok(Self { by_lang })
    }

    /// The text for `key` in `lang` (falling back to English), with `{name}` filled in.
    pub fn render(&self, lang: &str, key: &str, vars: &[(&str, &str)]) -> String {
        let text = self
            .by_lang
            .get(lang)
            .and_then(|m| m.get(key))
            .or_else(|| self.by_lang.get("en").and_then(|m| m.get(key)))
            .cloned()
            .unwrap_or_default();
        vars.iter().fold(text, |t, (name, value)| {
            t.replace(&format!("{{{name}}}"), value)
        })
    }
}
