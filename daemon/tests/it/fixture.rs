//! Backward compatibility: a store written by this release (`daemon/tests/fixtures/store/`,
//! committed) is opened by the current code and every table is read and decoded, so a change
//! of a stored format must come with a migration (`Stored::migrate`) or this test fails. Its
//! rows are also the golden bytes of the stored values (each is written back as the same
//! bytes); the values a demo box has no rows of have golden bytes of their own here.
//!
//! The fixture is written by `fixture::write_store_fixture`, by hand and only when a release
//! changes the format on purpose (the old fixture then becomes `store-<release>/` and stays):
//! `cargo test -p orderd --test it -- --ignored fixture::write_store_fixture`.

use std::path::{Path, PathBuf};

use orderd::domain::{checks, devices, menu, orders, print_jobs, tables as dtables};
use orderd::store::{Stored, codec, tables as t};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestServer;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store")
}

/// The files of a data directory that the fixture keeps: the store (checkpointed whole at a
/// clean stop, so its log is not needed) and the first-run password the test signs in with.
const KEPT: &[&str] = &["orderd.redb", "initial-admin-password"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the committed fixture; run by hand when a release changes a stored format"]
async fn write_store_fixture() {
    let s = TestServer::start().await;
    // Orders: one with an allergy note acknowledged and bumped at the grill, one cancelled,
    // one paid and closed on its check.
    let (st, v) = s
        .send_with(
            "POST",
            "/api/v1/orders",
            Some(&s.admin),
            Some(json!({"type": "takeaway", "allergy": "peanuts", "note": "fixture",
                        "items": [{"item_id": "tave_kosi", "quantity": 1}, {"item_id": "espresso", "quantity": 2}]})),
            &[("idempotency-key", "fixture-order-1")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let first = v["id"].as_str().unwrap().to_owned();
    for action in ["ack_allergy", "bump"] {
        let (st, v) = s.bump(&first, "grill", action).await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    let (_, second) = s
        .order(&s.admin, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    let second = second["id"].as_str().unwrap().to_owned();
    let (st, v) = s
        .send(
            "POST",
            &format!("/api/v1/orders/{second}/status"),
            Some(&s.admin),
            Some(json!({"status": "cancelled", "note": "fixture"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, third) = s
        .order(&s.admin, json!([{"item_id": "lemonade", "quantity": 1}]))
        .await;
    let third = third["id"].as_str().unwrap().to_owned();
    let (st, check) = s
        .send(
            "POST",
            &format!("/api/v1/orders/{third}/check"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{check}");
    let (st, v) = s
        .send_with(
            "POST",
            &format!("/api/v1/checks/{}/payments", check["id"]),
            Some(&s.admin),
            Some(json!({"method": "cash", "amount": check["balance"], "tendered": 1000})),
            &[("idempotency-key", "fixture-payment-1")],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    // The other kinds of event, so the fixture's events are golden bytes of nearly every kind:
    // availability, stock running out, a menu replaced, lines edited, a guest's order at a table
    // asking for the bill, a printed bill, a discount, a transfer, a refund and cash moved.
    let send = |m: &'static str, path: String, body: serde_json::Value| {
        let s = &s;
        async move {
            let (st, v) = s.send(m, &path, Some(&s.admin), Some(body)).await;
            assert!(st.is_success(), "{m} {path}: {st} {v}");
            v
        }
    };
    for available in [false, true] {
        send(
            "PATCH",
            "/api/v1/menu/items/espresso".into(),
            json!({"available": available}),
        )
        .await;
    }
    // Stock running out (lemonade's last one sold) and running low (tavë kosi warns at 5).
    for (item, set, back) in [("lemonade", 1, 50), ("tave_kosi", 6, 20)] {
        let path = format!("/api/v1/menu/items/{item}/stock");
        send("POST", path.clone(), json!({ "set": set })).await;
        let (st, v) = s
            .order(&s.admin, json!([{"item_id": item, "quantity": 1}]))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        send("POST", path, json!({ "set": back })).await;
    }
    let (_, csv) = s
        .send("GET", "/api/v1/menu/csv", Some(&s.admin), None)
        .await;
    let (st, v) = s
        .raw(
            "PUT",
            "/api/v1/menu/csv",
            Some(&s.admin),
            csv.as_str().unwrap().as_bytes().to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, v) = s
        .order(&s.admin, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    send(
        "PATCH",
        format!("/api/v1/orders/{}/items", v["id"].as_str().unwrap()),
        json!({"add": [{"item_id": "espresso", "quantity": 1}]}),
    )
    .await;
    let (_, tables) = s.send("GET", "/api/v1/tables", Some(&s.admin), None).await;
    let token = tables["data"][0]["qr_token"].as_str().unwrap().to_owned();
    let (st, guest) = s
        .send(
            "POST",
            "/api/v1/orders",
            None,
            Some(json!({"type": "dine_in", "table_token": token,
                        "items": [{"item_id": "espresso", "quantity": 2}]})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{guest}");
    let guest_id = guest["id"].as_str().unwrap().to_owned();
    let (st, v) = s
        .send_with(
            "POST",
            &format!("/api/v1/orders/{guest_id}/bill-request"),
            None,
            Some(json!({"lang": "sq"})),
            &[("x-order-key", guest["order_key"].as_str().unwrap())],
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let (bill_printer, _) = s.device_online("bill1", "printer", &["pass"], false).await;
    let table_check = send(
        "POST",
        format!("/api/v1/orders/{guest_id}/check"),
        json!({}),
    )
    .await;
    let tc = table_check["id"].as_u64().unwrap();
    send(
        "POST",
        format!("/api/v1/checks/{tc}/print"),
        json!({"lang": "en"}),
    )
    .await;
    send(
        "POST",
        format!("/api/v1/checks/{tc}/discounts"),
        json!({"percent_bp": 1000, "reason": "Regular guest"}),
    )
    .await;
    let free = tables["data"][1]["id"].as_str().unwrap().to_owned();
    let moved = send(
        "POST",
        format!("/api/v1/checks/{tc}/transfer"),
        json!({"table_id": free}),
    )
    .await;
    let balance = moved["balance"].clone();
    send(
        "POST",
        format!("/api/v1/checks/{tc}/payments"),
        json!({"method": "card", "amount": balance}),
    )
    .await;
    send(
        "POST",
        format!("/api/v1/checks/{tc}/refunds"),
        json!({"amount": 100, "method": "card", "reason": "Cold coffee"}),
    )
    .await;
    send(
        "POST",
        "/api/v1/cash".into(),
        json!({"kind": "float", "amount": 10000}),
    )
    .await;
    drop(bill_printer);
    // A device with a print job, a PIN, and the day closed with a Z.
    let (printer, _) = s.device_online("p1", "printer", &["grill"], false).await;
    let (st, v) = s
        .send(
            "PUT",
            "/api/v1/users/admin/pin",
            Some(&s.admin),
            Some(json!({"pin": "4321"})),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, v) = s
        .order(&s.admin, json!([{"item_id": "tave_kosi", "quantity": 2}]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    s.wait_get("/api/v1/print-jobs", &s.admin, |v| {
        v["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/reports/z",
            Some(&s.admin),
            Some(json!({"force_reason": "fixture"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    drop(printer);
    let dir = s.stop().await;
    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    for name in KEPT {
        let from = dir.path().join(name);
        if from.exists() {
            std::fs::copy(&from, out.join(name)).unwrap();
        }
    }
}

/// Reads every row of a table of encoded values, decoding each as `T`; returns how many.
///
/// The rows are also golden bytes: this release writes each value back as exactly the bytes
/// the fixture holds, so an encoding that changes by accident (a field reordered, a type
/// widened) fails here, not on a box.
fn decode_all<K: redb::Key + 'static, T: Stored>(
    rtx: &redb::ReadTransaction,
    def: TableDefinition<K, &[u8]>,
) -> u64 {
    let table = rtx.open_table(def).unwrap();
    let mut n = 0;
    for row in table.iter().unwrap() {
        let (_, v) = row.unwrap();
        let value = codec::decode::<T>(v.value())
            .unwrap_or_else(|e| panic!("{}: {e}", std::any::type_name::<T>()));
        assert_eq!(
            codec::encode(&value).unwrap(),
            v.value(),
            "{} is written as other bytes than the fixture holds",
            std::any::type_name::<T>()
        );
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_written_by_this_release_opens_and_every_table_reads() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        fixture_dir().join("orderd.redb").is_file(),
        "the committed fixture's store is missing"
    );
    for entry in std::fs::read_dir(fixture_dir()).expect("the committed fixture") {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    let s = TestServer::start_in(dir, |_| {}).await;
    {
        let rtx = s.state().store.read().unwrap();
        let counts = [
            (
                "orders",
                decode_all::<u128, orders::StoredOrder>(&rtx, t::ORDERS),
            ),
            ("menu", decode_all::<&str, menu::Menu>(&rtx, t::MENU)),
            (
                "tables",
                decode_all::<&str, dtables::Table>(&rtx, t::TABLES),
            ),
            (
                "users",
                decode_all::<&str, orderd::auth::User>(&rtx, t::USERS),
            ),
            (
                "sessions",
                decode_all::<[u8; 32], orderd::auth::Session>(&rtx, t::SESSIONS),
            ),
            (
                "idempotency",
                decode_all::<&str, orders::IdemRecord>(&rtx, t::IDEMPOTENCY),
            ),
            (
                "events",
                decode_all::<u64, orderd::store::event_row::EventRow>(&rtx, t::EVENTS),
            ),
            (
                "devices",
                decode_all::<&str, devices::Device>(&rtx, t::DEVICES),
            ),
            (
                "print_jobs",
                decode_all::<&str, print_jobs::PrintJobRow>(&rtx, t::PRINT_JOBS),
            ),
            (
                "checks",
                decode_all::<u64, checks::StoredCheck>(&rtx, t::CHECKS),
            ),
            (
                "pay_keys",
                decode_all::<&str, checks::PayKey>(&rtx, t::PAY_KEYS),
            ),
            (
                "ledger",
                decode_all::<(u32, u64), checks::LedgerEntry>(&rtx, t::LEDGER),
            ),
            (
                "z_reports",
                decode_all::<u32, orderd_protocol::ZReport>(&rtx, t::Z_REPORTS),
            ),
        ];
        for (name, n) in counts {
            assert!(n > 0, "the fixture's {name} table is empty");
        }
        // Tables of plain values: read whole.
        for (name, n) in [
            ("stock", rtx.open_table(t::STOCK).unwrap().len().unwrap()),
            (
                "counters",
                rtx.open_table(t::COUNTERS).unwrap().len().unwrap(),
            ),
            ("pins", rtx.open_table(t::PINS).unwrap().len().unwrap()),
            (
                "idx_day",
                rtx.open_table(t::IDX_DAY).unwrap().len().unwrap(),
            ),
            (
                "order_checks",
                rtx.open_table(t::ORDER_CHECKS).unwrap().len().unwrap(),
            ),
        ] {
            assert!(n > 0, "the fixture's {name} table is empty");
        }
        // The events are golden bytes of the event kinds the fixture holds (written back as the
        // same bytes above); these are the kinds it holds.
        let kinds: std::collections::BTreeSet<&'static str> = rtx
            .open_table(t::EVENTS)
            .unwrap()
            .iter()
            .unwrap()
            .filter_map(|row| {
                match codec::decode::<orderd::store::event_row::EventRow>(row.unwrap().1.value())
                    .unwrap()
                {
                    orderd::store::event_row::EventRow::Full(e) => Some(e.kind.name()),
                    orderd::store::event_row::EventRow::Placed { .. } => None,
                }
            })
            .collect();
        // Every kind this release writes (`lines_changed` is only read: older logs hold it).
        for kind in [
            "order_placed",
            "status_changed",
            "availability_changed",
            "stock_low",
            "sold_out",
            "menu_replaced",
            "device_status",
            "print_failover",
            "lines_edited",
            "payment_recorded",
            "check_adjusted",
            "check_closed",
            "check_refunded",
            "check_moved",
            "cash_moved",
            "bill_printed",
            "bill_requested",
            "day_closed",
            "station_done",
            "allergy_noted",
            "allergy_acked",
        ] {
            assert!(
                kinds.contains(kind),
                "the fixture holds no {kind} event: {kinds:?}"
            );
        }
        // What a demo box has no rows in (messages, codes, summaries) still opens and decodes.
        decode_all::<u32, orderd::domain::analytics::DailySummary>(&rtx, t::DAILY_SUMMARIES);
        decode_all::<&str, orderd::domain::otp::OtpRow>(&rtx, t::OTP);
        decode_all::<[u8; 32], orderd::domain::otp::CustomerToken>(&rtx, t::CUSTOMER_TOKENS);
        decode_all::<u64, orderd::domain::outbox::OutboxRow>(&rtx, t::OUTBOX);
        decode_all::<u128, orderd::domain::outbox::Contact>(&rtx, t::ORDER_CONTACTS);
    }
    // Through the API: the allergy note and its acknowledgement, a closed check, the Z.
    let (st, v) = s
        .send("GET", "/api/v1/orders/active", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let allergic = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| !o["allergy"].is_null())
        .expect("the order with an allergy note");
    assert_eq!(
        allergic["allergy"],
        json!({"note": "peanuts", "acked": ["grill"]})
    );
    assert_eq!(allergic["stations_done"], json!(["grill"]));
    let (st, v) = s
        .send("GET", "/api/v1/reports/z", Some(&s.admin), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // The box goes on: a new order on the old store.
    let (st, v) = s
        .order(&s.admin, json!([{"item_id": "espresso", "quantity": 1}]))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    s.stop().await;
}

/// Golden bytes of the stored values a demo box has no rows of (the fixture covers the rest):
/// each is encoded as these bytes, and these bytes decode to it.
#[test]
fn golden_bytes_of_the_values_the_fixture_has_no_rows_of() {
    use orderd::domain::analytics::{DailySummary, ItemTotals};
    use orderd::domain::otp::{CustomerToken, OtpRow};
    use orderd::domain::outbox::{Channel, Contact, Message, OutboxRow, State};
    fn golden<T: Stored + std::fmt::Debug>(value: &T, hex: &str) {
        let bytes = codec::encode(value).unwrap();
        let got = bytes.iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        assert_eq!(
            got,
            hex,
            "{} is written as other bytes",
            std::any::type_name::<T>()
        );
        let back: T = codec::decode(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{value:?}"));
    }
    golden(
        &DailySummary {
            orders: 3,
            cancelled: 1,
            revenue: 1250,
            by_status: [("served".to_owned(), 2)].into(),
            by_hour: vec![0, 2],
            items: [(
                "espresso".to_owned(),
                ItemTotals {
                    name: "Espresso".into(),
                    quantity: 2,
                    revenue: 300,
                },
            )]
            .into(),
            prep_ms_sum: 60_000,
            prep_count: 2,
            revenue_by_hour: vec![0, 1250],
        },
        "020301c4130106736572766564020200020108657370726573736f08457370726573736f02d804e0d403020200c413",
    );
    golden(
        &OtpRow {
            code_mac: Some([7; 32]),
            expires_at: 1_795_348_800_000,
            attempts: 1,
            channel: Channel::Whatsapp,
            lang: "sq".into(),
            table_id: Some("t1".into()),
            sends: vec![1_795_348_700_000],
            tg_link: None,
        },
        "0101070707070707070707070707070707070707070707070707070707070707070780c48299a03401000273710102743101e0b6fc98a03400",
    );
    golden(
        &CustomerToken {
            phone: "+355690000001".into(),
            table_id: None,
            channel: Channel::Telegram,
            lang: "en".into(),
            created_at: 1_795_348_800_000,
            expires_at: 1_795_435_200_000,
        },
        "010d2b333535363930303030303031000102656e80c48299a03480fc9bc2a034",
    );
    golden(
        &OutboxRow {
            id: 9,
            channel: Channel::Telegram,
            to: "42".into(),
            lang: "en".into(),
            message: Message::Alert {
                key: "alert_sold_out".into(),
                vars: vec![("item".into(), "Espresso".into())],
            },
            state: State::Failed,
            attempts: 2,
            next_at: 1_795_348_805_000,
            created_at: 1_795_348_800_000,
            updated_at: 1_795_348_801_000,
            last_error: Some("429".into()),
            provider_id: None,
        },
        "01090102343202656e020e616c6572745f736f6c645f6f757401046974656d08457370726573736f030288eb8299a03480c48299a034e8cb8299a034010334323900",
    );
    golden(
        &Contact {
            phone: "+355690000001".into(),
            channel: Channel::Whatsapp,
            lang: "sq".into(),
        },
        "010d2b33353536393030303030303100027371",
    );
}
