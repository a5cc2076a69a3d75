//! Stock relays as buzzers and lights: the topics and payloads of Tasmota and Shelly (Gen1 and
//! Gen2) devices, which speak MQTT in their own dialect, so that one on sale works without
//! custom firmware (see `docs/mqtt.md`, "Relays").
//!
//! A relay's MQTT topic (Tasmota's `Topic`, Shelly Gen2's topic prefix, Shelly Gen1's device id)
//! must be set to its orderd device id; its client id and user name are that id too. Patterns
//! become what a relay can do: Tasmota runs a `Backlog` of `Power` and `Delay` (tenths of a
//! second) by itself, so it beeps the pattern; a Shelly switches on for one pulse whose length
//! stands for the pattern.

use alloc::format;
use alloc::string::{String, ToString as _};
use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::device::BuzzPattern;
use crate::topics::is_valid_id;

/// The dialect a buzzer or light speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flavour {
    /// orderd's own topics (`buzzer/{id}/set`, `device/{id}/availability`).
    #[default]
    Orderd,
    /// A stock Tasmota device: `cmnd/{id}/Backlog`, availability on `tele/{id}/LWT`.
    Tasmota,
    /// A Shelly Gen2 or later (Plus, Pro): RPC `Switch.Set` on `{id}/rpc`, availability on
    /// `{id}/online`.
    ShellyGen2,
    /// A Shelly Gen1: `shellies/{id}/relay/0/command`, availability on
    /// `shellies/{id}/online`.
    ShellyGen1,
}

impl Flavour {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Orderd => "orderd",
            Self::Tasmota => "tasmota",
            Self::ShellyGen2 => "shelly_gen2",
            Self::ShellyGen1 => "shelly_gen1",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Orderd,
            Self::Tasmota,
            Self::ShellyGen2,
            Self::ShellyGen1,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
    }

    /// Whether it speaks a relay's dialect rather than orderd's topics.
    pub const fn is_relay(self) -> bool {
        !matches!(self, Self::Orderd)
    }
}

/// One message for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayMessage {
    /// Topic.
    pub topic: String,
    /// Payload (text).
    pub payload: String,
}

/// On and off times of a pattern, in tenths of a second, for a relay that runs a sequence.
const fn steps(pattern: BuzzPattern) -> &'static [(u8, u8)] {
    match pattern {
        BuzzPattern::Single => &[(3, 0)],
        BuzzPattern::Double => &[(3, 2), (3, 0)],
        BuzzPattern::Triple => &[(3, 2), (3, 2), (3, 0)],
        BuzzPattern::Long => &[(15, 0)],
        BuzzPattern::Alarm => &[(5, 3), (5, 3), (5, 3), (5, 0)],
    }
}

/// How long a pattern keeps a relay busy, in milliseconds.
pub fn pattern_ms(pattern: BuzzPattern) -> u32 {
    steps(pattern)
        .iter()
        .map(|(on, off)| u32::from(*on) + u32::from(*off))
        .sum::<u32>()
        * 100
}

/// The one pulse a Shelly gives for a pattern, in tenths of a second: a relay that cannot run a
/// sequence tells the patterns apart by length.
pub const fn shelly_pulse(pattern: BuzzPattern) -> u8 {
    match pattern {
        BuzzPattern::Single => 5,
        BuzzPattern::Double => 10,
        BuzzPattern::Triple => 15,
        BuzzPattern::Long => 20,
        BuzzPattern::Alarm => 40,
    }
}

