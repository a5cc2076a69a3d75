//! MQTT topic names: built by functions, parsed back for routing, never written by hand.
//!
//! Every topic lives under `orderd/{site}/`. Site, station and device ids are single topic
//! segments of 1–32 characters `[a-z0-9_-]`, so they can never contain `/`, `+` or `#` and a
//! device can never address another device's topic by choosing its own id.

use alloc::format;
use alloc::string::String;

/// The root of every orderd topic.
pub const ROOT: &str = "orderd";

/// Whether `s` can be a site, station or device id (one topic segment).
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `orderd/{site}`.
pub fn site_prefix(site: &str) -> String {
    format!("{ROOT}/{site}")
}

/// `orderd/{site}/hub/status` — retained, last will: `online` / `offline`.
pub fn hub_status(site: &str) -> String {
    format!("{ROOT}/{site}/hub/status")
}

/// `orderd/{site}/station/{station}/ticket` — ticket events, QoS 1, not retained.
pub fn station_ticket(site: &str, station: &str) -> String {
    format!("{ROOT}/{site}/station/{station}/ticket")
}

/// `orderd/{site}/station/{station}/board` — the station's open tickets, retained.
pub fn station_board(site: &str, station: &str) -> String {
    format!("{ROOT}/{site}/station/{station}/board")
}

/// `orderd/{site}/station/{station}/board/compact` — the board without lines, for small
/// displays (retained).
pub fn station_board_compact(site: &str, station: &str) -> String {
    format!("{ROOT}/{site}/station/{station}/board/compact")
}

/// `orderd/{site}/station/{station}/bump` — bump and recall from a bump bar.
pub fn station_bump(site: &str, station: &str) -> String {
    format!("{ROOT}/{site}/station/{station}/bump")
}

/// `orderd/{site}/station/{station}/bump/result` — the box's answer to each bump.
pub fn station_bump_result(site: &str, station: &str) -> String {
    format!("{ROOT}/{site}/station/{station}/bump/result")
}

/// `orderd/{site}/printer/{device}/job` — print jobs, QoS 1, never retained.
pub fn printer_job(site: &str, device: &str) -> String {
    format!("{ROOT}/{site}/printer/{device}/job")
}

/// `orderd/{site}/printer/{device}/job/status` — the printer's report on a job.
pub fn printer_job_status(site: &str, device: &str) -> String {
    format!("{ROOT}/{site}/printer/{device}/job/status")
}

/// `orderd/{site}/buzzer/{device}/set` — buzzer commands, never retained.
pub fn buzzer_set(site: &str, device: &str) -> String {
    format!("{ROOT}/{site}/buzzer/{device}/set")
}

/// `orderd/{site}/device/{device}/availability` — retained, last will: `online` / `offline`.
pub fn device_availability(site: &str, device: &str) -> String {
    format!("{ROOT}/{site}/device/{device}/availability")
}

/// `orderd/{site}/device/{device}/state` — retained: `ready`, `paper_out`, …
pub fn device_state(site: &str, device: &str) -> String {
    format!("{ROOT}/{site}/device/{device}/state")
}

/// `orderd/{site}/hub/open_orders` — retained: how many orders are open (Home Assistant's
/// sensor reads it).
pub fn hub_open_orders(site: &str) -> String {
    format!("{ROOT}/{site}/hub/open_orders")
}

/// `orderd/{site}/#` — every topic of the site (the hub's own account).
pub fn site_all(site: &str) -> String {
    format!("{ROOT}/{site}/#")
}

/// `orderd/{site}/hub/#` — what the hub says about itself (Home Assistant reads it).
pub fn hub_all(site: &str) -> String {
    format!("{ROOT}/{site}/hub/#")
}

/// The filters the hub subscribes to: every station's bumps, every printer's job reports,
/// every device's availability and state.
pub fn hub_filters(site: &str) -> [String; 4] {
    [
        station_bump(site, "+"),
        printer_job_status(site, "+"),
        device_availability(site, "+"),
        device_state(site, "+"),
    ]
}

/// Home Assistant's MQTT discovery topics, under its discovery prefix (`homeassistant` unless
/// set otherwise), and not under `orderd/`.
pub mod home_assistant {
    use alloc::format;
    use alloc::string::String;

    /// `{prefix}/#` — everything under the discovery prefix.
    pub fn all(prefix: &str) -> String {
        format!("{prefix}/#")
    }

    /// `{prefix}/sensor/orderd_{site}/open_orders/config` — the open-order count's sensor.
    pub fn open_orders_config(prefix: &str, site: &str) -> String {
        format!("{prefix}/sensor/orderd_{site}/open_orders/config")
    }

