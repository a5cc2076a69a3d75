//! The bot client: sends, the contact prompt, and `getUpdates`.

use std::time::Duration;

use teloxide::RequestError;
use teloxide::payloads::{GetUpdatesSetters as _, SendMessageSetters as _};
use teloxide::prelude::Requester as _;
use teloxide::types::{
    ButtonRequest, ChatId, KeyboardButton, KeyboardMarkup, KeyboardRemove, ReplyMarkup, UpdateKind,
};

use crate::messaging::Outcome;

/// teloxide waits this long after a 5xx answer before returning it.
const SERVER_ERROR_DELAY: Duration = Duration::from_secs(10);

/// A configured bot.
#[derive(Clone)]
pub struct Telegram {
    bot: teloxide::Bot,
    poller: teloxide::Bot,
    timeout: Duration,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("api_url", &self.bot.api_url().as_str())
            .finish_non_exhaustive()
    }
}

/// One update, reduced to what the box acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// `/start <payload>` (from a `t.me/<bot>?start=<payload>` link).
    Start {
        /// Private chat id.
        chat: i64,
        /// The payload (empty for a bare `/start`).
        payload: String,
    },
    /// A shared contact.
    Contact {
        /// Private chat id.
        chat: i64,
        /// The sender's user id.
        from: u64,
        /// The contact's user id: equal to `from` only when it is the sender's own contact.
        contact_user: Option<u64>,
        /// The phone number as Telegram gives it (often without `+`).
        phone: String,
    },
    /// Anything else in a private chat (answered with a hint).
    Other {
        /// Private chat id.
        chat: i64,
    },
}

impl crate::messaging::Provider for Telegram {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn addressing(&self) -> crate::messaging::Addressing {
        crate::messaging::Addressing::LinkedChat
    }

    /// Every message as text to the chat id in `to`.
    fn send<'a>(&'a self, msg: crate::messaging::Outgoing<'a>) -> crate::messaging::Sending<'a> {
        Box::pin(async move {
            match msg.to.parse::<i64>() {
                Ok(chat) => self.send_text(chat, msg.text).await,
                Err(_) => Outcome::Reject {
                    reason: format!("{:?} is not a Telegram chat id", msg.to),
                },
            }
        })
    }
}

impl Telegram {
    /// A bot at `api_url` (e.g. `https://api.telegram.org`); `timeout` cuts off one HTTP call.
    pub fn new(api_url: &str, token: &str, timeout: Duration) -> Result<Self, String> {
        let url = reqwest::Url::parse(api_url).map_err(|e| format!("api_url: {e}"))?;
        let client = |t: Duration| {
            reqwest::Client::builder()
                .timeout(t)
                .connect_timeout(timeout.min(Duration::from_secs(5)))
                .tcp_nodelay(true)
                .build()
                .map_err(|e| e.to_string())
        };
        let bot = teloxide::Bot::with_client(token, client(timeout)?).set_api_url(url.clone());
        // Long polls hold the call open: teloxide adds the poll's own timeout to this one.
        let poller = teloxide::Bot::with_client(token, client(timeout)?).set_api_url(url);
        Ok(Self {
            bot,
            poller,
            timeout,
        })
    }

    /// The longest one send can take, 5xx delay included: wrap calls in this.
    pub fn call_budget(&self) -> Duration {
        self.timeout + SERVER_ERROR_DELAY + Duration::from_secs(1)
    }

    /// Sends a text to a chat.
    pub async fn send_text(&self, chat: i64, text: &str) -> Outcome {
        self.send(chat, text, None).await
    }

    /// Asks for the user's own phone number with a one-tap "share contact" keyboard.
    pub async fn ask_contact(&self, chat: i64, text: &str, button: &str) -> Outcome {
        let keyboard = KeyboardMarkup::new(vec![vec![
            KeyboardButton::new(button).request(ButtonRequest::Contact),
        ]])
        .resize_keyboard()
        .one_time_keyboard();
        self.send(chat, text, Some(ReplyMarkup::Keyboard(keyboard)))
            .await
    }

