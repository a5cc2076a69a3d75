//! What each CLI command does: load and check the config, set up logging, then run the daemon
//! or do the one-off job.

use std::io::BufRead as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::auth::{self, Role};
use crate::cli::{Cli, Command, ConfigArg, DeviceAction, RunArgs, UserAction};
use crate::clock::{Clock, SystemClock};
use crate::config::{RawConfig, SHIPPED_CONFIG, Settings};
use crate::domain::random_hex;
use crate::error::Commit as _;
use crate::metrics::Metrics;
use crate::progress::Progress;
use crate::store::Store;
use crate::store::writer::{Shared, Writer, WriterOptions};

/// Runs a parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    // Commands that may write into the store of a stopped daemon.
    let offline = match &cli.command {
        Some(
            Command::User { config, .. }
            | Command::Device { config, .. }
            | Command::Restore { config, .. }
            | Command::Export { config, .. }
            | Command::Compact(config)
            | Command::StoreStats(config),
        ) => Some(config.clone()),
        _ => None,
    };
    let result = match cli.command {
        None => run(&cli.run),
        Some(Command::Run(args)) => run(&args),
        Some(Command::CheckConfig(arg)) => return check_config(&arg),
        Some(Command::InitConfig) => {
            print!("{SHIPPED_CONFIG}");
            Ok(())
        }
        Some(Command::User { config, action }) => user(&config, action),
        Some(Command::StoreStats(arg)) => store_stats(&arg),
        Some(Command::Compact(arg)) => compact(&arg),
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "orderd", &mut std::io::stdout());
            Ok(())
        }
        Some(Command::Man { dir }) => man(dir.as_deref()),
        Some(Command::Status(arg)) => status(&arg),
        Some(Command::Backup { config, file }) => backup(&config, &file),
        Some(Command::Restore { config, file }) => restore(&config, &file),
        Some(Command::Export {
            config,
            from,
            to,
            format,
            what,
            out,
        }) => export(&config, &from, &to, (&format, &what), out.as_deref()),
        Some(Command::Device { config, action }) => device(&config, action),
    };
    // Run as root on an installed box: what the command wrote goes back to the service's user.
    if let Some(arg) = offline
        && let Ok(settings) = load_settings(&arg, None)
        && let Err(e) = crate::account::give_back(settings.data_dir())
    {
        eprintln!(
            "orderd: giving {} back to its owner: {e}",
            settings.data_dir().display()
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration of an installed box, which every command reads when given no `--config`.
pub const INSTALLED_CONFIG: &str = "/etc/orderd/orderd.toml";

/// The store of an installed box: the unit's `StateDirectory`, which it passes as `--data-dir`.
pub const INSTALLED_DATA_DIR: &str = "/var/lib/orderd";

/// The configuration file a command reads: `--config`, else [`INSTALLED_CONFIG`] when it exists
/// (so on an installed box every command finds the service's store without flags), else none
/// (the embedded defaults: a checkout keeps its local `./orderd-data`).
#[must_use]
pub fn config_path(arg: &ConfigArg) -> Option<std::path::PathBuf> {
    arg.config.clone().or_else(|| {
        let installed = Path::new(INSTALLED_CONFIG);
        installed.exists().then(|| installed.to_path_buf())
    })
}

/// Loads and validates the configuration with the CLI's overrides applied.
pub fn load_settings(
    arg: &ConfigArg,
    http_listen: Option<&str>,
) -> Result<Settings, crate::config::Problems> {
    load_settings_with(arg, http_listen, None)
}

/// [`load_settings`] with the MQTT listen override too.
pub fn load_settings_with(
    arg: &ConfigArg,
    http_listen: Option<&str>,
    mqtt_listen: Option<&str>,
) -> Result<Settings, crate::config::Problems> {
    // Every problem in one run: wrong types and unknown keys from the file, then the values.
    let path = config_path(arg);
    let (mut raw, mut problems, text) = RawConfig::load_lenient(path.as_deref())?;
    if let Some(addr) = mqtt_listen {
        addr.clone_into(&mut raw.mqtt.listen);
    }
    if let Some(dir) = &arg.data_dir {
        raw.store.data_dir.clone_from(dir);
    } else if path.as_deref() == Some(Path::new(INSTALLED_CONFIG)) {
        // The unit runs the service on its state directory whatever the file says (a config kept
        // from an older package says ./orderd-data), so every command on the box uses it too.
        raw.store.data_dir = INSTALLED_DATA_DIR.into();
    }
    if let Some(addr) = http_listen {
        addr.clone_into(&mut raw.http.listen);
    }
    // What the owner set in the admin page wins over the file (docs/pages.md, "The owner's set-up").
    let site = match crate::site::read(&raw.store.data_dir) {
        Ok(site) => site,
        Err(p) => {
            problems.push(p);
            crate::site::SiteFile::default()
        }
    };
    site.apply(&mut raw);
    let site_path = crate::site::path(&raw.store.data_dir);
    match raw.validate() {
        Ok(mut settings) if problems.is_empty() => {
            settings.from_admin_page = site.keys();
            Ok(settings)
        }
        Ok(_) => Err(crate::config::Problems(problems)),
        Err(crate::config::Problems(more)) => {
            for mut p in more {
                // A key whose type was wrong already has its problem; its default is not one.
                if problems.iter().any(|q| q.key == p.key) {
                    continue;
                }
                if site.keys().contains(&p.key.as_str()) {
                    // Its value is the one the admin page saved, not the file's.
                    p.message = format!(
                        "{} (set in the admin page, {})",
                        p.message,
                        site_path.display()
                    );
                } else {
                    p.line = p.line.or_else(|| crate::config::line_of(&text, &p.key));
                }
                problems.push(p);
            }
            // In the order of the file; problems of keys not in it (defaults) last.
            problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
            Err(crate::config::Problems(problems))
        }
    }
}

fn check_config(arg: &ConfigArg) -> ExitCode {
    match load_settings(arg, None) {
        Ok(s) => {
            let m = &s.mqtt;
            if s.mqtt.extra_listen.need_tls()
                && let Err(e) = crate::tls::load(&m.tls_cert_file, &m.tls_key_file)
            {
                eprintln!("mqtt.tls_cert_file / mqtt.tls_key_file: {e:#}");
                return ExitCode::from(2);
            }
            let file = config_path(arg).map_or_else(
                || "the embedded defaults".to_owned(),
                |p| p.display().to_string(),
            );
            println!(
                "configuration OK ({file}): site {:?}, data dir {}, HTTP {}",
                s.site.id,
                s.data_dir().display(),
                s.http.listen
            );
            if !s.from_admin_page.is_empty() {
                println!(
                    "set in the admin page ({}), winning over the file: {}",
                    crate::site::path(s.data_dir()).display(),
                    s.from_admin_page.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(problems) => {
            eprint!("{problems}");
            ExitCode::from(2)
        }
    }
}

fn status(arg: &ConfigArg) -> anyhow::Result<()> {
    let settings = load_settings(arg, None)?;
    let (answer, _) =
        runtime()?.block_on(crate::control::request(settings.data_dir(), "status"))?;
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}

fn backup(arg: &ConfigArg, file: &Path) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt as _;
    let settings = load_settings(arg, None)?;
    let tmp = file.with_extension("partial");
    let mut progress = Progress::new("backup", None, true);
    progress.tick();
    let (answer, reader) = runtime()?.block_on(async {
        let (answer, mut reader) = crate::control::request(settings.data_dir(), "backup").await?;
        let bytes = answer["bytes"].as_u64().context("no size in the answer")?;
        progress.set_total(bytes);
        let mut out =
            crate::files::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut copied = 0u64;
        while copied < bytes {
            let want = usize::try_from(bytes - copied).map_or(buf.len(), |l| l.min(buf.len()));
            let n = reader.read(&mut buf[..want]).await?;
            if n == 0 {
                break;
            }
            std::io::Write::write_all(&mut out, &buf[..n])?;
            copied += n as u64;
            progress.add(n as u64);
        }
        anyhow::ensure!(
            copied == bytes,
            "the snapshot was cut short ({copied} of {bytes} bytes)"
        );
        out.sync_all()?;
        anyhow::Ok((answer, reader))
    })?;
    progress.finish();
    drop(reader);
    // Check it opens as a store before calling it a backup.
    redb::Database::open(&tmp)
        .with_context(|| format!("{} is not a readable store", tmp.display()))?;
    std::fs::rename(&tmp, file)?;
    println!(
        "backup written to {} ({} bytes, {} rows)",
        file.display(),
        answer["bytes"],
        answer["rows"]
    );
    Ok(())
}

fn export(
    arg: &ConfigArg,
    from: &str,
    to: &str,
    (format, what): (&str, &str),
    out: Option<&Path>,
) -> anyhow::Result<()> {
    use crate::domain::{day_number, parse_date};
    anyhow::ensure!(format == "csv", "--format must be csv");
    anyhow::ensure!(
        matches!(what, "orders" | "z-reports"),
        "--what must be orders or z-reports"
    );
    let from = parse_date(from)
        .map(day_number)
        .context("--from must be YYYY-MM-DD")?;
    let to = parse_date(to)
        .map(day_number)
        .context("--to must be YYYY-MM-DD")?;
    anyhow::ensure!(from <= to, "--to must not be before --from");
    let settings = load_settings(arg, None)?;
    let mut sink: Box<dyn std::io::Write> = match out {
        Some(p) => {
            Box::new(crate::files::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let socket = settings.data_dir().join(crate::control::SOCKET);
    let mut progress = Progress::new("export", None, true);
    // The daemon runs when its socket exists (it removes it at shutdown); a socket left by a
    // crash refuses, and the stopped store is read instead.
    let running = socket.exists()
        && !matches!(
            std::os::unix::net::UnixStream::connect(&socket),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        );
    if running {
        // The daemon runs: ask it.
        let bytes = runtime()?.block_on(async {
            use tokio::io::AsyncReadExt as _;
            let req = serde_json::json!({"cmd": "export", "from": from, "to": to, "what": what});
            let (answer, mut reader) =
                crate::control::request_with(settings.data_dir(), req).await?;
            let n = answer["bytes"].as_u64().context("no size in the answer")?;
            progress.set_total(n);
            let mut buf = Vec::new();
            (&mut reader).take(n).read_to_end(&mut buf).await?;
            anyhow::Ok(buf)
        })?;
        crate::progress::copy(&mut bytes.as_slice(), &mut sink, &mut progress)?;
    } else {
        let store = Store::open(settings.data_dir(), settings.store.cache_size_bytes)?;
        let mut counted = Counted {
            inner: &mut sink,
            progress: &mut progress,
        };
        if what == "z-reports" {
            crate::domain::export::write_z_csv(&store.read()?, from, to, &mut counted)?;
        } else {
            crate::domain::export::write_csv(&store.read()?, from, to, &mut counted)?;
        }
    }
    sink.flush()?;
    progress.finish();
    Ok(())
}

/// A writer that counts what goes through it into a progress line.
struct Counted<'a, W> {
    inner: W,
    progress: &'a mut Progress,
}

impl<W: std::io::Write> std::io::Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn restore(arg: &ConfigArg, file: &Path) -> anyhow::Result<()> {
    let settings = load_settings(arg, None)?;
    let data_dir = settings.data_dir().to_path_buf();
    crate::files::private_dir(&data_dir)?;
    // Fails if the daemon holds the store; replays any log first.
    drop(Store::open(&data_dir, settings.store.cache_size_bytes)?);
    let staging = tempfile_dir(&data_dir)?;
    let mut src =
        std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let mut progress = Progress::new("restore", Some(src.metadata()?.len()), true);
    let mut dst = crate::files::create(&staging.join(Store::FILE))?;
    crate::progress::copy(&mut src, &mut dst, &mut progress)
        .with_context(|| format!("copying {}", file.display()))?;
    dst.sync_all()?;
    drop(dst);
    progress.finish();
    let check = Store::open(&staging, settings.store.cache_size_bytes)
        .with_context(|| format!("{} is not a usable orderd store", file.display()))?;
    let events = check.last_event_seq()?;
    drop(check);
    std::fs::rename(staging.join(Store::FILE), data_dir.join(Store::FILE))?;
    let _ = std::fs::remove_file(data_dir.join(Store::WAL_FILE));
    let _ = std::fs::remove_dir_all(&staging);
    crate::files::sync_dir(&data_dir)?;
    println!(
        "restored {} into {} (event log at seq {events})",
        file.display(),
        data_dir.display()
    );
    Ok(())
}

/// A fresh staging directory inside `dir` (same filesystem, so the final rename is atomic).
fn tempfile_dir(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let p = dir.join(format!("restore-{}", random_hex(4)));
    crate::files::private_dir(&p)?;
    Ok(p)
}

fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let cmd = <Cli as clap::CommandFactory>::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(())
}

fn compact(arg: &ConfigArg) -> anyhow::Result<()> {
    let settings = load_settings(arg, None)?;
    // Fails if the daemon holds the store; replays any log first.
    let mut store = Store::open(settings.data_dir(), settings.store.cache_size_bytes)?;
    let mut progress = Progress::new("compact", None, false);
    let (before, after) = std::thread::scope(|scope| {
        let job = scope.spawn(|| store.compact());
        while !job.is_finished() {
            progress.tick();
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        job.join().unwrap_or_else(|_| {
            Err(crate::store::StoreError::RolledBack(
                "compaction panicked".into(),
            ))
        })
    })?;
    progress.finish();
    println!(
        "compacted {}: {before} → {after} bytes",
        store.path().display()
    );
    Ok(())
}

fn store_stats(arg: &ConfigArg) -> anyhow::Result<()> {
    let settings = load_settings(arg, None)?;
    let store = Store::open(settings.data_dir(), settings.store.cache_size_bytes)?;
    print!("{}", store.stats()?);
    Ok(())
}

/// Logs go to journald with structured fields (`ORDER_ID`, `DEVICE_ID`, …) when systemd
/// connected stderr to the journal (`JOURNAL_STREAM`), else human-readable to stderr. The level
/// comes from `RUST_LOG`, else from `log.level`. rumqttd's spans are never recorded.
fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| {
            l.with_field_prefix(None)
                .with_syslog_identifier("orderd".into())
        });
    // rumqttd opens spans around every packet its router handles (three at error level, so
    // they pass any level), and formats each topic into them: a third of the router's CPU at
    // 200 orders/s. None of them is kept; rumqttd's own log lines still are, and the broker
    // (`mqtt::broker`) logs each client's comings and goings with its id.
    let no_rumqttd_spans = tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.is_span() && meta.target().starts_with("rumqttd"))
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(no_rumqttd_spans);
    match journald {
        Some(j) => registry.with(j).init(),
        None => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .init(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Raises the soft limit of open files to the hard limit (the unit sets 65536), so idle
/// sockets cannot use up the 1,024 a process starts with; HTTP and MQTT cap their connections
/// well below it.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current < lim.maximum {
        let from = lim.current;
        lim.current = lim.maximum;
        match setrlimit(Resource::Nofile, lim) {
            Ok(()) => tracing::info!(from = ?from, to = ?lim.current, "open-file limit raised"),
            Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
        }
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let settings = load_settings_with(
        &args.config,
        args.http_listen.as_deref(),
        args.mqtt_listen.as_deref(),
    )?;
    init_logging(&settings.log.level);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), site = %settings.site.id, "orderd starting");
    if !settings.from_admin_page.is_empty() {
        tracing::info!(file = %crate::site::path(settings.data_dir()).display(), keys = ?settings.from_admin_page, "restaurant settings from the admin page win over the configuration file");
    }
    raise_fd_limit();
    let restart = runtime()?.block_on(async move {
        // Installed before anything is announced, so a stop sent as soon as the banner or
        // systemd's READY appears is handled gracefully rather than killing the process.
        let stop = StopSignals::install()?;
        let listener = tokio::net::TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("binding HTTP on {}", settings.http.listen))?;
        let running = crate::server::start(settings, listener, Arc::new(SystemClock)).await?;
        let mqtt: Vec<_> = running
            .state
            .kitchen
            .broker
            .get()
            .map(|b| b.listening().to_vec())
            .unwrap_or_default();
        print_welcome(
            config_path(&args.config).as_deref(),
            running.addr,
            &mqtt,
            running.initial_password_file.as_deref(),
            running.state.settings.data_dir(),
            running.state.https.get(),
            running.state.settings.otp_rule().1,
        );
        // Store, writer and HTTP listener are up: tell systemd.
        let status = crate::systemd::status_line(&running.state);
        crate::systemd::notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ]);
        let restart = running.state.restart.clone();
        let again = tokio::select! {
            () = stop.wait() => false,
            () = restart.notified() => true,
        };
        if again {
            tracing::info!("restarting to apply the restaurant's settings");
            crate::systemd::notify(&[sd_notify::NotifyState::Status(
                "restarting to apply the restaurant's settings",
            )]);
        }
        running.stop().await?;
        anyhow::Ok(again)
    })?;
    // The runtime, the store and every listener are closed: start again as the same process
    // (the same PID under systemd), reading the configuration and site.toml afresh.
    if restart {
        return Err(reexec());
    }
    Ok(())
}