    /// `{prefix}/binary_sensor/orderd_{site}/{device}/config` — a device's online sensor.
    pub fn device_online_config(prefix: &str, site: &str, device: &str) -> String {
        format!("{prefix}/binary_sensor/orderd_{site}/{device}/config")
    }
}

/// A parsed orderd topic, borrowing its ids from the topic string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic<'a> {
    /// `hub/status`.
    HubStatus,
    /// `station/{station}/ticket`.
    StationTicket(&'a str),
    /// `station/{station}/board`.
    StationBoard(&'a str),
    /// `station/{station}/board/compact`.
    StationBoardCompact(&'a str),
    /// `station/{station}/bump`.
    StationBump(&'a str),
    /// `station/{station}/bump/result`.
    StationBumpResult(&'a str),
    /// `printer/{device}/job`.
    PrinterJob(&'a str),
    /// `printer/{device}/job/status`.
    PrinterJobStatus(&'a str),
    /// `buzzer/{device}/set`.
    BuzzerSet(&'a str),
    /// `device/{device}/availability`.
    DeviceAvailability(&'a str),
    /// `device/{device}/state`.
    DeviceState(&'a str),
}

impl<'a> Topic<'a> {
    /// Parses a topic of `site`; `None` for anything else (another site, a malformed id, an
    /// unknown path).
    pub fn parse(site: &str, topic: &'a str) -> Option<Self> {
        let rest = topic.strip_prefix(ROOT)?.strip_prefix('/')?;
        let rest = rest.strip_prefix(site)?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let kind = parts.next()?;
        if kind == "hub" {
            return match (parts.next(), parts.next()) {
                (Some("status"), None) => Some(Self::HubStatus),
                _ => None,
            };
        }
        let id = parts.next().filter(|id| is_valid_id(id))?;
        let parsed = match (kind, parts.next(), parts.next(), parts.next()) {
            ("station", Some("ticket"), None, None) => Self::StationTicket(id),
            ("station", Some("board"), None, None) => Self::StationBoard(id),
            ("station", Some("board"), Some("compact"), None) => Self::StationBoardCompact(id),
            ("station", Some("bump"), None, None) => Self::StationBump(id),
            ("station", Some("bump"), Some("result"), None) => Self::StationBumpResult(id),
            ("printer", Some("job"), None, None) => Self::PrinterJob(id),
            ("printer", Some("job"), Some("status"), None) => Self::PrinterJobStatus(id),
            ("buzzer", Some("set"), None, None) => Self::BuzzerSet(id),
            ("device", Some("availability"), None, None) => Self::DeviceAvailability(id),
            ("device", Some("state"), None, None) => Self::DeviceState(id),
            _ => return None,
        };
        Some(parsed)
    }

    /// The topic string for `site`.
    pub fn to_topic(self, site: &str) -> String {
        match self {
            Self::HubStatus => hub_status(site),
            Self::StationTicket(s) => station_ticket(site, s),
            Self::StationBoard(s) => station_board(site, s),
            Self::StationBoardCompact(s) => station_board_compact(site, s),
            Self::StationBump(s) => station_bump(site, s),
            Self::StationBumpResult(s) => station_bump_result(site, s),
            Self::PrinterJob(d) => printer_job(site, d),
            Self::PrinterJobStatus(d) => printer_job_status(site, d),
            Self::BuzzerSet(d) => buzzer_set(site, d),
            Self::DeviceAvailability(d) => device_availability(site, d),
            Self::DeviceState(d) => device_state(site, d),
        }
    }

    /// Whether the box publishes this topic (devices only subscribe to it).
    pub const fn from_box(self) -> bool {
        matches!(
            self,
            Self::HubStatus
                | Self::StationTicket(_)
                | Self::StationBoard(_)
                | Self::StationBoardCompact(_)
                | Self::StationBumpResult(_)
                | Self::PrinterJob(_)
                | Self::BuzzerSet(_)
        )
    }
}

/// Whether every topic the MQTT filter `requested` matches is also matched by `allowed`
/// (MQTT 3.1.1, 4.7): `+` in `allowed` takes one level (also a requested `+`), `#` the rest;
/// a wildcard in `requested` is within `allowed` only where `allowed` has one at least as wide.
pub fn filter_within(requested: &str, allowed: &str) -> bool {
    let mut req = requested.split('/');
    let mut all = allowed.split('/');
    loop {
        match (req.next(), all.next()) {
            // The end of both, or `#` ("a/#" also matches "a" itself).
            (None, None) | (Some(_) | None, Some("#")) => return true,
            (Some("#"), _) | (None, Some(_)) | (Some(_), None) => return false,
            (Some(_), Some("+")) => {}
            (Some("+"), Some(_)) => return false,
            (Some(r), Some(a)) => {
                if r != a {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_exact() {
        assert_eq!(hub_status("demo"), "orderd/demo/hub/status");
        assert_eq!(
            station_ticket("demo", "grill"),
            "orderd/demo/station/grill/ticket"
        );
        assert_eq!(
            station_board("demo", "grill"),
            "orderd/demo/station/grill/board"
        );
        assert_eq!(station_bump("demo", "bar"), "orderd/demo/station/bar/bump");
        assert_eq!(printer_job("demo", "p1"), "orderd/demo/printer/p1/job");
        assert_eq!(
            printer_job_status("demo", "p1"),
            "orderd/demo/printer/p1/job/status"
        );
        assert_eq!(buzzer_set("demo", "bz"), "orderd/demo/buzzer/bz/set");
        assert_eq!(
            device_availability("demo", "p1"),
            "orderd/demo/device/p1/availability"
        );
        assert_eq!(device_state("demo", "p1"), "orderd/demo/device/p1/state");
        assert_eq!(hub_open_orders("demo"), "orderd/demo/hub/open_orders");
        assert_eq!(site_all("demo"), "orderd/demo/#");
        assert_eq!(hub_all("demo"), "orderd/demo/hub/#");
        assert_eq!(
            hub_filters("demo"),
            [
                "orderd/demo/station/+/bump",
                "orderd/demo/printer/+/job/status",
                "orderd/demo/device/+/availability",
                "orderd/demo/device/+/state",
            ]
        );
        assert_eq!(home_assistant::all("homeassistant"), "homeassistant/#");
        assert_eq!(
            home_assistant::open_orders_config("homeassistant", "demo"),
            "homeassistant/sensor/orderd_demo/open_orders/config"
        );
        assert_eq!(
            home_assistant::device_online_config("homeassistant", "demo", "p1"),
            "homeassistant/binary_sensor/orderd_demo/p1/config"
        );
    }

    #[test]
    fn parse_round_trips_every_topic() {
        let all = [
            Topic::HubStatus,
            Topic::StationTicket("grill"),
            Topic::StationBoard("grill"),
            Topic::StationBoardCompact("grill"),
            Topic::StationBumpResult("grill"),
            Topic::StationBump("bar"),
            Topic::PrinterJob("p-1"),
            Topic::PrinterJobStatus("p-1"),
            Topic::BuzzerSet("bz_2"),
            Topic::DeviceAvailability("p-1"),
            Topic::DeviceState("p-1"),
        ];
        for t in all {
            let s = t.to_topic("demo");
            assert_eq!(Topic::parse("demo", &s), Some(t), "{s}");
            assert_eq!(Topic::parse("other", &s), None);
        }
    }

    #[test]
    fn parse_refuses_what_is_not_ours() {
        for bad in [
            "orderd/demo",
            "orderd/demo/",
            "orderd/demo/hub/status/x",
            "orderd/demo/station/+/ticket",
            "orderd/demo/station/#",
            "orderd/demo/station/Grill/ticket",
            "orderd/demo/station//ticket",
            "orderd/demo/printer/p1/job/status/x",
            "orderd/demo/printer/p1/paper",
            "orderd/demox/hub/status",
            "other/demo/hub/status",
            "orderd/demo/station/a-very-long-station-name-of-more-than-32/ticket",
        ] {
            assert_eq!(Topic::parse("demo", bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_single_segments() {
        assert!(is_valid_id("grill"));
        assert!(is_valid_id("printer-2_b"));
        for bad in ["", "a/b", "+", "#", "A", "ë", &"x".repeat(33)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn filter_containment_follows_mqtt_wildcards() {
        let yes = [
            ("a/b", "a/b"),
            ("a/b", "a/+"),
            ("a/+", "a/+"),
            ("a/b/c", "a/#"),
            ("a/+/c", "a/#"),
            ("a/#", "a/#"),
            ("a", "a/#"),
            ("homeassistant/+/+/config", "homeassistant/#"),
            ("o/s/device/p1/availability", "o/s/device/+/availability"),
        ];
        let no = [
            ("a/+", "a/b"),
            ("a/#", "a/b"),
            ("a/#", "a/+"),
            ("#", "a/#"),
            ("a/b/c", "a/+"),
            ("a", "a/b"),
            ("b/c", "a/#"),
            ("o/s/device/+/state", "o/s/device/+/availability"),
        ];
        for (r, a) in yes {
            assert!(filter_within(r, a), "{r} within {a}");
        }
        for (r, a) in no {
            assert!(!filter_within(r, a), "{r} not within {a}");
        }
    }
}
