//! An ESC/POS printer on a TCP port, or behind a device path as a USB printer is (a
//! pseudo-terminal in raw mode), for tests and for a try at home (`examples/printer-emu`): it
//! answers `DLE EOT` status queries, turns each job (up to its cut) into readable text, and can
//! be told to run out of paper after N jobs, open its cover, drop the connection in the middle
//! of the next job, or stall (stop reading). Loopback only.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::escpos::status::{PrinterState, decode_text, replies};

#[derive(Debug)]
struct State {
    printer: PrinterState,
    printed: Vec<String>,
    /// When each job of `printed` was complete (its cut arrived), µs since the Unix epoch.
    printed_at: Vec<u64>,
    partial: usize,
    paper_out_after: Option<usize>,
    drop_next: bool,
    stalled: bool,
    connections: usize,
}

/// A running emulator.
#[derive(Clone)]
pub struct Emulator {
    addr: SocketAddr,
    path: Option<std::path::PathBuf>,
    state: Arc<Mutex<State>>,
    /// The device side of a pseudo-terminal, held open so the printer side never sees the
    /// line hang up between two users.
    _device: Option<Arc<std::os::fd::OwnedFd>>,
}

impl Emulator {
    /// Listens on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    fn fresh_state() -> Arc<Mutex<State>> {
        Arc::new(Mutex::new(State {
            printer: PrinterState::Ready,
            printed: Vec::new(),
            printed_at: Vec::new(),
            partial: 0,
            paper_out_after: None,
            drop_next: false,
            stalled: false,
            connections: 0,
        }))
    }

    /// A printer behind a device path, as a USB printer is (`/dev/usb/lp0`): a pseudo-terminal
    /// in raw mode whose device side ([`Emulator::path`]) the box opens. Dropping the
    /// connection midway is not possible on a device; the other faults are.
    pub fn start_device() -> std::io::Result<Self> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
        let mut t = tcgetattr(&pty.slave).map_err(std::io::Error::from)?;
        cfmakeraw(&mut t);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
        let path = nix::unistd::ttyname(&pty.slave).map_err(std::io::Error::from)?;
        let master = std::fs::File::from(pty.master);
        let flags = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL)
            .map_err(std::io::Error::from)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(std::io::Error::from)?;
        let reader = master.try_clone()?;
        let stream = tokio::io::join(
            tokio::net::unix::pipe::Receiver::from_file_unchecked(reader)?,
            tokio::net::unix::pipe::Sender::from_file_unchecked(master)?,
        );
        let emu = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            path: Some(path),
            state: Self::fresh_state(),
            _device: Some(Arc::new(pty.slave)),
        };
        let e = emu.clone();
        tokio::spawn(async move { e.serve(stream).await });
        Ok(emu)
    }

    /// The device path of a printer started with [`Emulator::start_device`].
    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }

    /// Listens on `addr`.
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let emu = Self {
            addr: listener.local_addr()?,
            path: None,
            state: Self::fresh_state(),
            _device: None,
        };
        let e = emu.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let e = e.clone();
                tokio::spawn(async move { e.serve(sock).await });
            }
        });
        Ok(emu)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets what the printer reports (and whether it prints).
    pub fn set_state(&self, s: PrinterState) {
        self.lock().printer = s;
    }

    /// Runs out of paper once `n` more jobs have printed.
    pub fn paper_out_after(&self, n: usize) {
        let mut st = self.lock();
        st.paper_out_after = Some(st.printed.len() + n);
    }

    /// Drops the connection in the middle of the next job (what it got of it is lost).
    pub fn drop_next_job_midway(&self) {
        self.lock().drop_next = true;
    }

    /// Stops reading (no replies, nothing printed) until un-stalled.
    pub fn stall(&self, on: bool) {
        self.lock().stalled = on;
    }

    /// The text of every job printed whole, in order.
    pub fn printed(&self) -> Vec<String> {
        self.lock().printed.clone()
    }

    /// Every job printed whole with when its last byte arrived (µs since the Unix epoch), in
    /// order: for benchmarks.
    pub fn printed_with_times(&self) -> Vec<(String, u64)> {
        let st = self.lock();
        st.printed
            .iter()
            .cloned()
            .zip(st.printed_at.iter().copied())
            .collect()
    }

    /// Jobs cut short by a dropped connection.
    pub fn partial(&self) -> usize {
        self.lock().partial
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.lock().connections
    }

    async fn serve(&self, mut sock: impl AsyncRead + AsyncWrite + Unpin) {
        self.lock().connections += 1;
        let mut job: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            while self.lock().stalled {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let n = match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // Stalled while it waited: what came in waits too, unanswered and unprinted.
            while self.lock().stalled {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            pending.extend_from_slice(&buf[..n]);
            let mut i = 0;
            while i < pending.len() {
                // DLE EOT n: answer at once, whatever the state.
                if pending[i] == 0x10 && pending.get(i + 1) == Some(&0x04) {
                    let Some(&q) = pending.get(i + 2) else { break };
                    let r = replies(self.lock().printer);
                    let byte = match q {
                        1 => r[0],
                        2 => r[1],
                        _ => r[2],
                    };
                    if sock.write_all(&[byte]).await.is_err() {
                        return;
                    }
                    i += 3;
                    continue;
                }
                // GS V m n: the cut ends a job.
                if pending[i] == 0x1d && pending.get(i + 1) == Some(&b'V') {
                    if pending.len() < i + 4 {
                        break;
                    }
                    job.extend_from_slice(&pending[i..i + 4]);
                    i += 4;
                    let mut st = self.lock();
                    if st.printer.prints() {
                        st.printed.push(decode_text(&job));
                        let at = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
                        st.printed_at.push(at);
                        if st.paper_out_after.is_some_and(|n| st.printed.len() >= n) {
                            st.printer = PrinterState::PaperOut;
                            st.paper_out_after = None;
                        }
                    }
                    job.clear();
                    continue;
                }
                job.push(pending[i]);
                i += 1;
                if job.len() == 16 {
                    let mut st = self.lock();
                    if st.drop_next {
                        st.drop_next = false;
                        st.partial += 1;
                        return;
                    }
                }
            }
            pending.drain(..i);
        }
    }
}
