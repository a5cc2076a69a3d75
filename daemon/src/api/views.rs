//! The API's JSON shape of an order, shared by the order endpoints, the customers' own list and
//! the live streams.

use orderd_protocol::Order;
use serde_json::Value;

use crate::domain::rfc3339;

/// The JSON shape of an order: `type` instead of `order_type`, times as RFC 3339.
pub fn order_view(o: &Order) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        if let Some(t) = m.remove("order_type") {
            m.insert("type".into(), t);
        }
        for k in [
            "created_at",
            "updated_at",
            "accepted_at",
            "preparing_at",
            "ready_at",
            "finished_at",
            "out_for_delivery_at",
        ] {
            if let Some(ms) = m.get(k).and_then(Value::as_u64) {
                m.insert(k.into(), Value::String(rfc3339(ms)));
            }
        }
    }
    v
}
