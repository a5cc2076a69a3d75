//! Prometheus metrics of the daemon, rendered in text format at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a status transition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabels {
    /// The status moved to (or `recall`).
    pub to: String,
}

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route template, e.g. `/api/v1/orders/{id}`.
    pub route: String,
    /// Status class: 2xx, 4xx, 5xx.
    pub class: String,
}

/// Labels naming one kitchen device.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabels {
    /// Device id.
    pub device: String,
}

/// Labels of an MQTT refusal.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `login`, `publish` or `subscribe`.
    pub what: String,
}

/// Labels of a print-job state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The state reached: `sent`, `printed`, `failed_over`, `resent`.
    pub state: String,
}

/// Labels of an outbox outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// `whatsapp` or `telegram`.
    pub channel: String,
    /// `sent`, `retried`, `failed` (a provider call failed) or `dead`.
    pub outcome: String,
}

/// Labels of a channel.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    /// `whatsapp` or `telegram`.
    pub channel: String,
}

/// Every metric of the daemon.
pub struct Metrics {
    registry: Registry,
    /// Orders created.
    pub orders_created: Counter,
    /// Status transitions, by target status.
    pub transitions: Family<TransitionLabels, Counter>,
    /// HTTP request latency.
    pub request_seconds: Family<RouteLabels, Histogram>,
    /// Requests committed per write transaction.
    pub commit_batch_size: Histogram,
    /// Size of the store file.
    pub store_bytes: Gauge,
    /// Last committed event seq.
    pub event_seq: Gauge,
    /// Open MQTT connections to the embedded broker.
    pub mqtt_connections: Gauge,
    /// Refused MQTT logins, publishes and subscribes.
    pub mqtt_refused: Family<RefusalLabels, Counter>,
    /// Inbound MQTT payloads the hub dropped as malformed.
    pub mqtt_malformed: Counter,
    /// Whether each kitchen device is online (1) or not (0).
    pub device_online: Family<DeviceLabels, Gauge>,
    /// Print-job transitions.
    pub print_jobs: Family<JobLabels, Counter>,
    /// Print jobs not yet printed.
    pub print_jobs_open: Gauge,
    /// Last event seq the kitchen hub has handled.
    pub hub_seq: Gauge,
    /// Outbox outcomes per channel.
    pub messages: Family<MessageLabels, Counter>,
    /// Final outbox outcomes per channel since the store was created (kept in the store, so
    /// they survive a restart): sent, dead.
    pub messages_stored: Family<MessageLabels, Gauge>,
    /// Events the collector has acknowledged (the durable upload cursor), since the store was
    /// created.
    pub upload_acked_seq: Gauge,
    /// Messages waiting per channel.
    pub message_queue: Family<ChannelLabels, Gauge>,
    /// Age of the oldest waiting message per channel, seconds.
    pub message_oldest_seconds: Family<ChannelLabels, Gauge>,
    /// Upload batches by outcome.
    pub upload_batches: Family<OutcomeLabels, Counter>,
    /// Events not yet acknowledged by the collector.
    pub upload_backlog_events: Gauge,
    /// Their estimated bytes.
    pub upload_backlog_bytes: Gauge,
    /// Age of the oldest unacknowledged event, seconds.
    pub upload_oldest_seconds: Gauge,
    /// Unix time of the last acknowledged batch (0: never).
    pub upload_last_success_seconds: Gauge,
    /// Orders refused because the upload backlog is over its budget.
    pub upload_refused_orders: Counter,
    /// Live streams (SSE) open now.
    pub sse_open: Gauge,
    /// Live-stream clients cut off for falling behind.
    pub sse_cut: Counter,
    /// Bytes free on the data directory's filesystem.
    pub storage_free_bytes: Gauge,
    /// Storage level: 0 ok, 1 low (WARN), 2 full (new orders refused).
    pub storage_level: Gauge,
    /// Orders refused because the disk is full.
    pub storage_refused_orders: Counter,
}

