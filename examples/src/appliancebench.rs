//! Appliance benchmark of issue #7, run by hand (`scripts/bench-appliance.sh`): cold start to
//! systemd `READY=1`, and the CPU and wake-ups of an idle daemon.
//!
//! Cold start: the daemon is spawned with `NOTIFY_SOCKET` pointing at a datagram socket this
//! program listens on; the time from spawn to `READY=1` is taken, on an empty data directory
//! (first boot: store created, demo menu seeded, admin password hashed) and on an existing
//! store (every later boot). Idle: after READY and a settling pause, the daemon's CPU time
//! (`/proc/PID/stat`) and context switches of all its threads (`/proc/PID/task/*/status`) are
//! read over a window with no client, with what it wrote (`/proc/PID/io`). Loopback only; every daemon is killed at the end.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

#[path = "bench_util.rs"]
mod bench_util;
use bench_util::{pct, rss_kb};

/// Options.
#[derive(Debug, Parser)]
struct Args {
    /// The orderd binary.
    #[arg(long, default_value = "target/release/orderd")]
    bin: PathBuf,
    /// Starts measured of each kind.
    #[arg(long, default_value_t = 20)]
    starts: usize,
    /// Idle window, seconds.
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
}

fn spawn(bin: &Path, data: &Path, socket: &Path) -> anyhow::Result<Child> {
    Command::new(bin)
        .args([
            "run",
            "--http-listen",
            "127.0.0.1:0",
            "--mqtt-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("NOTIFY_SOCKET", socket)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning orderd")
}

/// Waits for `READY=1` on `sock`; returns the time since `t0`.
fn wait_ready(sock: &UnixDatagram, t0: Instant) -> anyhow::Result<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).context("no READY=1 within 10 s")?;
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            return Ok(t0.elapsed());
        }
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{name:<28} n={:<3} p50 {:>6.1} ms  p95 {:>6.1} ms  max {:>6.1} ms",
        ms.len(),
        pct(&ms, 0.5),
        pct(&ms, 0.95),
        ms[ms.len() - 1]
    );
}

/// utime + stime of the process, in clock ticks.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

/// (bytes the process had written to storage, write syscalls) from `/proc/PID/io`.
fn io_written(pid: u32) -> anyhow::Result<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let field = |name: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("write_bytes:"), field("syscw:")))
}

/// Context switches (voluntary + not) summed over every thread, and the thread count.
fn switches(pid: u32) -> anyhow::Result<(u64, usize)> {
    let mut total = 0;
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
        threads += 1;
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Ok((total, threads))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.bin.exists() {
        bail!(
            "{} not found; build it with cargo build --release",
            args.bin.display()
        );
    }
    let work = tempfile::tempdir()?;
    let socket = work.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;

    let mut first = Vec::new();
    let mut again = Vec::new();
    for i in 0..args.starts {
        let data = work.path().join(format!("data-{i}"));
        let t0 = Instant::now();
        let child = spawn(&args.bin, &data, &socket)?;
        first.push(wait_ready(&sock, t0)?.as_secs_f64() * 1000.0);
        stop(child);
        let t0 = Instant::now();
        let child = spawn(&args.bin, &data, &socket)?;
        again.push(wait_ready(&sock, t0)?.as_secs_f64() * 1000.0);
        stop(child);
    }
    println!(
        "cold start, spawn -> READY=1 ({} starts each):",
        args.starts
    );
    report("  first boot (empty dir)", first);
    report("  restart (existing store)", again);

    // Idle.
    let data = work.path().join("idle");
    let t0 = Instant::now();
    let child = spawn(&args.bin, &data, &socket)?;
    wait_ready(&sock, t0)?;
    std::thread::sleep(Duration::from_secs(5));
    let pid = child.id();
    let hz = 100.0; // USER_HZ on Linux
    let (c0, (s0, threads), (w0b, w0c)) = (cpu_ticks(pid)?, switches(pid)?, io_written(pid)?);
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.idle_secs));
    let (c1, (s1, _), (w1b, w1c)) = (cpu_ticks(pid)?, switches(pid)?, io_written(pid)?);
    let secs = w0.elapsed().as_secs_f64();
    let rss_kb = rss_kb(Some(pid));
    stop(child);
    let cpu_s = (c1 - c0) as f64 / hz;
    println!(
        "idle {secs:.0} s: CPU {cpu_s:.2} s ({:.3} % of one core), {:.1} wake-ups/s over {threads} threads, RSS {:.1} MiB",
        cpu_s / secs * 100.0,
        (s1 - s0) as f64 / secs,
        rss_kb as f64 / 1024.0
    );
    println!(
        "idle {secs:.0} s: {} write syscalls, {} bytes written to storage",
        w1c - w0c,
        w1b - w0b
    );
    Ok(())
}
