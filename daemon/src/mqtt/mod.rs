//! MQTT transport to kitchen devices: the embedded broker, or an external one, and the client
//! orderd's kitchen hub uses to reach either.
//!
//! The hub always talks MQTT through a real client ([`client`]), in both modes, so embedded and
//! external brokers are one code path. The embedded broker ([`broker`]) is rumqttd's router
//! behind orderd's own accept loop, which adds `TCP_NODELAY`, per-device topic checks, the real
//! port behind port 0 and shutdown.

pub mod broker;
pub mod client;

/// A random secret for orderd's own hub account on the embedded broker (256 bits, hex).
pub fn random_secret() -> String {
    crate::domain::random_hex(32)
}
