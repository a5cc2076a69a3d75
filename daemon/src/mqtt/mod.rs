//! MQTT transport to kitchen devices: the embedded broker, or an external one, and the client
//! orderd's kitchen hub uses to reach either.
//!
//! The hub sees one connection ([`client`]) in both modes: an in-process link into the embedded
//! broker's router, or an MQTT client of the external broker. The embedded broker ([`broker`])
//! is rumqttd's router behind orderd's own accept loop, which adds `TCP_NODELAY`, per-device
//! topic checks, the real port behind port 0 and shutdown.

pub mod broker;
pub mod client;
