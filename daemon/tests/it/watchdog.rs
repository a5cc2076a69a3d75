//! The watchdog is fed by a health check through the writer: when the writer is wedged, the
//! pings stop (and the status says why); when it recovers, they resume.
use crate::common;
use orderd::error::Commit as _;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;

async fn wait_for(sent: &Mutex<Vec<String>>, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let count = sent
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == "WATCHDOG=1")
            .count();
        if count >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pings stopped: {:?}",
            sent.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_writer_stops_the_watchdog() {
    let s = TestServer::start().await;
    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = sent.clone();
    let supervisor = tokio::spawn(orderd::systemd::supervise(
        s.state().app.clone(),
        s.running.as_ref().unwrap().shutdown(),
        Duration::from_millis(100),
        true,
        move |states| {
            let mut v = sink.lock().unwrap();
            v.extend(states.iter().map(ToString::to_string));
        },
    ));
    let pings = |sent: &Mutex<Vec<String>>| {
        sent.lock()
            .unwrap()
            .iter()
            .filter(|m| *m == "WATCHDOG=1")
            .count()
    };
    wait_for(&sent, 2).await;

    // Wedge the writer thread for 1.5 s (a job that blocks it).
    let writer = s.state().writer.clone();
    let wedge = tokio::spawn(async move {
        writer
            .run(|_| {
                std::thread::sleep(Duration::from_millis(1500));
                Ok(())
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = pings(&sent);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        pings(&sent),
        before,
        "no watchdog ping while the writer is wedged"
    );
    assert!(
        sent.lock()
            .unwrap()
            .iter()
            .any(|m| m.starts_with("STATUS=UNHEALTHY")),
        "{:?}",
        sent.lock().unwrap()
    );
    wedge.await.unwrap().unwrap();
    wait_for(&sent, before + 2).await;
    assert!(
        sent.lock()
            .unwrap()
            .iter()
            .any(|m| m.starts_with("STATUS=open orders"))
    );
    s.stop().await;
    supervisor.await.unwrap();
}
