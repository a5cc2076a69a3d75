//! What the box is doing, as one view shared by `GET /api/v1/status` and `orderd status` (the
//! control socket): version, site, the one-line summary systemd also shows, the event log, the
//! store, the storage budget, the clock, HTTPS, the code rule, the upload and live streams.

use serde_json::{Value, json};

use crate::state::AppState;
use crate::tls::Https;
use crate::upload::UploadState;

/// Live streams (SSE) open now, in all and by class.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streams {
    /// All streams.
    pub open: u32,
    /// Staff streams.
    pub staff: u32,
    /// Menu streams.
    pub menu: u32,
    /// One order's streams.
    pub order: u32,
}

/// The status view.
pub fn view(
    app: &AppState,
    upload: &UploadState,
    https: Option<&Https>,
    streams: Streams,
) -> Value {
    let clock = app.clock.state();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "site": app.settings.site.id,
        "status": crate::systemd::status_line(app),
        "event_seq": app.events.last_seq(),
        "store_bytes": app.store.file_bytes(),
        "storage": app.storage.status(),
        "upload": upload.status(&app.events),
        "clock_unset": clock.unset,
        "clock": clock,
        "https": https,
        "otp": {
            "required": app.settings.otp_required,
            "why": app.settings.otp_rule().1,
        },
        "live_streams": streams.open,
        "live_streams_by_class": {
            "staff": streams.staff,
            "menu": streams.menu,
            "order": streams.order,
        },
    })
}