    /// Sends a text and removes the contact keyboard.
    pub async fn send_and_clear(&self, chat: i64, text: &str) -> Outcome {
        self.send(
            chat,
            text,
            Some(ReplyMarkup::KeyboardRemove(KeyboardRemove::new())),
        )
        .await
    }

    async fn send(&self, chat: i64, text: &str, markup: Option<ReplyMarkup>) -> Outcome {
        let mut req = self.bot.send_message(ChatId(chat), text);
        if let Some(m) = markup {
            req = req.reply_markup(m);
        }
        match tokio::time::timeout(self.call_budget(), req).await {
            Ok(Ok(msg)) => Outcome::Sent {
                provider_id: format!("{}:{}", msg.chat.id.0, msg.id.0),
            },
            Ok(Err(e)) => classify(&e),
            Err(_) => Outcome::Retry {
                after: None,
                reason: format!("no answer within {} s", self.call_budget().as_secs()),
            },
        }
    }

    /// Updates after `offset` (waiting up to `wait_secs` for one) and the next offset.
    pub async fn updates(
        &self,
        offset: i32,
        wait_secs: u32,
    ) -> Result<(Vec<Inbound>, i32), String> {
        let got = self
            .poller
            .get_updates()
            .offset(offset)
            .timeout(wait_secs)
            .limit(100)
            .await
            .map_err(|e| e.to_string())?;
        let mut next = offset;
        let mut out = Vec::with_capacity(got.len());
        for update in got {
            next = next.max(update.id.0 as i32 + 1);
            let UpdateKind::Message(msg) = update.kind else {
                continue;
            };
            if !msg.chat.is_private() {
                continue;
            }
            let chat = msg.chat.id.0;
            if let Some(c) = msg.contact() {
                out.push(Inbound::Contact {
                    chat,
                    from: msg.from.as_ref().map_or(0, |u| u.id.0),
                    contact_user: c.user_id.map(|u| u.0),
                    phone: c.phone_number.clone(),
                });
            } else if let Some(text) = msg.text()
                && let Some(rest) = text.strip_prefix("/start")
                && (rest.is_empty() || rest.starts_with(' '))
            {
                out.push(Inbound::Start {
                    chat,
                    payload: rest.trim().to_owned(),
                });
            } else {
                out.push(Inbound::Other { chat });
            }
        }
        Ok((out, next))
    }
}

/// Classifies a failed call once: throttling and transport trouble are retried (after
/// Telegram's `retry_after` when given); refusals of this message are permanent.
pub fn classify(e: &RequestError) -> Outcome {
    use teloxide::ApiError;
    let retry = |reason: String| Outcome::Retry {
        after: None,
        reason,
    };
    match e {
        RequestError::RetryAfter(secs) => Outcome::Retry {
            after: Some(secs.duration()),
            reason: format!("throttled: retry after {} s", secs.seconds()),
        },
        RequestError::Network(err) => retry(format!("network: {err}")),
        RequestError::Io(err) => retry(format!("io: {err}")),
        RequestError::InvalidJson { raw, .. } => retry(format!(
            "unreadable answer: {}",
            raw.chars().take(120).collect::<String>()
        )),
        RequestError::MigrateToChatId(id) => Outcome::Reject {
            reason: format!("the group became supergroup {}; update the chat id", id.0),
        },
        // Telegram's own 5xx texts and anything unrecognised that is not a client error.
        RequestError::Api(ApiError::Unknown(text))
            if !["Bad Request", "Forbidden", "Unauthorized", "Not Found"]
                .iter()
                .any(|p| text.starts_with(p)) =>
        {
            retry(format!("provider error: {text}"))
        }
        RequestError::Api(api) => Outcome::Reject {
            reason: api.to_string(),
        },
    }
}

/// Whether a phone as Telegram gives it (`355691234567`, `+355 69…`) is the E.164 `e164`.
pub fn same_phone(telegram: &str, e164: &str) -> bool {
    let digits: String = telegram.chars().filter(char::is_ascii_digit).collect();
    !digits.is_empty() && e164.strip_prefix('+') == Some(digits.as_str())
}