/// What to publish to ring `pattern` on relay `id`: the messages now, and for a Shelly Gen1,
/// which cannot switch itself off, the message to send after the returned delay (ms).
/// `request` numbers a Gen2 RPC call; `src` is where a Gen2 device sends its answer.
pub fn ring(
    flavour: Flavour,
    id: &str,
    pattern: BuzzPattern,
    request: u32,
    src: &str,
) -> (Vec<RelayMessage>, Option<(u32, RelayMessage)>) {
    match flavour {
        Flavour::Orderd => (Vec::new(), None),
        Flavour::Tasmota => {
            let mut cmds: Vec<String> = Vec::new();
            for (on, off) in steps(pattern) {
                cmds.push("Power1 ON".into());
                cmds.push(format!("Delay {on}"));
                cmds.push("Power1 OFF".into());
                if *off > 0 {
                    cmds.push(format!("Delay {off}"));
                }
            }
            (
                vec![RelayMessage {
                    topic: format!("cmnd/{id}/Backlog"),
                    payload: cmds.join("; "),
                }],
                None,
            )
        }
        Flavour::ShellyGen2 => {
            let pulse = shelly_pulse(pattern);
            (
                vec![RelayMessage {
                    topic: format!("{id}/rpc"),
                    payload: format!(
                        "{{\"id\":{request},\"src\":\"{src}\",\"method\":\"Switch.Set\",\"params\":{{\"id\":0,\"on\":true,\"toggle_after\":{}.{}}}}}",
                        pulse / 10,
                        pulse % 10
                    ),
                }],
                None,
            )
        }
        Flavour::ShellyGen1 => {
            let topic = format!("shellies/{id}/relay/0/command");
            (
                vec![RelayMessage {
                    topic: topic.clone(),
                    payload: "on".into(),
                }],
                Some((
                    u32::from(shelly_pulse(pattern)) * 100,
                    RelayMessage {
                        topic,
                        payload: "off".into(),
                    },
                )),
            )
        }
    }
}

/// The topic filters on which relays say whether they are online (for the hub to subscribe).
pub fn availability_filters() -> [&'static str; 3] {
    ["tele/+/LWT", "+/online", "shellies/+/online"]
}

/// Reads a relay's availability message: its id, its flavour and whether it is online.
/// `None` for any other topic or an unknown payload.
pub fn availability<'a>(topic: &'a str, payload: &[u8]) -> Option<(&'a str, Flavour, bool)> {
    let parts: Vec<&str> = topic.split('/').collect();
    let (id, flavour) = match parts.as_slice() {
        ["tele", id, "LWT"] => (*id, Flavour::Tasmota),
        ["shellies", id, "online"] => (*id, Flavour::ShellyGen1),
        [id, "online"] => (*id, Flavour::ShellyGen2),
        _ => return None,
    };
    if !is_valid_id(id) {
        return None;
    }
    let tasmota = flavour == Flavour::Tasmota;
    let online = match (tasmota, payload) {
        (true, b"Online") | (false, b"true") => true,
        (true, b"Offline") | (false, b"false") => false,
        _ => return None,
    };
    Some((id, flavour, online))
}

/// The topics a relay may publish to (exact topics). Its availability comes first.
pub fn device_publishes(flavour: Flavour, id: &str) -> Vec<String> {
    match flavour {
        Flavour::Orderd => Vec::new(),
        Flavour::Tasmota => [
            "tele/{}/LWT",
            "tele/{}/STATE",
            "tele/{}/INFO1",
            "tele/{}/INFO2",
            "tele/{}/INFO3",
            "tele/{}/RESULT",
            "stat/{}/RESULT",
            "stat/{}/POWER",
            "stat/{}/POWER1",
        ]
        .iter()
        .map(|t| t.replace("{}", id))
        .collect(),
        Flavour::ShellyGen2 => [
            "{}/online",
            "{}/events/rpc",
            "{}/status/switch:0",
            "{}/status/sys",
        ]
        .iter()
        .map(|t| t.replace("{}", id))
        .collect(),
        Flavour::ShellyGen1 => [
            "shellies/{}/online",
            "shellies/{}/announce",
            "shellies/{}/info",
            "shellies/{}/relay/0",
        ]
        .iter()
        .map(|t| t.replace("{}", id))
        .collect(),
    }
}

/// The topic filters a relay may subscribe to: only its own commands.
pub fn device_subscribes(flavour: Flavour, id: &str) -> Vec<String> {
    match flavour {
        Flavour::Orderd => Vec::new(),
        Flavour::Tasmota => vec![format!("cmnd/{id}/#")],
        Flavour::ShellyGen2 => vec![format!("{id}/rpc"), format!("{id}/command")],
        Flavour::ShellyGen1 => vec![
            format!("shellies/{id}/relay/0/command"),
            format!("shellies/{id}/command"),
            "shellies/command".to_string(),
        ],
    }
}

