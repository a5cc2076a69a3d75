//! Stock Tasmota and Shelly relays rung as buzzers: what the hub publishes for a pattern, and
//! the `off` a Shelly Gen1 needs later because it cannot switch itself off over MQTT.

use std::time::{Duration, Instant};

use orderd_protocol::BuzzPattern;
use orderd_protocol::relay::{self, Flavour, RelayMessage};

/// The relay side of the hub: Gen2 request numbers and the Gen1 `off`s still to send.
#[derive(Debug, Default)]
pub struct Relays {
    request: u32,
    offs: Vec<(Instant, RelayMessage)>,
}

impl Relays {
    /// The messages that ring `pattern` on relay `id` now, and how long it sounds. A Gen1's
    /// `off` is kept for [`Relays::due`].
    pub fn ring(
        &mut self,
        flavour: Flavour,
        id: &str,
        pattern: BuzzPattern,
        site: &str,
        now: Instant,
    ) -> (Vec<RelayMessage>, Duration) {
        self.request = self.request.wrapping_add(1);
        let (msgs, later) = relay::ring(
            flavour,
            id,
            pattern,
            self.request,
            &format!("orderd-{site}"),
        );
        let mut sounds = Duration::from_millis(u64::from(match flavour {
            Flavour::Tasmota => relay::pattern_ms(pattern),
            _ => u32::from(relay::shelly_pulse(pattern)) * 100,
        }));
        if let Some((ms, off)) = later {
            let at = now + Duration::from_millis(u64::from(ms));
            // A new ring replaces the pending off of the same relay: it sounds until the later one.
            self.offs.retain(|(_, m)| m.topic != off.topic);
            self.offs.push((at, off));
            sounds = Duration::from_millis(u64::from(ms));
        }
        (msgs, sounds)
    }

    /// Whether an `off` is still to be sent.
    pub fn pending(&self) -> bool {
        !self.offs.is_empty()
    }

    /// The `off`s whose time has come.
    pub fn due(&mut self, now: Instant) -> Vec<RelayMessage> {
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.offs)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        self.offs = wait;
        due.into_iter().map(|(_, m)| m).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gen1_is_switched_off_after_its_pulse_and_a_new_ring_moves_the_off() {
        let mut r = Relays::default();
        let t0 = Instant::now();
        let (on, sounds) = r.ring(Flavour::ShellyGen1, "sh", BuzzPattern::Single, "demo", t0);
        assert_eq!(on[0].payload, "on");
        assert_eq!(sounds, Duration::from_millis(500));
        assert!(r.due(t0 + Duration::from_millis(400)).is_empty());
        r.ring(
            Flavour::ShellyGen1,
            "sh",
            BuzzPattern::Long,
            "demo",
            t0 + Duration::from_millis(400),
        );
        assert!(
            r.due(t0 + Duration::from_millis(600)).is_empty(),
            "the longer ring's off replaced it"
        );
        let off = r.due(t0 + Duration::from_millis(2400));
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].topic, "shellies/sh/relay/0/command");
        assert!(!r.pending());
    }

    #[test]
    fn tasmota_and_gen2_need_no_off() {
        let mut r = Relays::default();
        let t0 = Instant::now();
        let (m, sounds) = r.ring(Flavour::Tasmota, "bz", BuzzPattern::Alarm, "demo", t0);
        assert_eq!(m[0].topic, "cmnd/bz/Backlog");
        assert_eq!(sounds, Duration::from_millis(2900));
        let (m, _) = r.ring(Flavour::ShellyGen2, "sh", BuzzPattern::Single, "demo", t0);
        assert!(m[0].payload.contains(r#""src":"orderd-demo""#));
        assert!(m[0].payload.contains(r#""id":2"#));
        assert!(!r.pending());
    }
}
