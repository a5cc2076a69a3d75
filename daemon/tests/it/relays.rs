//! Stock Tasmota and Shelly relays as buzzers, played by scripted MQTT clients that speak each
//! dialect: rung in their own topics, their availability read from their own last wills, kept
//! to their own topics, and a stalled one holds up nobody.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestServer, mqtt};

const WAIT: Duration = Duration::from_secs(5);

/// Registers a relay buzzer for the grill and returns its password.
async fn relay(s: &TestServer, id: &str, flavour: &str) -> String {
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(json!({"id": id, "kind": "buzzer", "stations": ["grill"], "flavour": flavour})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["flavour"], flavour);
    v["password"].as_str().unwrap().to_owned()
}

/// A relay as it connects: its last will, its command subscription, its `online`.
async fn relay_online(
    s: &TestServer,
    id: &str,
    pw: &str,
    (will, offline, online): (&str, &str, &str),
    command: &str,
) -> mqtt::Dev {
    let mut dev = mqtt::connect_with_will(s.mqtt(), id, pw, Some((will, offline)))
        .await
        .unwrap();
    let codes = dev.sub(command).await;
    assert!(
        matches!(codes[0], rumqttc::SubscribeReasonCode::Success(_)),
        "{command}: {codes:?}"
    );
    dev.publish(will, online, true).await;
    dev
}

async fn online(s: &TestServer, id: &str, want: bool) {
    s.wait_device(id, "online", json!(want)).await;
}