/// Replaces this process with a fresh start of the same binary and arguments; returns only
/// when that failed.
fn reexec() -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return anyhow::Error::new(e).context("finding the binary to restart"),
    };
    // After a package upgrade the running file is gone: start the one now at its path.
    let exe = exe
        .to_str()
        .and_then(|s| s.strip_suffix(" (deleted)"))
        .map_or(exe.clone(), std::path::PathBuf::from);
    let e = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::Error::new(e).context(format!("restarting {}", exe.display()))
}

fn print_welcome(
    config: Option<&Path>,
    addr: std::net::SocketAddr,
    mqtt: &[(crate::mqtt::broker::Transport, std::net::SocketAddr)],
    password_file: Option<&Path>,
    data_dir: &Path,
    https: Option<&crate::tls::Https>,
    otp_why: &str,
) {
    let lan = crate::lan::lan_addresses();
    let urls = crate::lan::base_urls("http", addr, &lan);
    let base = &urls[0];
    println!("orderd is running");
    println!(
        "  Config:   {}",
        config.map_or_else(
            || "embedded defaults".to_owned(),
            |p| p.display().to_string()
        )
    );
    println!("  Kitchen:  {base}/kitchen   Orders: {base}/staff   Admin: {base}/admin");
    if urls.len() > 1 {
        println!("  Also at:  {}", urls[1..].join("   "));
    }
    // A table's QR token is a credential for ordering at it: the banner (and so the journal)
    // names where the codes are, not a code.
    println!("  QR codes: {base}/admin  (Tables → Show QR sheet, to print)");
    println!("  Guests:   {otp_why}");
    if let Some(h) = https {
        println!(
            "  HTTPS:    {}/  certificate SHA-256 {}",
            crate::lan::base_urls("https", h.addr, &lan)[0],
            h.fingerprint
        );
    }
    println!("  API:      {base}/api/v1/");
    println!("  Menu:     {base}/api/v1/menu?lang=en");
    println!("  OpenAPI:  {base}/api/v1/openapi.json");
    println!("  Health:   {base}/readyz   Metrics: {base}/metrics");
    if mqtt.is_empty() {
        println!("  MQTT:     external broker (see [mqtt] in the configuration)");
    }
    for (i, (transport, m)) in mqtt.iter().enumerate() {
        let host = if m.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            m.ip().to_string()
        };
        let label = if i == 0 { "  MQTT:    " } else { "           " };
        let note = if i == 0 {
            " (embedded broker; add devices in Admin → Devices)"
        } else {
            ""
        };
        println!("{label} {}://{host}:{}{note}", transport.scheme(), m.port());
    }
    println!("  Data:     {}", data_dir.display());
    let initial = data_dir.join(auth::INITIAL_PASSWORD_FILE);
    match password_file {
        Some(p) => println!("  Sign in as admin with the password in {}", p.display()),
        None if initial.exists() => println!(
            "  Sign in as admin with the password in {} (change it with `orderd user passwd admin`)",
            initial.display()
        ),
        None => println!("  Sign in with an existing account"),
    }
    if std::env::var_os("INVOCATION_ID").is_some() {
        // Under systemd: this banner is in the journal, beside every later line.
        println!("  Logs:     journalctl -u orderd   Status: systemctl status orderd");
    }
}

