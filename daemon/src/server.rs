//! Start-up and shutdown of the daemon: open the store, make sure an admin exists, seed the
//! demo, start the writer and the background workers, serve HTTP, and stop in order.
//!
//! [`start`] takes an already bound listener, so tests pass a port-0 listener and real
//! deployments the configured address; it returns a [`Running`] handle. Start-up reads like a
//! script with one INFO line per step.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::api::{self, ApiState, ApiStateRef};
use crate::auth::{self, Sessions, Throttle};
use crate::clock::{Clock, GuardedClock};
use crate::config::Settings;
use crate::demo;
use crate::domain::Rules;
use crate::domain::outbox::StaffAlerts;
use crate::events::EventLog;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::Store;
use crate::store::writer::{Shared, Writer, WriterOptions};
use crate::workers;

/// How long shutdown may take before the daemon gives up waiting (systemd's default stop
/// timeout is 90 s; the shipped unit uses 30 s).
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

use crate::shutdown::Shutdown;

/// The messaging providers that are enabled, and the Telegram client for its bot loop.
fn messaging_providers(
    state: &AppState,
) -> anyhow::Result<(
    crate::messaging::worker::Providers,
    Option<orderd_plugins::telegram::Telegram>,
)> {
    use crate::domain::outbox::Channel;
    let settings = &*state.settings;
    let timeout = Duration::from_millis(settings.messaging.request_timeout_ms);
    let mut providers = crate::messaging::worker::Providers::default();
    if settings.whatsapp.enabled {
        let wa = orderd_plugins::whatsapp::WhatsApp::new(&settings.whatsapp, timeout)
            .map_err(|e| anyhow::anyhow!("WhatsApp: {e}"))?;
        providers.add(
            Channel::Whatsapp,
            Arc::new(wa),
            settings.whatsapp.rate_per_sec,
        );
    }
    let mut telegram = None;
    if settings.telegram.enabled {
        let tg = &settings.telegram;
        let token = tg
            .token
            .load()
            .map_err(|e| anyhow::anyhow!("Telegram: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("Telegram: no token"))?;
        let bot = orderd_plugins::telegram::Telegram::new(&tg.api_url, &token, timeout)
            .map_err(|e| anyhow::anyhow!("Telegram: {e}"))?;
        providers.add(Channel::Telegram, Arc::new(bot.clone()), tg.rate_per_sec);
        telegram = Some(bot);
    }
    Ok((providers, telegram))
}

/// Spawns a background task. If it panics the process exits, so that systemd restarts the box:
/// a task that died silently would leave it half working (a panic in one request is answered
/// 500 instead, see `api::serve`).
fn spawn_task<F>(name: &'static str, task: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let run = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(task));
        if run.await.is_err() {
            tracing::error!(
                task = name,
                "a background task panicked; exiting so that systemd restarts the box"
            );
            std::process::exit(70);
        }
    })
}

/// A started daemon.
pub struct Running {
    /// The bound HTTP address.
    pub addr: SocketAddr,
    /// The application state (tests reach the writer, event log and clock through it).
    pub state: ApiStateRef,
    /// Path of the first-run admin password file, when this start created it.
    pub initial_password_file: Option<PathBuf>,
    /// The embedded MQTT broker's bound address (`None` in external-broker mode).
    pub mqtt_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    http: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    writer_thread: std::thread::JoinHandle<()>,
}

