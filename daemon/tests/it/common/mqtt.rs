//! Real MQTT device clients (rumqttc) for tests: connect as a registered device, collect what
//! arrives, publish like a printer, display or bump bar would.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::mpsc;

#[derive(Debug)]
pub enum Msg {
    Publish {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    SubAck(Vec<rumqttc::SubscribeReasonCode>),
}

pub struct Dev {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Msg>,
    /// Publishes that arrived while `sub` waited for its SUBACK, handed out first.
    pending: std::collections::VecDeque<Msg>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connects; `Err` carries the refusal. With `will`, the last will is `offline` retained on
/// the device's availability topic.
pub async fn connect(
    addr: std::net::SocketAddr,
    id: &str,
    password: &str,
    will: Option<&str>,
) -> Result<Dev, String> {
    connect_with_will(addr, id, password, will.map(|topic| (topic, "offline"))).await
}

/// Connects with a last will of `(topic, payload)`, retained (a stock relay's own dialect).
pub async fn connect_with_will(
    addr: std::net::SocketAddr,
    id: &str,
    password: &str,
    will: Option<(&str, &str)>,
) -> Result<Dev, String> {
    let (client, el) = connected(addr, id, password, will).await?;
    Ok(Dev::polling(client, el))
}

/// Connects and returns the client and its event loop, not yet polled: a caller that stops
/// polling it has a device whose socket nobody reads (a stalled device).
pub async fn connected(
    addr: std::net::SocketAddr,
    id: &str,
    password: &str,
    will: Option<(&str, &str)>,
) -> Result<(AsyncClient, rumqttc::EventLoop), String> {
    let mut opts = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    opts.set_credentials(id, password)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(1024 * 1024, 64 * 1024)
        .set_clean_session(true);
    if let Some((topic, payload)) = will {
        opts.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
    }
    let (client, mut el) = AsyncClient::new(opts, 256);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("timeout".into()),
        }
    }
    Ok((client, el))
}

impl Dev {
    /// A device whose event loop runs in a task, handing what arrives to `rx`.
    fn polling(client: AsyncClient, mut el: rumqttc::EventLoop) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                let msg = match ev {
                    Event::Incoming(Packet::Publish(p)) => Msg::Publish {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    },
                    Event::Incoming(Packet::SubAck(s)) => Msg::SubAck(s.return_codes),
                    _ => continue,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        Self {
            client,
            rx,
            pending: std::collections::VecDeque::new(),
            task,
        }
    }
}

impl Dev {
    pub async fn sub(&mut self, filter: &str) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
                .await
                .ok()
                .flatten();
            match next {
                Some(Msg::SubAck(codes)) => return codes,
                Some(other) => self.pending.push_back(other),
                None => panic!("no SUBACK for {filter}"),
            }
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.into())
            .await
            .unwrap();
    }

    pub async fn next_msg(&mut self, wait: Duration) -> Option<Msg> {
        if let Some(m) = self.pending.pop_front() {
            return Some(m);
        }
        tokio::time::timeout(wait, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next publish on a topic ending with `suffix`, skipping others.
    pub async fn next_on(&mut self, suffix: &str, wait: Duration) -> Option<(Vec<u8>, bool)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_msg(left).await? {
                Msg::Publish {
                    topic,
                    payload,
                    retain,
                } if topic.ends_with(suffix) => {
                    return Some((payload, retain));
                }
                _ => {}
            }
        }
    }

    /// Every publish on topics ending with `suffix` within `wait`.
    pub async fn drain_on(&mut self, suffix: &str, wait: Duration) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((p, _)) = self.next_on(suffix, wait).await {
            out.push(p);
        }
        out
    }

    /// Sends DISCONNECT and waits until the connection is closed (the event loop ends).
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("the connection closed after DISCONNECT")
            .unwrap();
    }
}