/// Labels of an outcome counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `acked`, `gap`, `retry`, …
    pub outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("orderd");
        let orders_created = Counter::default();
        registry.register("orders_created", "Orders created", orders_created.clone());
        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "order_transitions",
            "Order status transitions by target status",
            transitions.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_25, 2.0, 14))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            request_seconds.clone(),
        );
        let commit_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "commit_batch_size",
            "Requests committed per write transaction (group commit)",
            commit_batch_size.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register("store_bytes", "Size of the store file", store_bytes.clone());
        let event_seq = Gauge::default();
        registry.register(
            "event_seq",
            "Last committed event sequence number",
            event_seq.clone(),
        );
        let mqtt_connections = Gauge::default();
        registry.register(
            "mqtt_connections",
            "Open connections to the embedded MQTT broker",
            mqtt_connections.clone(),
        );
        let mqtt_refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "mqtt_refused",
            "Refused MQTT logins, publishes and subscribes",
            mqtt_refused.clone(),
        );
        let mqtt_malformed = Counter::default();
        registry.register(
            "mqtt_malformed_payloads",
            "Inbound MQTT payloads dropped as malformed",
            mqtt_malformed.clone(),
        );
        let device_online = Family::<DeviceLabels, Gauge>::default();
        registry.register(
            "device_online",
            "Kitchen device availability (1 online, 0 offline)",
            device_online.clone(),
        );
        let print_jobs = Family::<JobLabels, Counter>::default();
        registry.register(
            "print_jobs",
            "Print-job transitions by state",
            print_jobs.clone(),
        );
        let print_jobs_open = Gauge::default();
        registry.register(
            "print_jobs_open",
            "Print jobs not yet printed",
            print_jobs_open.clone(),
        );
        let hub_seq = Gauge::default();
        registry.register(
            "hub_event_seq",
            "Last event seq the kitchen hub has handled",
            hub_seq.clone(),
        );
        let messages = Family::<MessageLabels, Counter>::default();
        registry.register(
            "messages",
            "Outbox outcomes per channel: sent, retried, failed, dead",
            messages.clone(),
        );
        let messages_stored = Family::<MessageLabels, Gauge>::default();
        registry.register(
            "messages_stored",
            "Final outbox outcomes per channel since the store was created (sent, dead); kept in the store across restarts",
            messages_stored.clone(),
        );
        let upload_acked_seq = Gauge::default();
        registry.register(
            "upload_acked_seq",
            "Events acknowledged by the collector since the store was created (the durable upload cursor)",
            upload_acked_seq.clone(),
        );
        let message_queue = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "message_queue",
            "Messages waiting to be sent, per channel",
            message_queue.clone(),
        );
        let message_oldest_seconds = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "message_oldest_seconds",
            "Age of the oldest waiting message, per channel",
            message_oldest_seconds.clone(),
        );
        let upload_batches = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "upload_batches",
            "Upload batches by outcome: acked, gap, retry, refused, rejected, too_large",
            upload_batches.clone(),
        );
        let upload_backlog_events = Gauge::default();
        registry.register(
            "upload_backlog_events",
            "Events not yet acknowledged by the collector",
            upload_backlog_events.clone(),
        );
        let upload_backlog_bytes = Gauge::default();
        registry.register(
            "upload_backlog_bytes",
            "Estimated bytes of events not yet acknowledged",
            upload_backlog_bytes.clone(),
        );
        let upload_oldest_seconds = Gauge::default();
        registry.register(
            "upload_oldest_seconds",
            "Age of the oldest unacknowledged event",
            upload_oldest_seconds.clone(),
        );
        let upload_last_success_seconds = Gauge::default();
        registry.register(
            "upload_last_success_timestamp_seconds",
            "Unix time of the last acknowledged upload batch (0: never)",
            upload_last_success_seconds.clone(),
        );
        let upload_refused_orders = Counter::default();
        registry.register(
            "upload_refused_orders",
            "Orders refused because the upload backlog is over its budget",
            upload_refused_orders.clone(),
        );
        let sse_open = Gauge::default();
        registry.register(
            "sse_streams",
            "Live streams (Server-Sent Events) open now",
            sse_open.clone(),
        );
        let sse_cut = Counter::default();
        registry.register(
            "sse_slow_clients_cut",
            "Live-stream clients cut off because they fell behind",
            sse_cut.clone(),
        );
        let storage_free_bytes = Gauge::default();
        registry.register(
            "storage_free_bytes",
            "Bytes free on the data directory's filesystem",
            storage_free_bytes.clone(),
        );
        let storage_level = Gauge::default();
        registry.register(
            "storage_level",
            "Storage level: 0 ok, 1 low, 2 full (new orders refused)",
            storage_level.clone(),
        );
        let storage_refused_orders = Counter::default();
        registry.register(
            "storage_refused_orders",
            "Orders refused because the disk is full",
            storage_refused_orders.clone(),
        );
        Self {
            registry,
            orders_created,
            transitions,
            request_seconds,
            commit_batch_size,
            store_bytes,
            event_seq,
            mqtt_connections,
            mqtt_refused,
            mqtt_malformed,
            device_online,
            print_jobs,
            print_jobs_open,
            hub_seq,
            messages,
            messages_stored,
            upload_acked_seq,
            message_queue,
            message_oldest_seconds,
            upload_batches,
            upload_backlog_events,
            upload_backlog_bytes,
            upload_oldest_seconds,
            upload_last_success_seconds,
            upload_refused_orders,
            sse_open,
            sse_cut,
            storage_free_bytes,
            storage_level,
            storage_refused_orders,
        }
    }

    /// Renders the Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
