//! The Telegram bot's side of phone verification: long-polls updates and links a chat to a
//! phone once the customer, having opened the bot through the code's deep link, shares that
//! phone as their own contact. Only then do codes and status messages for the phone go to the
//! chat.
//!
//! Starts and keeps running offline: a failed poll is logged once per outage and tried again.
//! Replies here are interactive prompts, not outbox messages: a lost prompt costs the customer
//! one more tap, never a message they were promised.

use std::collections::HashMap;
use std::time::Duration;

use orderd_plugins::messaging::Outcome;
use orderd_plugins::telegram::{Inbound, Telegram, same_phone};

use super::Texts;
use crate::domain::otp;
use crate::error::Commit as _;
use crate::shutdown::Shutdown;
use crate::state::AppStateRef;

/// How long one `getUpdates` call waits for an update.
const POLL_SECS: u32 = 25;
/// Wait after a failed poll.
const RETRY: Duration = Duration::from_secs(5);

/// A chat that opened a live link and has not shared its contact yet.
struct Pending {
    phone: String,
    lang: String,
}

/// Runs the bot until shutdown.
pub async fn run(
    state: AppStateRef,
    messaging: std::sync::Arc<super::Messaging>,
    bot: Telegram,
    texts: std::sync::Arc<Texts>,
    mut shutdown: Shutdown,
) {
    let mut offset = 0i32;
    let mut pending: HashMap<i64, Pending> = HashMap::new();
    let mut down = false;
    loop {
        let polled = tokio::select! {
            () = shutdown.wait() => return,
            r = bot.updates(offset, POLL_SECS) => r,
        };
        match polled {
            Ok((updates, next)) => {
                if down {
                    tracing::info!("Telegram reachable again");
                    down = false;
                }
                offset = next;
                for update in updates {
                    handle(&state, &messaging, &bot, &texts, &mut pending, update).await;
                }
            }
            Err(e) => {
                if !down {
                    tracing::warn!(error = %e, "Telegram unreachable; the bot keeps trying");
                    down = true;
                }
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

async fn handle(
    state: &AppStateRef,
    messaging: &super::Messaging,
    bot: &Telegram,
    texts: &Texts,
    pending: &mut HashMap<i64, Pending>,
    update: Inbound,
) {
    let lang_of = |p: &HashMap<i64, Pending>, chat: i64| {
        p.get(&chat)
            .map_or_else(|| state.rules.default_language.clone(), |p| p.lang.clone())
    };
    let reply = match update {
        Inbound::Start { chat, payload } => {
            let now = state.now_ms();
            let target = state
                .store
                .read()
                .ok()
                .and_then(|r| otp::link_target(&r, &payload, now).ok().flatten());
            match target {
                Some((phone, lang)) => {
                    let text = texts.render(&lang, "tg_share_phone", &[]);
                    let button = texts.render(&lang, "tg_share_button", &[]);
                    pending.insert(chat, Pending { phone, lang });
                    let out = bot.ask_contact(chat, &text, &button).await;
                    log_reply(chat, &out);
                    return;
                }
                None => (chat, "tg_link_expired", lang_of(pending, chat)),
            }
        }
        Inbound::Contact {
            chat,
            from,
            contact_user,
            phone,
        } => {
            let lang = lang_of(pending, chat);
            match pending.get(&chat) {
                None => (chat, "tg_help", lang),
                Some(_) if contact_user != Some(from) => (chat, "tg_not_your_contact", lang),
                Some(p) if !same_phone(&phone, &p.phone) => (chat, "tg_phone_mismatch", lang),
                Some(p) => {
                    let phone = p.phone.clone();
                    let stored = state
                        .writer
                        .run(move |tx| {
                            tx.telegram_chats.insert(phone.as_str(), chat)?;
                            Ok(())
                        })
                        .await;
                    if let Err(e) = stored {
                        tracing::error!(error = %e.message, "storing a Telegram chat failed");
                        return;
                    }
                    pending.remove(&chat);
                    messaging.wake.notify_one();
                    let out = bot
                        .send_and_clear(chat, &texts.render(&lang, "tg_linked", &[]))
                        .await;
                    log_reply(chat, &out);
                    return;
                }
            }
        }
        Inbound::Other { chat } => (chat, "tg_help", lang_of(pending, chat)),
    };
    let (chat, key, lang) = reply;
    let out = bot.send_text(chat, &texts.render(&lang, key, &[])).await;
    log_reply(chat, &out);
}

fn log_reply(chat: i64, out: &Outcome) {
    if !matches!(out, Outcome::Sent { .. }) {
        tracing::warn!(chat, outcome = ?out, "Telegram reply not delivered");
    }
}