/// Opens everything and starts serving on `listener`.
pub async fn start(
    settings: Settings,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Running> {
    let data_dir = settings.data_dir().to_path_buf();
    crate::files::private_dir(&data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    tracing::info!(data_dir = %data_dir.display(), "data directory ready");

    let store = Store::open_with_reserve(
        &data_dir,
        settings.store.cache_size_bytes,
        settings.store.reserve_mb * 1024 * 1024,
    )
    .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    tracing::info!(path = %store.path().display(), bytes = store.file_bytes(), "store opened");
    crate::events::freeze_legacy_rows(&store).context("storing legacy events whole")?;
    let (otp_mode, otp_why) = settings.otp_rule();
    tracing::info!(otp = otp_mode, "guest orders: {otp_why}");
    // Everything reads the guarded clock, so time never goes back past what the store holds.
    let clock = Arc::new(GuardedClock::new(clock, store.last_known_ms()?));

    let initial_password_file = auth::ensure_admin(&store, &data_dir, clock.now_ms())?;
    if let Some(path) = &initial_password_file {
        tracing::info!(file = %path.display(), "created user admin; its password is in the file (mode 0600)");
    }

    if settings.store.demo_data && demo::seed(&store, clock.now_ms())? {
        tracing::info!("seeded the demo menu and tables");
    }

    let rtx = store.read()?;
    let menu = demo::load_menu(&rtx)?;
    let sessions = Arc::new(Sessions::load(&rtx, clock.now_ms())?);
    drop(rtx);
    let last_seq = store.last_event_seq()?;
    // A wake-up only (subscribers read the log when they lag), so a short ring: each slot
    // holds a whole event, and 4096 placed orders cost megabytes.
    let (events_tx, _) = broadcast::channel(256);
    let shared = Arc::new(Shared {
        cached: std::sync::RwLock::new(crate::domain::menu::cached(menu)),
        events: events_tx,
        last_seq: AtomicU64::new(last_seq),
        last_batch_at: AtomicU64::new(clock.now_ms()),
        // Staff alerts are written in the transaction of the event that calls for them.
        on_emit: (settings.telegram.enabled && settings.telegram.staff_chat_id != 0).then(|| {
            crate::domain::outbox::staff_alert_hook(StaffAlerts {
                chat: settings.telegram.staff_chat_id,
                lang: settings.telegram.staff_lang.clone(),
            })
        }),
        outbox_wake: Arc::default(),
    });
    let metrics = Arc::new(Metrics::new());
    let (writer, writer_thread) = Writer::spawn(
        store.clone(),
        Arc::clone(&shared),
        Arc::clone(&clock) as Arc<dyn Clock>,
        Arc::clone(&metrics),
        WriterOptions::from_config(&settings.store),
    );
    tracing::info!(
        last_seq,
        max_batch = settings.store.max_batch,
        "writer started"
    );

    let rules = Arc::new(Rules::from_settings(&settings));
    let events = EventLog::new(store.clone(), Arc::clone(&shared), writer.clone());
    let throttle = crate::throttle::Throttle::new(settings.auth.limits());
    let pin_throttle = crate::throttle::Throttle::new(settings.auth.limits());
    let otp_key = crate::messaging::load_or_create_key(&data_dir)?;
    let otp_clients = Throttle::new(
        settings.otp.max_requests_per_client,
        settings.otp.send_window_secs * 1000,
    );
    let storage = Arc::new(crate::storage::Storage::new(
        &data_dir,
        &settings.store,
        store.reserve().cloned(),
    ));
    storage.check(store.file_bytes());
    let (stop, shutdown) = Shutdown::new();
    let upload_budget = settings.upload.backlog_budget_bytes;
    let metrics_token = settings
        .http
        .metrics_token
        .load()
        .map_err(|e| anyhow::anyhow!("http.metrics_token: {e}"))?;
    let otp_cfg = &settings.otp;
    let otp_verifies = Throttle::new(
        otp_cfg.max_verifies_per_client,
        otp_cfg.send_window_secs * 1000,
    );
    let otp_budget = crate::throttle::Budget::new(
        otp_cfg.max_sends_total,
        otp_cfg.max_sends_per_prefix,
        otp_cfg.send_window_secs * 1000,
    );
    let photos = Arc::new(
        crate::photos::Photos::open(settings.data_dir(), settings.limits.photos_budget_bytes)
            .map_err(|e| anyhow::anyhow!("opening the photos folder: {e}"))?,
    );
    let app = Arc::new(AppState {
        settings: Arc::new(settings),
        rules,
        store,
        writer,
        shared,
        events,
        metrics,
        clock,
        storage,
        ready: AtomicBool::new(false),
        accepting: Arc::new(AtomicBool::new(true)),
    });
    let state = Arc::new(ApiState {
        app: Arc::clone(&app),
        photos,
        sessions,
        pin_throttle,
        throttle,
        https: std::sync::OnceLock::new(),
        kitchen: Arc::new(crate::hub::Kitchen::default()),
        otp_key,
        otp_clients,
        otp_verifies,
        metrics_token,
        otp_budget,
        messaging: Arc::new(crate::messaging::Messaging::default()),
        upload: Arc::new(crate::upload::UploadState::new(upload_budget)),
        live: crate::api::live::Live::default(),
        shutdown: shutdown.clone(),
        restart: Arc::new(tokio::sync::Notify::new()),
    });

    // The control socket (status, backup) is a convenience: without it the daemon still runs.
    let control = match crate::control::bind(state.settings.data_dir()) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: `orderd status` and `orderd backup` will not reach this daemon");
            None
        }
    };
    let (every, watchdog) = crate::systemd::check_interval();
    let mut workers = vec![
        spawn_task(
            "retention",
            workers::retention(Arc::clone(&app), shutdown.clone()),
        ),
        spawn_task(
            "storage",
            crate::storage::run(
                Arc::clone(&app.storage),
                app.store.clone(),
                Arc::clone(&app.metrics),
                Duration::from_secs(app.settings.store.space_check_secs),
                shutdown.clone(),
            ),
        ),
        spawn_task(
            "supervise",
            crate::systemd::supervise(
                Arc::clone(&app),
                shutdown.clone(),
                every,
                watchdog,
                crate::systemd::notify,
            ),
        ),
    ];
    if let Some(listener) = control {
        workers.push(spawn_task(
            "control",
            crate::control::serve(
                listener,
                Arc::new(crate::control::Control {
                    app: Arc::clone(&app),
                    kitchen: Arc::clone(&state.kitchen),
                    status: Box::new({
                        // A weak handle: the socket must not keep the HTTP layer alive.
                        let state = Arc::downgrade(&state);
                        move || {
                            state
                                .upgrade()
                                .map_or(serde_json::Value::Null, |s| s.status())
                        }
                    }),
                }),
                shutdown.clone(),
            ),
        ));
    }

    let (hub_link, mqtt_addr) = start_mqtt(&state, &shutdown, &mut workers).await?;
    let (providers, telegram) = messaging_providers(&state)?;
    let texts = Arc::new(
        crate::messaging::Texts::load(&state.settings.messaging.texts_dir)
            .context("loading the message texts")?,
    );
    if let Some(bot) = telegram {
        workers.push(spawn_task(
            "telegram",
            crate::messaging::telegram::run(
                Arc::clone(&app),
                Arc::clone(&state.messaging),
                bot,
                Arc::clone(&texts),
                shutdown.clone(),
            ),
        ));
    }
    workers.push(spawn_task(
        "upload",
        crate::upload::run(
            Arc::clone(&app),
            Arc::clone(&state.upload),
            shutdown.clone(),
        ),
    ));
    if state.settings.kitchen.print_address_at_boot {
        workers.push(spawn_task(
            "address slip",
            crate::hub::print_address_at_boot(
                state.store.clone(),
                state.writer.clone(),
                Arc::clone(&state.kitchen),
                Arc::clone(&state.settings),
                shutdown.clone(),
            ),
        ));
    }
    workers.push(spawn_task(
        "messaging",
        crate::messaging::worker::run(
            Arc::clone(&app),
            Arc::clone(&state.messaging),
            providers,
            texts,
            shutdown.clone(),
        ),
    ));
    workers.push(spawn_task(
        "hub",
        crate::hub::worker::run(
            Arc::clone(&app),
            Arc::clone(&state.kitchen),
            hub_link,
            shutdown.clone(),
        ),
    ));

    let addr = listener.local_addr()?;
    let router = api::router(Arc::clone(&state), crate::web::router());
    let http_cfg = &state.settings.http;
    let limits = api::serve::Limits {
        header_read_timeout: http_cfg.header_read_timeout,
        per_address: http_cfg.max_connections_per_address as usize,
        total: http_cfg.max_connections as usize,
    };
    if let Some(tls_cfg) = &http_cfg.https {
        let https = tls_cfg.listen;
        let tls = if let Some((cert, key)) = &tls_cfg.cert_and_key {
            crate::tls::load(cert, key)?
        } else {
            let mut names = tls_cfg.names.clone();
            names.push("localhost".into());
            let (cert, key) = crate::tls::self_signed(&data_dir, &names)?;
            crate::tls::load(&cert, &key)?
        };
        let socket = TcpListener::bind(https)
            .await
            .with_context(|| format!("binding HTTPS on {https}"))?;
        let bound = socket.local_addr()?;
        tracing::info!(addr = %bound, fingerprint = %tls.fingerprint, "HTTPS listening");
        let _ = state.https.set(crate::tls::Https {
            addr: bound,
            fingerprint: tls.fingerprint.clone(),
        });
        workers.push(spawn_task(
            "https",
            api::serve::serve(
                socket,
                Some(tls.acceptor),
                router.clone(),
                limits,
                Arc::clone(&state.accepting),
                shutdown.clone(),
            ),
        ));
    }
    let http = spawn_task(
        "http",
        api::serve::serve(
            listener,
            None,
            router,
            limits,
            Arc::clone(&state.accepting),
            shutdown.clone(),
        ),
    );
    state.ready.store(true, Ordering::Release);
    tracing::info!(%addr, "HTTP listening");
    Ok(Running {
        addr,
        state,
        initial_password_file,
        mqtt_addr,
        stop,
        http,
        workers,
        writer_thread,
    })
}

