//! Progress of long CLI operations (backup, restore, export, compaction) on standard error:
//! one line redrawn in place when standard error is a terminal, nothing at all otherwise
//! (journald, pipes and scripts see only the final result on standard output).
//!
//! A dozen lines of `\r` redraws; a progress-bar crate would bring a terminal library into a
//! binary that must stay small for the Pi.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(100);

/// One operation's progress line.
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    total: Option<u64>,
    done: u64,
    bytes: bool,
    shown: bool,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    /// Progress of `label` over `total` units (`None`: unknown) of bytes or rows, shown only
    /// when standard error is a terminal.
    pub fn new(label: &'static str, total: Option<u64>, bytes: bool) -> Self {
        Self::with_terminal(label, total, bytes, std::io::stderr().is_terminal())
    }

    /// [`Progress::new`], saying whether to show anything.
    pub fn with_terminal(
        label: &'static str,
        total: Option<u64>,
        bytes: bool,
        shown: bool,
    ) -> Self {
        Self {
            label,
            total,
            done: 0,
            bytes,
            shown,
            started: Instant::now(),
            drawn: None,
        }
    }

    /// Sets the total once it is known.
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
    }

    /// Counts `n` more units done.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        self.draw(false);
    }

    /// Redraws (for an operation that reports nothing, e.g. compaction: the elapsed time).
    pub fn tick(&mut self) {
        self.draw(false);
    }

    /// Draws the last line and ends it.
    pub fn finish(&mut self) {
        if self.shown && self.drawn.is_some() {
            self.draw(true);
            eprintln!();
        }
    }

    fn draw(&mut self, force: bool) {
        if !self.shown || (!force && self.drawn.is_some_and(|t| t.elapsed() < REDRAW)) {
            return;
        }
        self.drawn = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{}", self.line());
        let _ = err.flush();
    }

    /// The text of the line.
    pub fn line(&self) -> String {
        let amount = |n: u64| {
            if self.bytes {
                format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
            } else {
                format!("{n} rows")
            }
        };
        let secs = self.started.elapsed().as_secs();
        match self.total {
            Some(t) if t > 0 => format!(
                "{}: {} of {} ({}%), {secs} s",
                self.label,
                amount(self.done),
                amount(t),
                self.done.min(t) * 100 / t
            ),
            _ if self.done > 0 => format!("{}: {}, {secs} s", self.label, amount(self.done)),
            _ => format!("{}: {secs} s", self.label),
        }
    }
}

/// Copies `from` to `to` in chunks, counting them into `progress`.
pub fn copy(
    from: &mut impl std::io::Read,
    to: &mut impl std::io::Write,
    progress: &mut Progress,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buf[..n])?;
        total += n as u64;
        progress.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_share_done() {
        let mut p = Progress::with_terminal("backup", Some(4 * 1024 * 1024), true, false);
        p.add(1024 * 1024);
        assert_eq!(p.line(), "backup: 1.0 MiB of 4.0 MiB (25%), 0 s");
        let mut p = Progress::with_terminal("export", None, false, false);
        assert_eq!(p.line(), "export: 0 s");
        p.add(12);
        assert_eq!(p.line(), "export: 12 rows, 0 s");
    }

    #[test]
    fn copy_counts_every_byte() {
        let data = vec![5u8; 700_000];
        let mut out = Vec::new();
        let mut p = Progress::with_terminal("restore", Some(700_000), true, false);
        assert_eq!(
            copy(&mut data.as_slice(), &mut out, &mut p).unwrap(),
            700_000
        );
        assert_eq!(out, data);
        assert!(p.line().contains("(100%)"), "{}", p.line());
    }
}
