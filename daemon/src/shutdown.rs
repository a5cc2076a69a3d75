//! The one shutdown signal every task watches (a leaf: it depends on nothing in the daemon).

use tokio::sync::watch;

/// One signal that reaches every task: `true` means stop.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal and its sender (send `true` to stop).
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    /// A signal that follows `sender`.
    pub fn follow(sender: &watch::Sender<bool>) -> Self {
        Self(sender.subscribe())
    }

    /// Resolves once shutdown has begun.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Whether shutdown has begun.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}