async fn place_grill_order(s: &TestServer) {
    let (st, v) = s
        .order(&s.admin, json!([{"item_id": "tave_kosi", "quantity": 1}]))
        .await;
    assert_eq!(st, 201, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_and_shelly_relays_ring_in_their_own_dialects() {
    let s = TestServer::start().await;
    let pw = relay(&s, "bz-t", "tasmota").await;
    let mut tasmota = relay_online(
        &s,
        "bz-t",
        &pw,
        ("tele/bz-t/LWT", "Offline", "Online"),
        "cmnd/bz-t/#",
    )
    .await;
    let pw = relay(&s, "sh-2", "shelly_gen2").await;
    let mut gen2 = relay_online(
        &s,
        "sh-2",
        &pw,
        ("sh-2/online", "false", "true"),
        "sh-2/rpc",
    )
    .await;
    let pw = relay(&s, "sh-1", "shelly_gen1").await;
    let mut gen1 = relay_online(
        &s,
        "sh-1",
        &pw,
        ("shellies/sh-1/online", "false", "true"),
        "shellies/sh-1/relay/0/command",
    )
    .await;
    for id in ["bz-t", "sh-2", "sh-1"] {
        online(&s, id, true).await;
    }

    // A new order rings `double` on each, as each can.
    place_grill_order(&s).await;
    let (backlog, _) = tasmota
        .next_on("/Backlog", WAIT)
        .await
        .expect("Tasmota rung");
    assert_eq!(
        String::from_utf8(backlog).unwrap(),
        "Power1 ON; Delay 3; Power1 OFF; Delay 2; Power1 ON; Delay 3; Power1 OFF"
    );
    let (rpc, _) = gen2.next_on("/rpc", WAIT).await.expect("Shelly Gen2 rung");
    let rpc: Value = serde_json::from_slice(&rpc).unwrap();
    assert_eq!(rpc["method"], "Switch.Set");
    assert_eq!(
        rpc["params"],
        json!({"id": 0, "on": true, "toggle_after": 1.0})
    );
    let (on, _) = gen1
        .next_on("/command", WAIT)
        .await
        .expect("Shelly Gen1 on");
    let on_at = Instant::now();
    assert_eq!(on, b"on");
    // A Gen1 cannot switch itself off: the box does, after the pulse (1 s for `double`).
    let (off, _) = gen1
        .next_on("/command", WAIT)
        .await
        .expect("Shelly Gen1 off");
    assert_eq!(off, b"off");
    let pulse = on_at.elapsed();
    assert!(
        pulse >= Duration::from_millis(800) && pulse < Duration::from_secs(3),
        "off after {pulse:?}"
    );

    // A relay dropped without a goodbye: its own will marks it offline, in its own dialect.
    drop(tasmota);
    online(&s, "bz-t", false).await;
    online(&s, "sh-2", true).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_touches_only_its_own_topics() {
    let s = TestServer::start().await;
    let pw_t = relay(&s, "bz-t", "tasmota").await;
    let pw_2 = relay(&s, "sh-2", "shelly_gen2").await;
    let mut tasmota = relay_online(
        &s,
        "bz-t",
        &pw_t,
        ("tele/bz-t/LWT", "Offline", "Online"),
        "cmnd/bz-t/#",
    )
    .await;
    let _gen2 = relay_online(
        &s,
        "sh-2",
        &pw_2,
        ("sh-2/online", "false", "true"),
        "sh-2/rpc",
    )
    .await;
    online(&s, "sh-2", true).await;
    // Not another relay's commands, and none of orderd's topics.
    for filter in ["cmnd/sh-2/#", "sh-2/rpc", "orderd/demo/#", "#"] {
        let codes = tasmota.sub(filter).await;
        assert_eq!(
            codes,
            [rumqttc::SubscribeReasonCode::Failure],
            "{filter} allowed"
        );
    }
    // A forged availability for another relay changes nothing.
    tasmota.publish("sh-2/online", "false", true).await;
    tasmota
        .publish("orderd/demo/device/sh-2/availability", "offline", true)
        .await;
    let devices = s.wait_get("/api/v1/devices", &s.admin, |_| true).await;
    crate::common::quiet(Duration::from_millis(500)).await;
    let devices_after = s.wait_get("/api/v1/devices", &s.admin, |_| true).await;
    for v in [devices, devices_after] {
        let sh2 = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "sh-2")
            .unwrap()
            .clone();
        assert_eq!(sh2["online"], true, "{sh2}");
    }
    // A buzzer of orderd's own dialect cannot pose as a relay either.
    let (st, v) = s
        .send(
            "POST",
            "/api/v1/devices",
            Some(&s.admin),
            Some(
                json!({"id": "p9", "kind": "printer", "stations": ["grill"], "flavour": "tasmota"}),
            ),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["code"], "validation_failed");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("flavour"),
        "{v}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_relay_holds_up_no_other_buzzer_or_display() {
    let s = TestServer::start().await;
    // A Shelly whose socket nobody reads any more, once it has subscribed.
    let pw = relay(&s, "sh-stall", "shelly_gen2").await;
    let (stalled, mut el) = mqtt::connected(
        s.mqtt(),
        "sh-stall",
        &pw,
        Some(("sh-stall/online", "false")),
    )
    .await
    .unwrap();
    stalled
        .subscribe("sh-stall/rpc", rumqttc::QoS::AtMostOnce)
        .await
        .unwrap();
    stalled
        .publish("sh-stall/online", rumqttc::QoS::AtLeastOnce, true, "true")
        .await
        .unwrap();
    // Read up to its SUBACK and the PUBACK of its `online`, then never again.
    tokio::time::timeout(WAIT, async {
        let (mut subscribed, mut announced) = (false, false);
        while !(subscribed && announced) {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => subscribed = true,
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => announced = true,
                _ => {}
            }
        }
    })
    .await
    .expect("the stalled relay's SUBACK and PUBACK");
    online(&s, "sh-stall", true).await;
    let pw = relay(&s, "bz-t", "tasmota").await;
    let mut tasmota = relay_online(
        &s,
        "bz-t",
        &pw,
        ("tele/bz-t/LWT", "Offline", "Online"),
        "cmnd/bz-t/#",
    )
    .await;
    let (mut display, _) = s.device_online("d1", "display", &["grill"], false).await;
    display.sub("orderd/demo/station/grill/ticket").await;
    online(&s, "bz-t", true).await;
    // Every order's ticket reaches the display at once, and the Tasmota keeps ringing (a ring
    // that comes while the last still sounds is left out, so orders go on until three rang),
    // while the stalled Shelly's rings pile up unread.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut rings = 0;
    while rings < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{rings} rings in 20 s"
        );
        place_grill_order(&s).await;
        assert!(
            display.next_on("/ticket", WAIT).await.is_some(),
            "ticket held up"
        );
        if tasmota
            .next_on("/Backlog", Duration::from_millis(400))
            .await
            .is_some()
        {
            rings += 1;
        }
    }
    drop(el);
    s.stop().await;
}