/// SIGINT (a terminal's ctrl-c) and SIGTERM (systemd's stop), registered when created.
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        tracing::info!("stop signal received");
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        Ok((random_hex(12), true))
    }
}

/// Opens the store of a stopped daemon.
fn offline_store(config: &ConfigArg) -> anyhow::Result<(Settings, Store)> {
    let settings = load_settings(config, None)?;
    let data_dir = settings.data_dir().to_path_buf();
    if !data_dir.join(Store::FILE).exists() {
        eprintln!(
            "orderd: no store in {} yet; creating one (the daemon uses the data_dir of {})",
            data_dir.display(),
            config_path(config).map_or_else(
                || "its configuration".to_owned(),
                |p| p.display().to_string()
            )
        );
    }
    crate::files::private_dir(&data_dir)?;
    let store = Store::open(&data_dir, settings.store.cache_size_bytes)?;
    Ok((settings, store))
}

/// Runs one-off writes through a writer of its own, then closes it (checkpointing the store).
fn with_writer<T>(
    store: Store,
    f: impl FnOnce(&Writer, &tokio::runtime::Runtime) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let shared = Arc::new(Shared {
        cached: std::sync::RwLock::new(crate::domain::menu::cached(crate::demo::load_menu(
            &store.read()?,
        )?)),
        events: tokio::sync::broadcast::channel(16).0,
        last_seq: std::sync::atomic::AtomicU64::new(store.last_event_seq()?),
        last_batch_at: std::sync::atomic::AtomicU64::new(0),
        on_emit: None,
        outbox_wake: Arc::default(),
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let options = WriterOptions {
        max_batch: 1,
        ..WriterOptions::from_config(&crate::config::StoreConfig::default())
    };
    let (writer, thread) = Writer::spawn(store, shared, clock, Arc::new(Metrics::new()), options);
    let rt = runtime()?;
    let outcome = f(&writer, &rt);
    drop(writer);
    let _ = thread.join();
    outcome
}

fn user(config: &ConfigArg, action: UserAction) -> anyhow::Result<()> {
    let (settings, store) = offline_store(config)?;
    if let UserAction::List = action {
        for u in auth::list_users(&store.read()?)? {
            println!("{}\t{}", u.username, u.role.as_str());
        }
        return Ok(());
    }
    with_writer(store, |writer, rt| match action {
        UserAction::Add {
            username,
            role,
            password_stdin,
        } => {
            let role = Role::parse(&role).context("--role must be staff or admin")?;
            let (password, generated) = read_password(password_stdin)?;
            auth::check_credentials(&username, &password)?;
            let hash = auth::hash_password(&password)?;
            let name = username.clone();
            rt.block_on(writer.run(move |tx| auth::add_user(tx, &name, role, hash)))?;
            if generated {
                println!("added {username} ({}); password: {password}", role.as_str());
            } else {
                println!("added {username} ({})", role.as_str());
            }
            Ok(())
        }
        UserAction::Passwd {
            username,
            password_stdin,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            auth::check_credentials(&username, &password)?;
            let hash = auth::hash_password(&password)?;
            let name = username.clone();
            let revoked = rt.block_on(writer.run(move |tx| auth::set_password(tx, &name, hash)))?;
            if generated {
                println!("new password for {username}: {password}");
            }
            println!("{} session(s) ended", revoked.len());
            // The first-run password stops working: its file goes, and the banner stops
            // naming it.
            let initial = settings.data_dir().join(auth::INITIAL_PASSWORD_FILE);
            if username == "admin" && initial.exists() {
                std::fs::remove_file(&initial)
                    .with_context(|| format!("removing {}", initial.display()))?;
                println!("removed {} (the first-run password)", initial.display());
            }
            Ok(())
        }
        UserAction::Pin {
            username,
            pin_stdin,
        } => {
            let (pin, generated) = if pin_stdin {
                let (line, _) = read_password(true)?;
                (line, false)
            } else {
                use rand::Rng as _;
                (
                    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32)),
                    true,
                )
            };
            auth::check_pin(&pin)?;
            let hash = auth::hash_password(&pin)?;
            let name = username.clone();
            rt.block_on(writer.run(move |tx| auth::set_pin(tx, &name, &hash)))?;
            if generated {
                println!("approval PIN for {username}: {pin}");
            } else {
                println!("approval PIN for {username} set");
            }
            Ok(())
        }
        UserAction::List => Ok(()),
    })
}

