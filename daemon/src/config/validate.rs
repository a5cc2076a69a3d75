//! Checking the values: [`RawConfig::validate`] finds every problem at once, each with its
//! dotted key, or resolves the [`Settings`] the daemon runs on.

#[allow(clippy::wildcard_imports)]
use super::*;

impl RawConfig {
    /// Checks every field and resolves the settings, or returns every problem at once.
    pub fn validate(self) -> Result<Settings, Problems> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, message: String| {
            problems.push(Problem {
                line: None,
                key: key.into(),
                message,
            });
        };
        let s = &self.site;
        if !is_slug(&s.id, 32) {
            bad(
                "site.id",
                format!("{:?} must be 1-32 characters of a-z, 0-9, _ or -", s.id),
            );
        }
        if s.name.trim().is_empty() || s.name.chars().count() > 100 {
            bad("site.name", "must be 1-100 characters".into());
        }
        if s.currency.len() != 3 || !s.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            bad(
                "site.currency",
                format!("{:?} must be an ISO 4217 code such as EUR", s.currency),
            );
        }
        let time_zone = match TimeZone::get(&s.time_zone) {
            Ok(tz) => Some(tz),
            Err(e) => {
                bad(
                    "site.time_zone",
                    format!("{:?} is not a known IANA time zone: {e}", s.time_zone),
                );
                None
            }
        };
        if s.business_day_start_hour > 23 {
            bad(
                "site.business_day_start_hour",
                format!("{} must be 0-23", s.business_day_start_hour),
            );
        }
        if s.order_number_prefix.is_empty()
            || s.order_number_prefix.len() > 8
            || !s
                .order_number_prefix
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            bad(
                "site.order_number_prefix",
                format!(
                    "{:?} must be 1-8 characters of A-Z or 0-9",
                    s.order_number_prefix
                ),
            );
        }
        if s.tax_rate_bp > 10_000 {
            bad(
                "site.tax_rate_bp",
                format!("{} must be 0-10000 basis points", s.tax_rate_bp),
            );
        }
        if !is_slug(&s.default_language, 8) {
            bad(
                "site.default_language",
                format!(
                    "{:?} must be a language code such as en",
                    s.default_language
                ),
            );
        }
        if s.languages.is_empty()
            || s.languages
                .iter()
                .enumerate()
                .any(|(i, l)| !PAGE_LANGUAGES.contains(&l.as_str()) || s.languages[..i].contains(l))
        {
            bad(
                "site.languages",
                format!(
                    "{:?} must list some of {PAGE_LANGUAGES:?}, each once",
                    s.languages
                ),
            );
        } else if is_slug(&s.default_language, 8) && !s.languages.contains(&s.default_language) {
            bad(
                "site.default_language",
                format!(
                    "{:?} must be one of site.languages {:?}",
                    s.default_language, s.languages
                ),
            );
        }
        if self.store.data_dir.as_os_str().is_empty() {
            bad("store.data_dir", "must not be empty".into());
        }
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&self.store.cache_size_bytes) {
            bad(
                "store.cache_size_bytes",
                "must be between 1 MiB and 1 GiB; 16 MiB suits a Pi".into(),
            );
        }
        if !(1..=4096).contains(&self.store.max_batch) {
            bad("store.max_batch", "must be 1-4096".into());
        }
        if !(10..=600_000).contains(&self.store.checkpoint_interval_ms) {
            bad("store.checkpoint_interval_ms", "must be 10-600000".into());
        }
        if !(1..=1_000_000).contains(&self.store.checkpoint_batches) {
            bad("store.checkpoint_batches", "must be 1-1000000".into());
        }
        if !(1..=1_048_576).contains(&self.store.min_free_mb) {
            bad("store.min_free_mb", "must be 1-1048576".into());
        }
        if self.store.warn_free_mb <= self.store.min_free_mb {
            bad(
                "store.warn_free_mb",
                "must be more than store.min_free_mb".into(),
            );
        }
        if self.store.reserve_mb > 4096 {
            bad("store.reserve_mb", "must be 0-4096".into());
        }
        if !(1..=3600).contains(&self.store.space_check_secs) {
            bad("store.space_check_secs", "must be 1-3600".into());
        }
        let http_listen = self.http.listen.parse::<SocketAddr>().ok();
        if http_listen.is_none() {
            {
                bad(
                    "http.listen",
                    format!(
                        "{:?} must be an address with port, such as 0.0.0.0:8080",
                        self.http.listen
                    ),
                );
            }
        }
        let http = &self.http;
        let base = &http.public_base_url;
        if !base.is_empty()
            && (!(base.starts_with("http://") || base.starts_with("https://"))
                || base.len() > 200
                || base
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '<'))
        {
            bad(
                "http.public_base_url",
                "must be empty or an http(s) URL such as https://box.example".into(),
            );
        }
        if !(1..=300).contains(&http.sse_heartbeat_secs) {
            bad("http.sse_heartbeat_secs", "must be 1-300".into());
        }
        if !(4..=65_536).contains(&http.sse_buffer_events) {
            bad("http.sse_buffer_events", "must be 4-65536".into());
        }
        if !(1..=600).contains(&http.sse_stall_secs) {
            bad("http.sse_stall_secs", "must be 1-600".into());
        }
        if !(1..=600).contains(&http.header_read_timeout_secs) {
            bad("http.header_read_timeout_secs", "must be 1-600".into());
        }
        if !(1..=100_000).contains(&http.max_connections_per_address) {
            bad(
                "http.max_connections_per_address",
                "must be 1-100000".into(),
            );
        }
        if !(1..=1_000_000).contains(&http.max_connections) {
            bad("http.max_connections", "must be 1-1000000".into());
        }
        let tls = &http.tls;
        if !tls.listen.is_empty() && tls.listen.parse::<SocketAddr>().is_err() {
            bad(
                "http.tls.listen",
                format!(
                    "{:?} must be empty or an address with port, such as 0.0.0.0:8443",
                    tls.listen
                ),
            );
        }
        if tls.cert_file.as_os_str().is_empty() != tls.key_file.as_os_str().is_empty() {
            bad(
                "http.tls.cert_file",
                "set both cert_file and key_file, or neither (a self-signed certificate)".into(),
            );
        }
        if tls.names.len() > 32 || tls.names.iter().any(|n| n.is_empty() || n.len() > 253) {
            bad(
                "http.tls.names",
                "at most 32 names of 1-253 characters".into(),
            );
        }
        match http.metrics_token.load() {
            Ok(Some(t)) if t.len() < 16 => bad(
                "http.metrics_token",
                "at least 16 characters (e.g. `openssl rand -hex 16`)".into(),
            ),
            Ok(_) => {}
            Err(e) => bad("http.metrics_token", e),
        }
        if !(1..=100_000).contains(&http.max_menu_streams) {
            bad("http.max_menu_streams", "must be 1-100000".into());
        }
        if !(1..=100_000).contains(&http.max_order_streams) {
            bad("http.max_order_streams", "must be 1-100000".into());
        }
        if !(1..=100_000).contains(&http.max_sse_clients) {
            bad("http.max_sse_clients", "must be 1-100000".into());
        }
        let l = &self.limits;
        if !(1024..=16 * 1024 * 1024).contains(&l.max_body_bytes) {
            bad("limits.max_body_bytes", "must be 1 KiB-16 MiB".into());
        }
        if !(1..=1000).contains(&l.max_items_per_order) {
            bad("limits.max_items_per_order", "must be 1-1000".into());
        }
        if !(1..=10_000).contains(&l.max_quantity) {
            bad("limits.max_quantity", "must be 1-10000".into());
        }
        if !(16..=10_000).contains(&l.max_text_chars) {
            bad("limits.max_text_chars", "must be 16-10000".into());
        }
        if !(1..=1000).contains(&l.max_page_size) {
            bad("limits.max_page_size", "must be 1-1000".into());
        }
        if l.photos_budget_bytes > 1024 * 1024 * 1024 {
            bad("limits.photos_budget_bytes", "must be 0-1 GiB".into());
        }
        let o = &self.orders;
        if o.recall_window_secs > 3600 {
            bad("orders.recall_window_secs", "must be at most 3600".into());
        }
        if !(60..=30 * 86_400).contains(&o.idempotency_ttl_secs) {
            bad(
                "orders.idempotency_ttl_secs",
                "must be 60 s to 30 days".into(),
            );
        }
        if !(1..=3650).contains(&o.retention_days) {
            bad("orders.retention_days", "must be 1-3650".into());
        }
        if !(10..=86_400).contains(&o.retention_interval_secs) {
            bad("orders.retention_interval_secs", "must be 10-86400".into());
        }
        let auth = &self.auth;
        if !(60..=30 * 86_400).contains(&auth.session_ttl_secs) {
            bad("auth.session_ttl_secs", "must be 60 s to 30 days".into());
        }
        if !(1..=1000).contains(&auth.login_max_failures) {
            bad("auth.login_max_failures", "must be 1-1000".into());
        }
        if !(1..=86_400).contains(&auth.login_lockout_secs) {
            bad("auth.login_lockout_secs", "must be 1-86400".into());
        }
        if !(1..=10_000).contains(&auth.login_max_failures_per_address) {
            bad(
                "auth.login_max_failures_per_address",
                "must be 1-10000".into(),
            );
        }
        if !(1..=10_000).contains(&auth.login_max_failures_per_user) {
            bad("auth.login_max_failures_per_user", "must be 1-10000".into());
        }
        if !(1..=365).contains(&auth.login_trust_days) {
            bad("auth.login_trust_days", "must be 1-365".into());
        }
        let mq = &self.mqtt;
        if !matches!(mq.mode.as_str(), "embedded" | "external") {
            bad(
                "mqtt.mode",
                format!("{:?} must be embedded or external", mq.mode),
            );
        }
        let mqtt_listen = mq.listen.parse::<SocketAddr>().ok();
        if mqtt_listen.is_none() {
            bad(
                "mqtt.listen",
                format!(
                    "{:?} must be an address with port, such as 0.0.0.0:1883",
                    mq.listen
                ),
            );
        }
        for (key, value) in [
            ("mqtt.tls_listen", &mq.tls_listen),
            ("mqtt.ws_listen", &mq.ws_listen),
            ("mqtt.wss_listen", &mq.wss_listen),
        ] {
            if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
                bad(
                    key,
                    format!("{value:?} must be empty (off) or an address with port"),
                );
            }
        }
        if (!mq.tls_listen.is_empty() || !mq.wss_listen.is_empty())
            && (mq.tls_cert_file.as_os_str().is_empty() || mq.tls_key_file.as_os_str().is_empty())
        {
            bad(
                "mqtt.tls_cert_file",
                "the TLS listeners need tls_cert_file and tls_key_file (PEM)".into(),
            );
        }
        if !(1..=100_000).contains(&mq.max_connections) {
            bad("mqtt.max_connections", "must be 1-100000".into());
        }
        if !(256..=1024 * 1024).contains(&mq.max_device_packet_bytes) {
            bad("mqtt.max_device_packet_bytes", "must be 256 B-1 MiB".into());
        }
        if !(1..=120).contains(&mq.connect_timeout_secs) {
            bad("mqtt.connect_timeout_secs", "must be 1-120".into());
        }
        if !(5..=600).contains(&mq.keep_alive_secs) {
            bad("mqtt.keep_alive_secs", "must be 5-600".into());
        }
        if mq.external_host.is_empty() {
            bad("mqtt.external_host", "must not be empty".into());
        }
        if !is_slug(&mq.hub_username, 64) {
            bad(
                "mqtt.hub_username",
                "1-64 characters of a-z, 0-9, _ or -".into(),
            );
        }
        if mq.mode == "external" && mq.hub_password_file.as_os_str().is_empty() {
            bad(
                "mqtt.hub_password_file",
                "external mode needs the file with orderd's broker password (orderd device export-acl writes one)".into(),
            );
        }
        if mq.discovery_prefix.is_empty() || mq.discovery_prefix.contains(['#', '+']) {
            bad(
                "mqtt.discovery_prefix",
                "must be a plain topic prefix".into(),
            );
        }
        let otp = &self.otp;
        if otp.required == OtpRequired::On && !self.whatsapp.enabled && !self.telegram.enabled {
            bad(
                "otp.required",
                "true, but neither [whatsapp] nor [telegram] is enabled: no guest could order from a table. Set required = \"auto\" (or false), or enable a channel".into(),
            );
        }
        if !(30..=3600).contains(&otp.ttl_secs) {
            bad("otp.ttl_secs", "must be 30-3600".into());
        }
        if !(1..=20).contains(&otp.max_attempts) {
            bad("otp.max_attempts", "must be 1-20".into());
        }
        if !(1..=100).contains(&otp.max_sends) {
            bad("otp.max_sends", "must be 1-100".into());
        }
        if !(1..=10_000).contains(&otp.max_requests_per_client) {
            bad("otp.max_requests_per_client", "must be 1-10000".into());
        }
        if !(1..=1_000_000).contains(&otp.max_sends_total) {
            bad("otp.max_sends_total", "must be 1-1000000".into());
        }
        if !(1..=1_000_000).contains(&otp.max_sends_per_prefix) {
            bad("otp.max_sends_per_prefix", "must be 1-1000000".into());
        }
        if !(1..=15).contains(&otp.prefix_digits) {
            bad("otp.prefix_digits", "must be 1-15".into());
        }
        if !(1..=10_000).contains(&otp.max_verifies_per_client) {
            bad("otp.max_verifies_per_client", "must be 1-10000".into());
        }
        if !(60..=86_400).contains(&otp.send_window_secs) {
            bad("otp.send_window_secs", "must be 60-86400".into());
        }
        if !(60..=30 * 86_400).contains(&otp.token_ttl_secs) {
            bad("otp.token_ttl_secs", "must be 60 s to 30 days".into());
        }
        let ms = &self.messaging;
        if ms.base_backoff_ms == 0 || ms.max_backoff_ms < ms.base_backoff_ms {
            bad(
                "messaging.base_backoff_ms",
                "must be > 0 and ≤ max_backoff_ms".into(),
            );
        }
        if !(1..=1000).contains(&ms.max_attempts) {
            bad("messaging.max_attempts", "must be 1-1000".into());
        }
        if ms.breaker_failures == 0 {
            bad("messaging.breaker_failures", "must be at least 1".into());
        }
        if !(1..=3600).contains(&ms.breaker_pause_secs) {
            bad("messaging.breaker_pause_secs", "must be 1-3600".into());
        }
        if !(100..=120_000).contains(&ms.request_timeout_ms) {
            bad("messaging.request_timeout_ms", "must be 100-120000".into());
        }
        if !(1..=256).contains(&ms.concurrency) {
            bad("messaging.concurrency", "must be 1-256".into());
        }
        for (key, message) in self.whatsapp.problems() {
            bad(key, message);
        }
        if !(1..=1000).contains(&self.telegram.rate_per_sec) {
            bad("telegram.rate_per_sec", "must be 1-1000".into());
        }
        let tg = &self.telegram;
        if tg.enabled {
            if !tg.api_url.starts_with("http")
                || tg.bot_username.is_empty()
                || tg.bot_username.len() > 64
                || !tg
                    .bot_username
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                bad(
                    "telegram.bot_username",
                    "Telegram needs api_url and the bot's username (letters, digits, _)".into(),
                );
            }
            if tg.staff_lang.is_empty()
                || tg.staff_lang.len() > 8
                || !tg.staff_lang.bytes().all(|b| b.is_ascii_lowercase())
            {
                bad(
                    "telegram.staff_lang",
                    "a language code such as en or sq".into(),
                );
            }
            match tg.token.load() {
                Ok(Some(_)) => {}
                Ok(None) => bad(
                    "telegram.token",
                    "set value, file or env of [telegram.token]".into(),
                ),
                Err(e) => bad("telegram.token", e),
            }
        }
        let up = &self.upload;
        if !(1..=10_000).contains(&up.batch_events) {
            bad("upload.batch_events", "must be 1-10000".into());
        }
        if !(1024..=8 * 1024 * 1024).contains(&up.batch_bytes) {
            bad(
                "upload.batch_bytes",
                "must be 1024-8388608 (1 KiB-8 MiB)".into(),
            );
        }
        if up.max_age_ms > 600_000 {
            bad("upload.max_age_ms", "must be at most 600000".into());
        }
        if !(100..=120_000).contains(&up.request_timeout_ms) {
            bad("upload.request_timeout_ms", "must be 100-120000".into());
        }
        if up.base_backoff_ms == 0 || up.max_backoff_ms < up.base_backoff_ms {
            bad(
                "upload.base_backoff_ms",
                "must be > 0 and ≤ upload.max_backoff_ms".into(),
            );
        }
        if up.breaker_failures == 0 {
            bad("upload.breaker_failures", "must be at least 1".into());
        }
        if up.probe_interval_ms > 60_000 {
            bad("upload.probe_interval_ms", "must be 0-60000".into());
        }
        if up.backlog_budget_bytes < 1024 * 1024 {
            bad(
                "upload.backlog_budget_bytes",
                "must be at least 1048576 (1 MiB)".into(),
            );
        }
        if up.box_id.is_empty() || up.box_id.len() > 64 {
            bad("upload.box_id", "1 to 64 characters".into());
        }
        if up.enabled {
            if !(up.url.starts_with("https://") || up.url.starts_with("http://")) {
                bad(
                    "upload.url",
                    "the collector's batch endpoint, https://…/v1/batches".into(),
                );
            }
            match up.token.load() {
                Ok(Some(_)) => {}
                Ok(None) => bad(
                    "upload.token",
                    "set value, file or env of [upload.token]".into(),
                ),
                Err(e) => bad("upload.token", e),
            }
        }
        let kc = &self.kitchen;
        if !matches!(kc.paper_width_mm, 58 | 80) {
            bad("kitchen.paper_width_mm", "must be 58 or 80".into());
        }
        if !(1..=86_400).contains(&kc.age_warn_secs) || kc.age_late_secs <= kc.age_warn_secs {
            bad(
                "kitchen.age_late_secs",
                "age_warn_secs must be 1-86400 and age_late_secs larger".into(),
            );
        }
        if !(2..=600).contains(&kc.job_timeout_secs) {
            bad("kitchen.job_timeout_secs", "must be 2-600".into());
        }
        if !(1..=600).contains(&kc.resend_secs) {
            bad("kitchen.resend_secs", "must be 1-600".into());
        }
        for (key, value) in [
            ("kitchen.buzz_new_order", &kc.buzz_new_order),
            ("kitchen.buzz_ready", &kc.buzz_ready),
            ("kitchen.buzz_alert", &kc.buzz_alert),
        ] {
            if buzz_pattern(value).is_none() {
                bad(
                    key,
                    format!("{value:?} must be single, double, triple, long or alarm"),
                );
            }
        }
        for (station, sc) in &kc.stations {
            if !is_slug(station, 32) {
                bad(
                    &format!("kitchen.stations.{station}"),
                    "station ids are a-z, 0-9, _ or -".into(),
                );
            }
            for (name, value) in [
                ("buzz_new_order", &sc.buzz_new_order),
                ("buzz_ready", &sc.buzz_ready),
            ] {
                if let Some(v) = value
                    && buzz_pattern(v).is_none()
                {
                    bad(
                        &format!("kitchen.stations.{station}.{name}"),
                        format!("{v:?} must be single, double, triple, long or alarm"),
                    );
                }
            }
        }
        let bump_keys = &self.kitchen.bump_keys;
        for (name, keys) in [
            ("next", &bump_keys.next),
            ("previous", &bump_keys.previous),
            ("bump", &bump_keys.bump),
            ("recall", &bump_keys.recall),
        ] {
            if keys.len() > 8 || keys.iter().any(|x| x.is_empty() || x.chars().count() > 20) {
                bad(
                    &format!("kitchen.bump_keys.{name}"),
                    "at most 8 key names of 1-20 characters, such as \"Enter\"".into(),
                );
            }
        }
        let b = &self.billing;
        if b.minor_digits > 3 {
            bad(
                "billing.minor_digits",
                format!("{} must be 0-3", b.minor_digits),
            );
        }
        if b.cash_rounding > 100_000 {
            bad(
                "billing.cash_rounding",
                format!("{} must be 0-100000 minor units", b.cash_rounding),
            );
        }
        if b.payment_methods.is_empty() || b.payment_methods.len() > 16 {
            bad(
                "billing.payment_methods",
                "list 1-16 methods, such as [\"cash\", \"card\"]".into(),
            );
        }
        for (i, m) in b.payment_methods.iter().enumerate() {
            if !is_slug(m, 32) || b.payment_methods[..i].contains(m) {
                bad(
                    "billing.payment_methods",
                    format!("{m:?} must be 1-32 characters of a-z, 0-9, _ or -, listed once"),
                );
            }
        }
        if b.reasons.len() > 32
            || b.reasons
                .iter()
                .any(|r| r.trim().is_empty() || r.chars().count() > 100)
        {
            bad(
                "billing.reasons",
                "at most 32 reasons of 1-100 characters".into(),
            );
        }
        if b.address.chars().count() > 200 {
            bad("billing.address", "at most 200 characters".into());
        }
        if b.tax_id.chars().count() > 50 {
            bad("billing.tax_id", "at most 50 characters".into());
        }
        if !is_slug(&b.bill_station, 32) {
            bad(
                "billing.bill_station",
                format!("{:?} must be a station id", b.bill_station),
            );
        }
        for (zone, station) in &b.zone_bill_stations {
            if !is_slug(station, 32) {
                bad(
                    &format!("billing.zone_bill_stations.{zone}"),
                    format!("{station:?} must be a station id"),
                );
            }
        }
        for (key, map) in [
            ("billing.category_tax_rates", &b.category_tax_rates),
            ("billing.item_tax_rates", &b.item_tax_rates),
        ] {
            for (id, rate) in map {
                if *rate > 10_000 {
                    bad(
                        &format!("{key}.{id}"),
                        format!("{rate} must be 0-10000 basis points"),
                    );
                }
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            bad(
                "log.level",
                format!("{:?} is not a level or filter such as info", self.log.level),
            );
        }
        // Run as root (an installer's check, or a command on the installed box): the files the
        // service opens must be readable by the service's user, not just by root.
        if let Some(service) = crate::account::service_account(&self.store.data_dir) {
            for (key, path) in self.files_the_service_reads() {
                if let Some(why) = service.cannot_read(path) {
                    bad(key, why);
                }
            }
        }
        match (problems.is_empty(), http_listen, time_zone, mqtt_listen) {
            (true, Some(http_listen), Some(time_zone), Some(mqtt_listen)) => Ok(Settings::resolve(
                self,
                Parsed {
                    http_listen,
                    time_zone,
                    mqtt_listen,
                },
            )),
            _ => Err(Problems(problems)),
        }
    }
}
