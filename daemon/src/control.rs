//! The local control socket, `<data_dir>/orderd.sock` (mode 0600): how `orderd status` and
//! `orderd backup` reach the running daemon. Whoever may open the socket file may use it —
//! the same people who may read the store itself — so it needs no password.
//!
//! Protocol: one JSON request line (`{"cmd":"status"}`, `{"cmd":"backup"}`,
//! `{"cmd":"export","from":YYYYMMDD,"to":YYYYMMDD,"what":"orders"|"z-reports"}`), one JSON answer line; a backup or export
//! answer (`{"ok":true,"bytes":N,…}`) is followed by the N bytes of the file.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::shutdown::Shutdown;
use crate::state::{AppState, AppStateRef};

/// What the socket's commands use: the application's state, the kitchen hub (test prints), and
/// the status view (`GET /api/v1/status`'s, built by the layer that owns its parts).
pub struct Control {
    /// The application's shared state.
    pub app: AppStateRef,
    /// The kitchen hub's shared state.
    pub kitchen: std::sync::Arc<crate::hub::Kitchen>,
    /// The status view.
    pub status: Box<dyn Fn() -> Value + Send + Sync>,
}

impl std::ops::Deref for Control {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

/// File name of the socket in the data directory.
pub const SOCKET: &str = "orderd.sock";

/// Binds the socket (replacing a stale one) with mode 0600.
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    let path = data_dir.join(SOCKET);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "{} is in use: is another orderd running on this data directory?",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the socket until shutdown.
pub async fn serve(listener: UnixListener, state: std::sync::Arc<Control>, mut shutdown: Shutdown) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            () = shutdown.wait() => break,
        };
        match conn {
            Ok((stream, _)) => {
                let state = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &state).await {
                        tracing::warn!(error = %e, "control connection failed");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "control socket accept failed"),
        }
    }
    let _ = std::fs::remove_file(state.settings.data_dir().join(SOCKET));
}

async fn handle(stream: UnixStream, state: &Control) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(4096)).read_line(&mut line).await?;
    if line.is_empty() {
        // A client that only checked the daemon is there (`orderd export`) and hung up.
        return Ok(());
    }
    let req: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    match req["cmd"].as_str() {
        Some("status") => {
            let mut answer = (state.status)();
            answer["ok"] = json!(true);
            write.write_all(format!("{answer}\n").as_bytes()).await?;
        }
        Some("test_print") => {
            let id = req["device"].as_str().unwrap_or_default().to_owned();
            let answer = match crate::hub::test_print(
                &state.store,
                &state.writer,
                &state.kitchen,
                &state.settings,
                &id,
            )
            .await
            {
                Ok(job) => json!({"ok": true, "job_id": job.job_id}),
                Err(e) => json!({"ok": false, "error": e.message}),
            };
            write.write_all(format!("{answer}\n").as_bytes()).await?;
        }
        Some("backup") => {
            let tmp = state
                .settings
                .data_dir()
                .join(format!("backup-{}.tmp", crate::domain::random_hex(4)));
            let store = state.store.clone();
            let dest = tmp.clone();
            let made = tokio::task::spawn_blocking(move || store.snapshot(&dest)).await;
            let result = match made {
                Ok(Ok(rows)) => send_file(&mut write, &tmp, rows).await,
                Ok(Err(e)) => {
                    let answer = json!({"ok": false, "error": format!("snapshot failed: {e}")});
                    write.write_all(format!("{answer}\n").as_bytes()).await
                }
                Err(e) => {
                    let answer =
                        json!({"ok": false, "error": format!("snapshot task failed: {e}")});
                    write.write_all(format!("{answer}\n").as_bytes()).await
                }
            };
            let _ = tokio::fs::remove_file(&tmp).await;
            result?;
        }
        Some("export") => {
            let (Some(from), Some(to)) = (req["from"].as_u64(), req["to"].as_u64()) else {
                let answer = json!({"ok": false, "error": "export needs from and to (YYYYMMDD)"});
                write.write_all(format!("{answer}\n").as_bytes()).await?;
                return write.shutdown().await;
            };
            let tmp = state
                .settings
                .data_dir()
                .join(format!("export-{}.tmp", crate::domain::random_hex(4)));
            let store = state.store.clone();
            let dest = tmp.clone();
            let z = req["what"].as_str() == Some("z-reports");
            let made =
                tokio::task::spawn_blocking(move || -> Result<u64, crate::store::StoreError> {
                    let file = crate::files::create(&dest)
                        .map_err(|e| crate::store::StoreError::Redb(e.into()))?;
                    let out = std::io::BufWriter::new(file);
                    let rtx = store.read()?;
                    if z {
                        crate::domain::export::write_z_csv(&rtx, from as u32, to as u32, out)
                    } else {
                        crate::domain::export::write_csv(&rtx, from as u32, to as u32, out)
                    }
                })
                .await;
            let result = match made {
                Ok(Ok(rows)) => send_file(&mut write, &tmp, rows).await,
                Ok(Err(e)) => {
                    let answer = json!({"ok": false, "error": format!("export failed: {e}")});
                    write.write_all(format!("{answer}\n").as_bytes()).await
                }
                Err(e) => {
                    let answer = json!({"ok": false, "error": format!("export task failed: {e}")});
                    write.write_all(format!("{answer}\n").as_bytes()).await
                }
            };
            let _ = tokio::fs::remove_file(&tmp).await;
            result?;
        }
        _ => {
            let answer = json!({"ok": false, "error": "unknown command; use status, backup, export or test_print"});
            write.write_all(format!("{answer}\n").as_bytes()).await?;
        }
    }
    write.shutdown().await
}

async fn send_file(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    path: &PathBuf,
    rows: u64,
) -> std::io::Result<()> {
    let mut file = tokio::fs::File::open(path).await?;
    let bytes = file.metadata().await?.len();
    let header = json!({"ok": true, "bytes": bytes, "rows": rows});
    write.write_all(format!("{header}\n").as_bytes()).await?;
    tokio::io::copy(&mut file, write).await?;
    tracing::info!(bytes, rows, "backup streamed");
    Ok(())
}

/// Client side: sends one request and returns the answer line and the stream for any bytes
/// that follow.
pub async fn request(data_dir: &Path, cmd: &str) -> anyhow::Result<(Value, BufReader<UnixStream>)> {
    request_with(data_dir, json!({ "cmd": cmd })).await
}

/// Like [`request`], with a whole request object.
pub async fn request_with(
    data_dir: &Path,
    req: Value,
) -> anyhow::Result<(Value, BufReader<UnixStream>)> {
    use anyhow::Context as _;
    let path = data_dir.join(SOCKET);
    let mut stream = match UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => anyhow::bail!(
            "connecting to {}: permission denied; the socket belongs to the service's user, so run this as root (sudo orderd …)",
            path.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "connecting to {} (is orderd running on this data directory?)",
                    path.display()
                )
            });
        }
    };
    stream.write_all(format!("{req}\n").as_bytes()).await?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let answer: Value = serde_json::from_str(&line).context("the daemon's answer is not JSON")?;
    if answer["ok"] != true {
        anyhow::bail!(
            "{}",
            answer["error"].as_str().unwrap_or("the daemon refused")
        );
    }
    Ok((answer, reader))
}