/// Starts the embedded broker (in embedded mode) and the hub's connection to the broker: an
/// in-process link to the embedded one, or an MQTT client of the external one.
async fn start_mqtt(
    state: &ApiStateRef,
    shutdown: &Shutdown,
    workers: &mut Vec<JoinHandle<()>>,
) -> anyhow::Result<(crate::mqtt::client::Started, Option<SocketAddr>)> {
    let settings = &state.settings;
    let m = &settings.mqtt;
    let site = &settings.site.id;
    let status_topic = orderd_protocol::topics::hub_status(site);
    if settings.mqtt.mode == crate::config::MqttMode::External {
        let password = std::fs::read_to_string(&m.hub_password_file)
            .with_context(|| {
                format!(
                    "reading mqtt.hub_password_file {}",
                    m.hub_password_file.display()
                )
            })?
            .trim()
            .to_owned();
        tracing::info!(host = %m.external_host, port = m.external_port, user = %m.hub_username, "using the external MQTT broker");
        let endpoint = crate::mqtt::client::Endpoint {
            host: m.external_host.clone(),
            port: m.external_port,
            username: m.hub_username.clone(),
            password,
            keep_alive: m.keep_alive,
            status_topic,
        };
        return Ok((
            crate::mqtt::client::start(&endpoint, shutdown.clone()),
            None,
        ));
    }
    let mut listeners = vec![crate::mqtt::broker::Listener {
        transport: crate::mqtt::broker::Transport::Tcp,
        socket: TcpListener::bind(settings.mqtt.listen)
            .await
            .with_context(|| format!("binding MQTT on {}", settings.mqtt.listen))?,
    }];
    let extra = settings.mqtt.extra_listen;
    for (transport, addr) in [
        (crate::mqtt::broker::Transport::Tls, extra.tls),
        (crate::mqtt::broker::Transport::Ws, extra.ws),
        (crate::mqtt::broker::Transport::Wss, extra.wss),
    ] {
        let Some(addr) = addr else {
            continue;
        };
        let socket = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding MQTT ({}) on {addr}", transport.scheme()))?;
        listeners.push(crate::mqtt::broker::Listener { transport, socket });
    }
    let tls = if extra.need_tls() {
        Some(crate::tls::load(&m.tls_cert_file, &m.tls_key_file)?.acceptor)
    } else {
        None
    };
    let (broker, tasks) = crate::mqtt::broker::start(
        listeners,
        tls,
        m,
        site,
        crate::mqtt::broker::Deps {
            store: state.store.clone(),
            metrics: Arc::clone(&state.metrics),
            login_limits: state.settings.auth.limits(),
        },
        shutdown,
    )?;
    workers.extend(tasks);
    for (transport, addr) in broker.listening() {
        tracing::info!(%addr, transport = transport.scheme(), "MQTT broker listening");
    }
    let addr = broker.addr();
    let broker = Arc::new(broker);
    let opener = Arc::clone(&broker);
    let link = tokio::task::spawn_blocking(move || opener.local_link())
        .await?
        .map_err(|e| anyhow::anyhow!("the embedded broker refused the hub's link: {e}"))?;
    let started = crate::mqtt::client::start_local(link, status_topic, shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!("the hub's link to the embedded broker: {e}"))?;
    // Printers on the LAN, driven by the box through their own links into the broker.
    workers.push(spawn_task(
        "network printers",
        crate::hub::netprint::run(
            state.store.clone(),
            state.settings.site.id.clone(),
            Arc::clone(&broker),
            Arc::clone(&state.kitchen),
            shutdown.clone(),
        ),
    ));
    let _ = state.kitchen.broker.set(broker);
    Ok((started, Some(addr)))
}

