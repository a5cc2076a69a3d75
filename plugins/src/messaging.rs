//! What every messaging plugin shares: the [`Provider`] trait (send one message, classify the
//! outcome once), the outcome itself, and secrets given inline, in a file or in the environment.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The outcome of handing one message to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted it; its message id.
    Sent {
        /// The provider's id for the message.
        provider_id: String,
    },
    /// A transient failure (timeout, 5xx, throttling): try again, not before `after` if given.
    Retry {
        /// The provider's wait (`Retry-After`, Telegram's `retry_after`).
        after: Option<Duration>,
        /// What went wrong, for the notification's last error.
        reason: String,
    },
    /// A permanent refusal of this message: dead-letter it with the provider's reason.
    Reject {
        /// The provider's reason.
        reason: String,
    },
}

/// What a message is, for providers that send templates rather than text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A one-time code.
    Code(&'a str),
    /// An order's new status: the restaurant's name, the short number, the status in words.
    Status([&'a str; 3]),
    /// A staff alert (text only).
    Alert,
}

/// One message, ready for any provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// Where it goes: an E.164 phone (WhatsApp) or a chat id (Telegram).
    pub to: &'a str,
    /// The language it is in.
    pub lang: &'a str,
    /// The whole message as plain text, for providers that send text.
    pub text: &'a str,
    /// What it is, for providers that send templates.
    pub kind: Kind<'a>,
}

/// What a provider's `to` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// The customer's E.164 phone, as the outbox stores it (WhatsApp).
    Phone,
    /// A chat id the customer linked to their phone by sharing their contact (Telegram): the
    /// sender looks it up, and a message to a phone never linked waits.
    LinkedChat,
}

/// A send under way.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// A messaging provider (WhatsApp, Telegram): sends one message and classifies what happened
/// once — sent, retry later, or rejected for good. It never retries by itself: the outbox
/// sender owns pacing, backoff and the breaker.
pub trait Provider: Send + Sync {
    /// A short name, for logs.
    fn name(&self) -> &'static str;

    /// What its messages are addressed to.
    fn addressing(&self) -> Addressing {
        Addressing::Phone
    }

    /// Sends one message.
    fn send<'a>(&'a self, msg: Outgoing<'a>) -> Sending<'a>;
}

/// A secret given inline, in a file, or in an environment variable (the file wins, then the
/// environment, then the inline value). `Debug` never prints it.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Secret {
    /// The secret itself (avoid: it then sits in the configuration file).
    pub value: String,
    /// A file holding it.
    pub file: std::path::PathBuf,
    /// An environment variable holding it.
    pub env: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field(
                "value",
                &if self.value.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("file", &self.file)
            .field("env", &self.env)
            .finish()
    }
}

impl Secret {
    /// Reads the secret; `None` when none of the three is set. A file that everyone may read
    /// is refused, with the `chmod` that fixes it (its owner and group may read it: `0640`
    /// with the service's group, or `0600`).
    pub fn load(&self) -> Result<Option<String>, String> {
        if !self.file.as_os_str().is_empty() {
            use std::os::unix::fs::PermissionsExt as _;
            let meta = std::fs::metadata(&self.file)
                .map_err(|e| format!("reading {}: {e}", self.file.display()))?;
            if meta.permissions().mode() & 0o004 != 0 {
                return Err(format!(
                    "{} can be read by every user; run `chmod o-rwx {}` (0640 with the service's group, or 0600)",
                    self.file.display(),
                    self.file.display()
                ));
            }
            return std::fs::read_to_string(&self.file)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|e| format!("reading {}: {e}", self.file.display()));
        }
        if !self.env.is_empty() {
            return std::env::var(&self.env)
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| format!("environment variable {} is not set", self.env));
        }
        Ok((!self.value.is_empty()).then(|| self.value.clone()))
    }
}

/// Parses an HTTP `Retry-After` given in seconds (the HTTP-date form is treated as absent).
pub fn retry_after_secs(value: Option<&str>) -> Option<Duration> {
    value?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::Secret;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_secret_file_everyone_can_read_is_refused_with_the_fix() {
        let path = std::env::temp_dir().join(format!("orderd-secret-test-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let secret = Secret {
            file: path.clone(),
            ..Secret::default()
        };
        let err = secret.load().unwrap_err();
        assert!(err.contains("chmod o-rwx"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(secret.load().unwrap().as_deref(), Some("s3cret"));
        std::fs::remove_file(&path).unwrap();
    }
}
