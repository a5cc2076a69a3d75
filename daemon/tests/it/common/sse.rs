//! A minimal Server-Sent Events client over a raw TCP socket (HTTP/1.1, chunked), so tests can
//! read frames one by one, stop reading (a slow client) and shrink the receive buffer.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpSocket;
use tokio::net::tcp::OwnedReadHalf;

/// One SSE frame (comments come back as `event == ":"`).
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

pub struct Sse {
    pub status: u16,
    pub head: String,
    reader: BufReader<OwnedReadHalf>,
    _write: tokio::net::tcp::OwnedWriteHalf,
    chunk_left: usize,
    text: String,
    done: bool,
}

impl Sse {
    /// Opens `path`; `recv_buf` shrinks the socket's receive buffer (a slow client).
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
        recv_buf: Option<u32>,
    ) -> Self {
        let sock = TcpSocket::new_v4().unwrap();
        if let Some(n) = recv_buf {
            sock.set_recv_buffer_size(n).unwrap();
        }
        let stream = sock.connect(addr).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut req =
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n");
        for (k, v) in headers {
            let _ = write!(req, "{k}: {v}\r\n");
        }
        req.push_str("\r\n");
        write.write_all(req.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(read);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Self {
            status,
            head,
            reader,
            _write: write,
            chunk_left: 0,
            text: String::new(),
            done: false,
        }
    }

    /// The body of a non-stream answer (an error), parsed as JSON.
    pub async fn error_body(&mut self) -> Value {
        let mut out = Vec::new();
        while let Some(b) = self.chunk().await {
            out.extend(b);
        }
        if out.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.reader.read_to_end(&mut out))
                .await;
        }
        serde_json::from_slice(&out).unwrap_or(Value::Null)
    }

    async fn chunk(&mut self) -> Option<Vec<u8>> {
        if self.done
            || !self
                .head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
        {
            return None;
        }
        if self.chunk_left == 0 {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await.ok()? == 0 {
                self.done = true;
                return None;
            }
            if line.trim().is_empty() {
                line.clear();
                self.reader.read_line(&mut line).await.ok()?;
            }
            self.chunk_left = usize::from_str_radix(line.trim(), 16).ok()?;
            if self.chunk_left == 0 {
                self.done = true;
                return None;
            }
        }
        let mut buf = vec![0; self.chunk_left.min(64 * 1024)];
        let n = self.reader.read(&mut buf).await.ok()?;
        if n == 0 {
            self.done = true;
            return None;
        }
        buf.truncate(n);
        self.chunk_left -= n;
        Some(buf)
    }

    /// The next frame (including heartbeat comments), or `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(i) = self.text.find("\n\n") {
                let raw: String = self.text.drain(..i + 2).collect();
                let mut f = Frame {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in raw.lines() {
                    if line.starts_with(':') {
                        f.event = ":".into();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        f.id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        v.clone_into(&mut f.event);
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if line_is_retry(&raw) {
                    continue;
                }
                f.data = serde_json::from_str(&data).unwrap_or(Value::Null);
                return Some(f);
            }
            let bytes = self.chunk().await?;
            self.text.push_str(std::str::from_utf8(&bytes).unwrap());
        }
    }

    /// The next frame that is not a heartbeat or hello, within `secs`.
    pub async fn event(&mut self, secs: u64) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(secs), async {
            loop {
                let f = self.next().await?;
                if f.event != ":" && f.event != "hello" {
                    return Some(f);
                }
            }
        })
        .await
        .unwrap_or(None)
    }
}

fn line_is_retry(raw: &str) -> bool {
    raw.lines().all(|l| l.starts_with("retry:") || l.is_empty())
}
