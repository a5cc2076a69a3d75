//! The HTTP listener: accepts connections under a cap per client address and a cap over all
//! addresses, closes connections whose request headers do not arrive in time, and reports when
//! the box cannot accept.
//!
//! hyper's header-read timeout runs from the moment a connection waits for a request head,
//! including an idle keep-alive connection between requests, so one timeout closes both the
//! socket that never sends anything and the slowloris that trickles its headers. A response
//! that streams (a live stream) is not a header read and is not cut.
//!
//! The box's own address (127.0.0.1, ::1) is not capped: its health checks, benchmarks or a
//! local reverse proxy (which then owns the caps) always get in. Every other address, other
//! loopback addresses included, is a client like any on the LAN. A flood from one address is
//! stopped by the per-address cap; staff, kitchen displays and devices on other addresses keep
//! their places.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

/// The listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request head (or the next one on a kept-alive connection) must arrive within this.
    pub header_read_timeout: Duration,
    /// Open connections from one client address.
    pub per_address: usize,
    /// Open connections over all addresses but the box's own.
    pub total: usize,
}

/// Open connections per client address; a place is given back when its guard drops.
#[derive(Debug, Default)]
struct Places {
    by_addr: Mutex<HashMap<IpAddr, usize>>,
}

struct Place {
    places: Arc<Places>,
    addr: IpAddr,
}

impl Places {
    fn take(self: &Arc<Self>, addr: IpAddr, limits: &Limits) -> Option<Place> {
        let mut m = self.by_addr.lock().unwrap_or_else(PoisonError::into_inner);
        if !is_own(addr) {
            let total: usize = m
                .iter()
                .filter(|(a, _)| !is_own(**a))
                .map(|(_, n)| *n)
                .sum();
            let mine = m.get(&addr).copied().unwrap_or(0);
            if mine >= limits.per_address || total >= limits.total {
                return None;
            }
        }
        *m.entry(addr).or_default() += 1;
        Some(Place {
            places: Arc::clone(self),
            addr,
        })
    }
}

/// The box's own address (127.0.0.1, ::1): not capped, and the one that may read `/metrics`
/// without a token.
pub fn is_own(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(a) => {
            a.is_loopback() || a.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut m = self
            .places
            .by_addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.addr);
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until shutdown; `accepting` is false while
/// accepting fails (out of file descriptors), for `/readyz` and the watchdog.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Limits,
    accepting: Arc<AtomicBool>,
    mut shutdown: Shutdown,
) {
    let places = Arc::new(Places::default());
    let mut refused_logged = false;
    loop {
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE / ENFILE and the like: the connection stays in the backlog; try again
                // shortly rather than spin, and say so.
                if accepting.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, "HTTP cannot accept connections");
                }
                tokio::select! {
                    () = shutdown.wait() => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
        };
        if !accepting.swap(true, Ordering::AcqRel) {
            tracing::info!("HTTP accepts connections again");
        }
        let Some(place) = places.take(peer.ip(), &limits) else {
            if !refused_logged {
                tracing::warn!(%peer, per_address = limits.per_address, total = limits.total, "HTTP connection refused: over the connection limit");
                refused_logged = true;
            }
            drop(stream);
            continue;
        };
        refused_logged = false;
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let conn_shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _place = place;
            match tls {
                None => serve_conn(stream, peer, app, limits, conn_shutdown).await,
                Some(acceptor) => {
                    // The handshake is bounded like a request head.
                    let hs =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    match hs.await {
                        Ok(Ok(tls_stream)) => {
                            serve_conn(tls_stream, peer, app, limits, conn_shutdown).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection until it ends or shutdown (then gracefully, for up to 5 s).
async fn serve_conn<I>(io: I, peer: SocketAddr, app: Router, limits: Limits, mut shutdown: Shutdown)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
        let mut app = app.clone();
        async move {
            // A bug that panics in one request answers that request only.
            let call = std::panic::AssertUnwindSafe(tower_service::Service::call(&mut app, req));
            futures_util::FutureExt::catch_unwind(call)
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(%peer, "a request handler panicked; answered 500");
                    Ok(axum::response::IntoResponse::into_response(
                        crate::error::AppError::internal(),
                    ))
                })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        }
        () = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_address_and_in_all_but_the_boxs_own() {
        let places = Arc::new(Places::default());
        let limits = Limits {
            header_read_timeout: Duration::from_secs(1),
            per_address: 2,
            total: 3,
        };
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([127, 0, 1, 2]);
        let own = IpAddr::from([127, 0, 0, 1]);
        let a1 = places.take(a, &limits).unwrap();
        let _a2 = places.take(a, &limits).unwrap();
        assert!(places.take(a, &limits).is_none(), "per address");
        let _b1 = places.take(b, &limits).unwrap();
        assert!(places.take(b, &limits).is_none(), "in all");
        let own_places: Vec<Place> = (0..10)
            .map(|_| places.take(own, &limits).unwrap())
            .collect();
        assert_eq!(own_places.len(), 10, "the box's own address is not capped");
        drop(a1);
        assert!(places.take(b, &limits).is_some(), "a place given back");
    }
}