impl Running {
    /// The shutdown signal, for tasks started next to the daemon.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown::follow(&self.stop)
    }

    /// Stops in order: refuse new work, let in-flight requests finish and commit, stop the
    /// workers, then close the writer (its last batch is committed before it exits).
    pub async fn stop(self) -> anyhow::Result<()> {
        tracing::info!("shutting down");
        crate::systemd::notify(&[sd_notify::NotifyState::Stopping]);
        self.state.ready.store(false, Ordering::Release);
        let _ = self.stop.send(true);
        let Self {
            state,
            http,
            workers,
            writer_thread,
            ..
        } = self;
        let drain = async move {
            let _ = http.await;
            for w in workers {
                let _ = w.await;
            }
            // The hub has said `offline`; let the devices' connections pass it on.
            if let Some(broker) = state.kitchen.broker.get() {
                broker
                    .connections_closed(crate::mqtt::broker::GOODBYE_GRACE)
                    .await;
            }
            drop(state);
            let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
        };
        if tokio::time::timeout(SHUTDOWN_DEADLINE, drain)
            .await
            .is_err()
        {
            anyhow::bail!(
                "shutdown did not finish within {} s; committed data is safe",
                SHUTDOWN_DEADLINE.as_secs()
            );
        }
        tracing::info!("stopped; every acknowledged order is on disk");
        Ok(())
    }
}
