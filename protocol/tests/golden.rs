//! Golden tests of every device payload and of the upload's messages: exact JSON text and exact
//! postcard bytes, and round trips in both encodings. A change here breaks deployed devices: add fields with a new
//! `FORMAT_VERSION` instead of editing these vectors.

use orderd_protocol::*;

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    for enc in [Encoding::Json, Encoding::Postcard] {
        let bytes = encode(value, enc).unwrap();
        assert_eq!(&decode::<T>(&bytes, enc).unwrap(), value, "{enc:?}");
    }
}

fn ticket() -> TicketEvent {
    TicketEvent {
        version: 1,
        ticket: "o1".into(),
        number: "ORD-20261122-007".into(),
        short: "007".into(),
        station: "grill".into(),
        order_type: OrderType::DineIn,
        table: Some("T4".into()),
        placed_at: 1000,
        seq: 42,
        change: TicketChange::New {
            lines: vec![TicketLine {
                item_id: "burger".into(),
                name: "Burger".into(),
                quantity: 2,
                modifiers: vec!["Medium".into()],
                note: None,
                allergens: vec!["gluten".into()],
            }],
        },
        allergy: Some("nuts".into()),
    }
}

#[test]
fn ticket_event_golden() {
    let t = ticket();
    let json = String::from_utf8(encode(&t, Encoding::Json).unwrap()).unwrap();
    assert_eq!(
        json,
        r#"{"version":1,"ticket":"o1","number":"ORD-20261122-007","short":"007","station":"grill","order_type":"dine_in","table":"T4","placed_at":1000,"seq":42,"change":{"new":{"lines":[{"item_id":"burger","name":"Burger","quantity":2,"modifiers":["Medium"],"note":null,"allergens":["gluten"]}]}},"allergy":"nuts"}"#
    );
    let mut golden = vec![1, 2, b'o', b'1', 16];
    golden.extend_from_slice(b"ORD-20261122-007");
    golden.push(3);
    golden.extend_from_slice(b"007");
    golden.push(5);
    golden.extend_from_slice(b"grill");
    golden.extend_from_slice(&[0, 1, 2, b'T', b'4', 0xe8, 0x07, 42, 0, 1, 6]);
    golden.extend_from_slice(b"burger");
    golden.push(6);
    golden.extend_from_slice(b"Burger");
    golden.extend_from_slice(&[2, 1, 6]);
    golden.extend_from_slice(b"Medium");
    golden.push(0);
    // The allergens, appended to a line. Tickets and boards travel as JSON (station topics
    // are shared by several devices), where a reader ignores a field it does not know.
    golden.extend_from_slice(&[1, 6]);
    golden.extend_from_slice(b"gluten");
    // The order's allergy note, appended to the ticket.
    golden.extend_from_slice(&[1, 4]);
    golden.extend_from_slice(b"nuts");
    assert_eq!(encode(&t, Encoding::Postcard).unwrap(), golden);
    round_trip(&t);
    let changed = TicketEvent {
        change: TicketChange::Changed {
            deltas: vec![LineDelta {
                item_id: "burger".into(),
                name: "Burger".into(),
                old_quantity: 2,
                new_quantity: 3,
            }],
        },
        ..ticket()
    };
    round_trip(&changed);
    let cancelled = TicketEvent {
        change: TicketChange::Cancelled {
            reason: Some("customer left".into()),
        },
        allergy: None,
        ..ticket()
    };
    assert!(
        String::from_utf8(encode(&cancelled, Encoding::Json).unwrap())
            .unwrap()
            .ends_with(r#""change":{"cancelled":{"reason":"customer left"}},"allergy":null}"#)
    );
    round_trip(&cancelled);
}

#[test]
fn board_golden() {
    let b = Board {
        version: 1,
        station: "bar".into(),
        seq: 9,
        tickets: vec![BoardTicket {
            ticket: "o1".into(),
            short: "007".into(),
            status: OrderStatus::Preparing,
            order_type: OrderType::Takeaway,
            table: None,
            placed_at: 5,
            lines: vec![],
            allergy: Some("milk".into()),
            allergy_acked: true,
        }],
        total: 1,
        truncated: false,
    };
    assert_eq!(
        String::from_utf8(encode(&b, Encoding::Json).unwrap()).unwrap(),
        r#"{"version":1,"station":"bar","seq":9,"tickets":[{"ticket":"o1","short":"007","status":"preparing","order_type":"takeaway","table":null,"placed_at":5,"lines":[],"allergy":"milk","allergy_acked":true}],"total":1,"truncated":false}"#
    );
    // The total and the truncation flag were appended: a board's first bytes are as before.
    let mut golden = vec![1, 3, b'b', b'a', b'r', 9, 1, 2, b'o', b'1', 3];
    golden.extend_from_slice(b"007");
    // The allergy note and its acknowledgement, appended to a board ticket.
    golden.extend_from_slice(&[2, 1, 0, 5, 0, 1, 4]);
    golden.extend_from_slice(b"milk");
    golden.extend_from_slice(&[1, 1, 0]);
    assert_eq!(encode(&b, Encoding::Postcard).unwrap(), golden);
    round_trip(&b);
    let c = CompactBoard {
        version: 1,
        station: "bar".into(),
        seq: 9,
        tickets: vec![CompactTicket {
            ticket: "o1".into(),
            short: "007".into(),
            status: OrderStatus::Preparing,
            table: Some("T4".into()),
            placed_at: 5,
            items: 3,
            allergy: true,
        }],
        total: 250,
        truncated: true,
    };
    assert_eq!(
        String::from_utf8(encode(&c, Encoding::Json).unwrap()).unwrap(),
        r#"{"version":1,"station":"bar","seq":9,"tickets":[{"ticket":"o1","short":"007","status":"preparing","table":"T4","placed_at":5,"items":3,"allergy":true}],"total":250,"truncated":true}"#
    );
    round_trip(&c);
}

#[test]
fn print_job_golden() {
    let j = PrintJob {
        version: 1,
        job_id: "j1".into(),
        order: "ORD-1".into(),
        copy: PrintCopy::Reprint,
        format: PrintFormat::EscPos,
        data: vec![0x1b, 0x40, b'A'],
    };
    assert_eq!(
        String::from_utf8(encode(&j, Encoding::Json).unwrap()).unwrap(),
        r#"{"version":1,"job_id":"j1","order":"ORD-1","copy":"reprint","format":"esc_pos","data":"G0BB"}"#
    );
    let mut golden = vec![1, 2, b'j', b'1', 5];
    golden.extend_from_slice(b"ORD-1");
    golden.extend_from_slice(&[1, 0, 3, 0x1b, 0x40, b'A']);
    assert_eq!(encode(&j, Encoding::Postcard).unwrap(), golden);
    round_trip(&j);
    // Not base64 → refused, not a panic.
    let bad = br#"{"version":1,"job_id":"j1","order":"o","copy":"original","format":"text","data":"***"}"#;
    assert!(decode::<PrintJob>(bad, Encoding::Json).is_err());
}

#[test]
fn small_messages_golden() {
    let s = JobStatus {
        version: 1,
        job_id: "j1".into(),
        status: JobState::PaperOut,
    };
    assert_eq!(
        String::from_utf8(encode(&s, Encoding::Json).unwrap()).unwrap(),
        r#"{"version":1,"job_id":"j1","status":"paper_out"}"#
    );
    assert_eq!(
        encode(&s, Encoding::Postcard).unwrap(),
        [1, 2, b'j', b'1', 1]
    );
    round_trip(&s);

    let b = BuzzerSet {
        version: 1,
        pattern: BuzzPattern::Double,
        duration_ms: 300,
    };
    assert_eq!(
        String::from_utf8(encode(&b, Encoding::Json).unwrap()).unwrap(),
        r#"{"version":1,"pattern":"double","duration_ms":300}"#
    );
    assert_eq!(encode(&b, Encoding::Postcard).unwrap(), [1, 1, 0xac, 0x02]);
    round_trip(&b);

    let bump = Bump {
        version: 1,
        ticket: "o1".into(),
        action: BumpAction::Recall,
    };
    assert_eq!(
        String::from_utf8(encode(&bump, Encoding::Json).unwrap()).unwrap(),
        r#"{"version":1,"ticket":"o1","action":"recall"}"#
    );
    assert_eq!(
        encode(&bump, Encoding::Postcard).unwrap(),
        [1, 2, b'o', b'1', 1]
    );
    round_trip(&bump);

    let answer = BumpResult {
        version: 1,
        ticket: "o1".into(),
        action: Some(BumpAction::Bump),
        ok: false,
        code: "not_found".into(),
        message: "no".into(),
    };
    assert_eq!(
        String::from_utf8(encode(&answer, Encoding::Json).unwrap()).unwrap(),
        r#"{"version":1,"ticket":"o1","action":"bump","ok":false,"code":"not_found","message":"no"}"#
    );
    let mut golden = vec![1, 2, b'o', b'1', 1, 0, 0, 9];
    golden.extend_from_slice(b"not_found");
    golden.extend_from_slice(&[2, b'n', b'o']);
    assert_eq!(encode(&answer, Encoding::Postcard).unwrap(), golden);
    round_trip(&answer);
}

#[test]
fn plain_text_payloads() {
    assert_eq!(Availability::parse(b"online"), Some(Availability::Online));
    assert_eq!(Availability::parse(b"offline"), Some(Availability::Offline));
    assert_eq!(Availability::parse(b"ONLINE"), None);
    assert_eq!(Availability::Offline.as_str(), "offline");
    assert_eq!(
        DeviceState::parse(b"paper_out"),
        Some(DeviceState::PaperOut)
    );
    assert_eq!(
        DeviceState::parse(b"jammed"),
        Some(DeviceState::Other("jammed".into()))
    );
    assert!(DeviceState::Ready.can_print() && !DeviceState::CoverOpen.can_print());
    for bad in [&b""[..], b"\xff\xfe", b"has space", &[b'x'; 33]] {
        assert_eq!(DeviceState::parse(bad), None);
    }
}

#[test]
fn malformed_payloads_are_errors_not_panics() {
    let garbage: &[&[u8]] = &[b"", b"{", b"null", b"[1,2,3]", b"\xff\xff\xff", &[0xff; 64]];
    for g in garbage {
        for enc in [Encoding::Json, Encoding::Postcard] {
            assert!(decode::<TicketEvent>(g, enc).is_err(), "{g:?} {enc:?}");
            assert!(decode::<Bump>(g, enc).is_err(), "{g:?} {enc:?}");
        }
    }
    // Wrong types in JSON.
    assert!(
        decode::<Bump>(
            br#"{"version":"1","ticket":"o1","action":"bump"}"#,
            Encoding::Json
        )
        .is_err()
    );
    assert!(
        decode::<Bump>(
            br#"{"version":1,"ticket":"o1","action":"explode"}"#,
            Encoding::Json
        )
        .is_err()
    );
}

/// [`status_changed`] as JSON.
const EV: &str = r#"{"version":1,"seq":7,"at":1700000000000,"kind":{"status_changed":{"order_id":"o1","number":"ORD-20261122-001","from":"placed","to":"accepted","actor":"anna","note":null,"recall":false}}}"#;

fn status_changed() -> Event {
    Event {
        version: FORMAT_VERSION,
        seq: 7,
        at: 1_700_000_000_000,
        kind: EventKind::StatusChanged {
            order_id: "o1".into(),
            number: "ORD-20261122-001".into(),
            from: OrderStatus::Placed,
            to: OrderStatus::Accepted,
            actor: "anna".into(),
            note: None,
            recall: false,
        },
    }
}

/// The upload's messages: the collector's answer in both encodings, and the JSON batch (the
/// postcard batch has its own golden in `upload.rs`); and an event as JSON, which the JSON
/// batch and the staff stream carry.
#[test]
fn upload_messages_and_event_json_golden() {
    let ack = upload::Ack { acked_seq: 300 };
    assert_eq!(serde_json::to_string(&ack).unwrap(), r#"{"acked_seq":300}"#);
    assert_eq!(postcard::to_allocvec(&ack).unwrap(), [0xac, 0x02]);
    round_trip(&ack);

    let ev = status_changed();
    assert_eq!(serde_json::to_string(&ev).unwrap(), EV);
    assert_eq!(serde_json::from_str::<Event>(EV).unwrap(), ev);
    let batch = upload::JsonBatch {
        format_version: FORMAT_VERSION,
        site_id: "s1".into(),
        box_id: "b1".into(),
        first_seq: 7,
        last_seq: 7,
        events: vec![ev],
    };
    let json = serde_json::to_string(&batch).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"format_version":1,"site_id":"s1","box_id":"b1","first_seq":7,"last_seq":7,"events":[{EV}]}}"#
        )
    );
    assert_eq!(
        serde_json::from_str::<upload::JsonBatch>(&json).unwrap(),
        batch
    );
}
