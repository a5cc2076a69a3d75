//! Background workers. Each does one bounded unit of work per step through the writer and
//! stops when the shutdown signal is set. (The kitchen hub lives in `hub/`; the notifier and
//! uploader of later issues come here, all fed by the event log.)

use std::sync::Arc;
use std::time::Duration;

use crate::domain::retention;
use crate::error::Commit as _;
use crate::shutdown::Shutdown;
use crate::state::AppStateRef;

/// One bounded retention sweep (`domain::retention::sweep`) with the expired sessions
/// removed in the same job.
pub fn sweep(
    tx: &mut crate::store::writer::Tx<'_>,
    rules: &crate::domain::Rules,
) -> crate::error::TxResult<retention::Swept> {
    let mut swept = retention::sweep(tx, rules)?;
    swept.expired += crate::auth::expire_sessions(tx)?;
    Ok(swept)
}

/// Prunes old orders every `retention_interval_secs` (and once at start).
pub async fn retention(state: AppStateRef, mut shutdown: Shutdown) {
    let every = Duration::from_secs(state.settings.orders.retention_interval_secs);
    loop {
        loop {
            if shutdown.is_set() {
                return;
            }
            let rules = Arc::clone(&state.rules);
            match state.writer.run(move |tx| sweep(tx, &rules)).await {
                Ok(s) => {
                    if s.orders + s.events + s.expired > 0 {
                        tracing::info!(
                            orders = s.orders,
                            days = s.days,
                            events = s.events,
                            expired = s.expired,
                            "retention sweep"
                        );
                    }
                    if !s.more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention sweep failed; will retry");
                    break;
                }
            }
        }
        // Closed print jobs go with the orders they printed.
        let before = state
            .now_ms()
            .saturating_sub(u64::from(state.settings.orders.retention_days) * 86_400_000);
        match state
            .writer
            .run(move |tx| crate::domain::print_jobs::prune(tx, before, 10_000))
            .await
        {
            Ok(n) if n > 0 => tracing::info!(jobs = n, "pruned closed print jobs"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "print-job pruning failed; will retry"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
    }
}
