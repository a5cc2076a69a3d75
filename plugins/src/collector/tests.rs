//! How the collector's answers are classified.

use super::{Posted, classify};
use orderd_protocol::upload::Ack;
use std::time::Duration;

#[test]
fn answers_are_classified_once() {
    let ack = postcard::to_allocvec(&Ack { acked_seq: 42 }).unwrap();
    assert_eq!(classify(200, None, &ack), Posted::Acked(42));
    assert!(matches!(classify(200, None, b"{}"), Posted::Retry { .. }));
    assert!(matches!(classify(200, None, b""), Posted::Retry { .. }));
    let gap = br#"{"error":{"code":"gap","message":"resend","details":{"expected_seq":7}}}"#;
    assert_eq!(classify(409, None, gap), Posted::Gap(7));
    let other = br#"{"error":{"code":"box_mismatch","message":"another box"}}"#;
    assert!(matches!(classify(409, None, other), Posted::Rejected(m) if m.contains("another box")));
    assert!(matches!(classify(401, None, b""), Posted::Refused(_)));
    assert_eq!(classify(413, None, b""), Posted::TooLarge);
    assert!(matches!(
        classify(503, Some(Duration::from_secs(3)), b""),
        Posted::Retry { after: Some(d), .. } if d == Duration::from_secs(3)
    ));
    assert!(matches!(classify(400, None, b""), Posted::Rejected(_)));
}
