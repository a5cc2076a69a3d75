//! Classification of Bot API failures and the phone comparison of shared contacts.

use std::sync::Arc;
use std::time::Duration;

use teloxide::types::{ChatId, Seconds};
use teloxide::{ApiError, RequestError};

use super::{classify, same_phone};
use crate::messaging::Outcome;

#[test]
fn failures_are_classified_once() {
    match classify(&RequestError::RetryAfter(Seconds::from_seconds(7))) {
        Outcome::Retry { after, .. } => assert_eq!(after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    let io = RequestError::Io(Arc::new(std::io::Error::other("reset")));
    assert!(matches!(classify(&io), Outcome::Retry { after: None, .. }));
    assert!(matches!(
        classify(&RequestError::Api(ApiError::Unknown(
            "Internal Server Error".into()
        ))),
        Outcome::Retry { .. }
    ));
    for permanent in [
        RequestError::Api(ApiError::BotBlocked),
        RequestError::Api(ApiError::ChatNotFound),
        RequestError::Api(ApiError::Unknown("Bad Request: message is too long".into())),
        RequestError::MigrateToChatId(ChatId(-100_123)),
    ] {
        match classify(&permanent) {
            Outcome::Reject { reason } => assert!(!reason.is_empty()),
            other => panic!("{permanent:?} → {other:?}"),
        }
    }
}

#[test]
fn shared_phones_match_e164_only_digit_for_digit() {
    assert!(same_phone("355691234567", "+355691234567"));
    assert!(same_phone("+355 69 123 4567", "+355691234567"));
    assert!(!same_phone("355691234568", "+355691234567"));
    assert!(!same_phone("", "+"));
    assert!(!same_phone("35569123456", "+355691234567"));
}
