//! Classification of Cloud API answers.

use std::time::Duration;

use serde_json::json;

use super::classify;
use crate::messaging::Outcome;

#[test]
fn answers_are_classified_once() {
    assert_eq!(
        classify(200, None, &json!({"messages": [{"id": "wamid.1"}]})),
        Outcome::Sent {
            provider_id: "wamid.1".into()
        }
    );
    assert!(matches!(
        classify(429, Some(Duration::from_secs(7)), &json!({})),
        Outcome::Retry { after: Some(d), .. } if d == Duration::from_secs(7)
    ));
    assert!(matches!(
        classify(
            400,
            None,
            &json!({"error": {"code": 130_429, "message": "rate"}})
        ),
        Outcome::Retry { .. }
    ));
    assert!(matches!(
        classify(503, None, &json!({})),
        Outcome::Retry { .. }
    ));
    assert!(matches!(
        classify(401, None, &json!({})),
        Outcome::Retry { .. }
    ));
    match classify(
        400,
        None,
        &json!({"error": {"code": 131_026, "message": "Message undeliverable"}}),
    ) {
        Outcome::Reject { reason } => assert!(reason.contains("131026"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify(200, None, &json!({"unexpected": true})),
        Outcome::Retry { .. }
    ));
}