/// `orderd device test-print ID`: the running daemon prints it (over the control socket).
fn test_print(config: &ConfigArg, id: &str) -> anyhow::Result<()> {
    let settings = load_settings(config, None)?;
    let answer = runtime()?.block_on(async {
        let req = serde_json::json!({"cmd": "test_print", "device": id});
        crate::control::request_with(settings.data_dir(), req)
            .await
            .map(|(a, _)| a)
    })?;
    anyhow::ensure!(
        answer["ok"] == true,
        "{}",
        answer["error"].as_str().unwrap_or("the daemon refused")
    );
    println!("test slip queued for {id} (job {})", answer["job_id"]);
    Ok(())
}

fn device(config: &ConfigArg, action: DeviceAction) -> anyhow::Result<()> {
    use crate::domain::devices::{self, DeviceKind, NewDevice};
    if let DeviceAction::TestPrint { id } = &action {
        return test_print(config, id);
    }
    let (settings, store) = offline_store(config)?;
    let site = settings.site.id.clone();
    match action {
        DeviceAction::List => {
            for d in devices::list(&store.read()?)? {
                println!(
                    "{}\t{}\t{}{}",
                    d.id,
                    d.kind.as_str(),
                    d.stations.join(","),
                    if d.backup { "\tbackup" } else { "" }
                );
            }
            Ok(())
        }
        DeviceAction::ExportAcl {
            dir,
            hub_user,
            group,
        } => {
            anyhow::ensure!(
                orderd_protocol::topics::is_valid_id(&hub_user),
                "--hub-user must be 1-32 characters of a-z, 0-9, _ or -"
            );
            let broker_group = match group.as_deref() {
                Some("none") => None,
                Some(name) => Some((
                    name.to_owned(),
                    group_id(name).with_context(|| format!("--group {name}: no such group"))?,
                    true,
                )),
                None => group_id("mosquitto").map(|gid| ("mosquitto".to_owned(), gid, false)),
            };
            let list = devices::list(&store.read()?)?;
            std::fs::create_dir_all(&dir)?;
            let hub_password = devices::new_password();
            let (passwd, acl) = devices::mosquitto_files(
                &list,
                &site,
                &settings.mqtt.discovery_prefix,
                &hub_user,
                &devices::mosquitto_hash(&hub_password),
            );
            auth::write_secret_file(&dir.join("mosquitto.passwd"), &passwd)?;
            auth::write_secret_file(&dir.join("mosquitto.acl"), &acl)?;
            auth::write_secret_file(&dir.join("hub-password"), &format!("{hub_password}\n"))?;
            println!(
                "wrote {} device(s) and the hub account {hub_user:?} to {}",
                list.len(),
                dir.display()
            );
            let given = broker_group.and_then(|(name, gid, explicit)| {
                let give = || -> anyhow::Result<()> {
                    for file in ["mosquitto.passwd", "mosquitto.acl"] {
                        let path = dir.join(file);
                        rustix::fs::chown(&path, None, Some(rustix::fs::Gid::from_raw(gid)))
                            .with_context(|| {
                                format!("giving {} to group {name} (run as root?)", path.display())
                            })?;
                        rustix::fs::chmod(&path, rustix::fs::Mode::from_raw_mode(0o640))?;
                    }
                    Ok(())
                };
                match give() {
                    Ok(()) => Some(Ok(name)),
                    // The default is a convenience: without the right to give the files away,
                    // say how instead of failing.
                    Err(_) if !explicit => None,
                    Err(e) => Some(Err(e)),
                }
            });
            match given.transpose()? {
                Some(name) => println!(
                    "mosquitto.passwd and mosquitto.acl are 0640, group {name}; hub-password stays 0600"
                ),
                None => println!(
                    "mosquitto.passwd and mosquitto.acl are 0600 for this user; the broker must be able to \
                     read them (re-run as root with --group GROUP, GROUP being the one the broker runs as)"
                ),
            }
            Ok(())
        }
        DeviceAction::Add {
            id,
            kind,
            stations,
            backup,
            encoding,
            tcp,
            flavour,
            usb,
            codepage,
            columns,
        } => {
            let req = NewDevice {
                tcp,
                usb,
                codepage,
                columns,
                flavour: orderd_protocol::Flavour::parse(&flavour)
                    .context("--flavour must be orderd, tasmota, shelly_gen2 or shelly_gen1")?,
                id,
                kind: DeviceKind::parse(&kind).context(
                    "--kind must be printer, buzzer, display, bump_bar or home_assistant",
                )?,
                stations,
                backup,
                encoding: match encoding.as_str() {
                    "json" => orderd_protocol::Encoding::Json,
                    "postcard" => orderd_protocol::Encoding::Postcard,
                    _ => anyhow::bail!("--encoding must be json or postcard"),
                },
            };
            req.check()?;
            let password = devices::new_password();
            let argon = auth::hash_password(&password)?;
            let mosquitto = devices::mosquitto_hash(&password);
            with_writer(store, |writer, rt| {
                let d =
                    rt.block_on(writer.run(move |tx| devices::add(tx, &req, argon, mosquitto)))?;
                match d.tcp.as_ref().or(d.usb.as_ref()) {
                    Some(addr) => println!(
                        "added {} ({}) at {addr}; the box prints to it itself",
                        d.id,
                        d.kind.as_str()
                    ),
                    None if d.flavour.is_relay() => println!(
                        "added {} ({} relay); set its MQTT client, user and topic to {}, password: {password}",
                        d.id,
                        d.flavour.as_str(),
                        d.id
                    ),
                    None => println!(
                        "added {} ({}); MQTT username {}, password: {password}",
                        d.id,
                        d.kind.as_str(),
                        d.id
                    ),
                }
                Ok(())
            })
        }
        DeviceAction::TestPrint { id } => test_print(config, &id),
        DeviceAction::Remove { id } => with_writer(store, |writer, rt| {
            let name = id.clone();
            rt.block_on(writer.run(move |tx| devices::remove(tx, &name)))?;
            println!("removed {id}");
            Ok(())
        }),
    }
}

/// The id of the system group `name`.
fn group_id(name: &str) -> Option<u32> {
    nix::unistd::Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

#[cfg(test)]
mod tests {
    use crate::lan::base_urls;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    #[test]
    fn the_banner_names_the_lan_addresses_and_leaves_out_port_80() {
        let lan: Vec<IpAddr> = vec![
            Ipv4Addr::new(192, 168, 1, 20).into(),
            Ipv4Addr::new(10, 0, 0, 5).into(),
        ];
        let any = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        assert_eq!(
            base_urls("http", any(8080), &lan),
            ["http://192.168.1.20:8080", "http://10.0.0.5:8080"]
        );
        assert_eq!(base_urls("http", any(80), &lan)[0], "http://192.168.1.20");
        assert_eq!(
            base_urls("https", any(443), &lan)[0],
            "https://192.168.1.20"
        );
        assert_eq!(base_urls("http", any(80), &[]), ["http://127.0.0.1"]);
        let one = SocketAddr::from((Ipv4Addr::LOCALHOST, 8080));
        assert_eq!(base_urls("http", one, &lan), ["http://127.0.0.1:8080"]);
    }
}