/// The topics orderd's hub itself needs for a relay on an external broker: what it publishes
/// and what it reads.
pub fn hub_topics(flavour: Flavour, id: &str) -> (Vec<String>, Vec<String>) {
    let publish = match flavour {
        Flavour::Orderd => Vec::new(),
        Flavour::Tasmota => vec![format!("cmnd/{id}/Backlog")],
        Flavour::ShellyGen2 => vec![format!("{id}/rpc")],
        Flavour::ShellyGen1 => vec![format!("shellies/{id}/relay/0/command")],
    };
    let read = device_publishes(flavour, id).into_iter().take(1).collect();
    (publish, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasmota_beeps_the_pattern_by_itself() {
        let (now, later) = ring(Flavour::Tasmota, "bz1", BuzzPattern::Double, 1, "x");
        assert_eq!(later, None);
        assert_eq!(now[0].topic, "cmnd/bz1/Backlog");
        assert_eq!(
            now[0].payload,
            "Power1 ON; Delay 3; Power1 OFF; Delay 2; Power1 ON; Delay 3; Power1 OFF"
        );
        assert_eq!(pattern_ms(BuzzPattern::Double), 800);
    }

    #[test]
    fn a_shelly_gives_one_pulse_whose_length_is_the_pattern() {
        let (now, later) = ring(
            Flavour::ShellyGen2,
            "sh1",
            BuzzPattern::Triple,
            7,
            "orderd-demo",
        );
        assert_eq!(later, None);
        assert_eq!(now[0].topic, "sh1/rpc");
        assert_eq!(
            now[0].payload,
            r#"{"id":7,"src":"orderd-demo","method":"Switch.Set","params":{"id":0,"on":true,"toggle_after":1.5}}"#
        );
        let (now, later) = ring(Flavour::ShellyGen1, "sh2", BuzzPattern::Single, 1, "x");
        assert_eq!(now[0].topic, "shellies/sh2/relay/0/command");
        assert_eq!(now[0].payload, "on");
        let (ms, off) = later.unwrap();
        assert_eq!((ms, off.payload.as_str()), (500, "off"));
    }

    #[test]
    fn availability_is_read_in_each_dialect() {
        assert_eq!(
            availability("tele/bz1/LWT", b"Online"),
            Some(("bz1", Flavour::Tasmota, true))
        );
        assert_eq!(
            availability("tele/bz1/LWT", b"Offline"),
            Some(("bz1", Flavour::Tasmota, false))
        );
        assert_eq!(
            availability("sh1/online", b"true"),
            Some(("sh1", Flavour::ShellyGen2, true))
        );
        assert_eq!(
            availability("shellies/sh2/online", b"false"),
            Some(("sh2", Flavour::ShellyGen1, false))
        );
        assert_eq!(availability("tele/bz1/LWT", b"maybe"), None);
        assert_eq!(availability("tele/bz1/LWT", b"true"), None);
        assert_eq!(availability("sh1/online", b"Online"), None);
        assert_eq!(availability("tele/BZ 1/LWT", b"Online"), None);
        assert_eq!(availability("orderd/demo/hub/status", b"online"), None);
    }

    #[test]
    fn a_relay_touches_only_its_own_topics() {
        assert_eq!(device_subscribes(Flavour::Tasmota, "bz1"), ["cmnd/bz1/#"]);
        assert!(device_publishes(Flavour::ShellyGen2, "sh1").contains(&"sh1/online".into()));
        assert!(device_publishes(Flavour::Orderd, "x").is_empty());
        let (publish, read) = hub_topics(Flavour::ShellyGen1, "sh2");
        assert_eq!(publish, ["shellies/sh2/relay/0/command"]);
        assert_eq!(read, ["shellies/sh2/online"]);
    }
}
