//! How the box reaches a printer it drives itself: a TCP socket to a printer on the LAN, or the
//! character device of a printer on USB (`/dev/usb/lp0`), both as one byte stream.

use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use nix::fcntl::OFlag;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::unix::pipe;

/// Where a driven printer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Raw ESC/POS on TCP, `ip:port`.
    Tcp(String),
    /// A character device, e.g. `/dev/usb/lp0`.
    Usb(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Usb(p) => write!(f, "{p}"),
        }
    }
}

/// An open connection to a printer.
pub enum Link {
    /// A TCP socket.
    Tcp(TcpStream),
    /// A character device in non-blocking mode, opened once (a USB printer takes one user at a
    /// time) and driven by the reactor through two descriptors of that one open file: tokio's
    /// pipe ends take any non-blocking descriptor that can be polled.
    Device(pipe::Receiver, pipe::Sender),
}

/// Connects to `target` within `wait`.
pub async fn open(target: &Target, wait: Duration) -> std::io::Result<Link> {
    match target {
        Target::Tcp(addr) => {
            let sock = tokio::time::timeout(wait, TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                })??;
            let _ = sock.set_nodelay(true);
            Ok(Link::Tcp(sock))
        }
        Target::Usb(path) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
                .open(path)?;
            // Only a device: a path that names a file (the store, say) is never written to.
            if !file.metadata()?.file_type().is_char_device() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{path} is not a character device"),
                ));
            }
            let reader = file.try_clone()?;
            Ok(Link::Device(
                pipe::Receiver::from_file_unchecked(reader)?,
                pipe::Sender::from_file_unchecked(file)?,
            ))
        }
    }
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Device(rx, _) => Pin::new(rx).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Self::Device(_, tx) => Pin::new(tx).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Device(_, tx) => Pin::new(tx).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Device(_, tx) => Pin::new(tx).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_path_that_is_not_a_device_is_never_opened_for_printing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("orderd.redb");
        std::fs::write(&file, b"precious").unwrap();
        let Err(e) = open(
            &Target::Usb(file.display().to_string()),
            Duration::from_secs(1),
        )
        .await
        else {
            panic!("a regular file was opened as a printer");
        };
        assert!(e.to_string().contains("not a character device"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"precious");
        assert!(
            open(
                &Target::Usb("/dev/usb/no-such-lp".into()),
                Duration::from_secs(1)
            )
            .await
            .is_err()
        );
    }
}
