//! The watchdog is fed by a health check through the writer: when the writer is wedged, the
//! pings stop (and the status says why); when it recovers, they resume.
use crate::common;
use orderd::error::Commit as _;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestServer;

async fn wait_for(sent: &Mutex<Vec<String>>, n: usize) {
    common::eventually(
        &format!("{n} watchdog pings"),
        Duration::from_secs(10),
        || async {
            let count = sent
                .lock()
                .unwrap()
                .iter()
                .filter(|m| *m == "WATCHDOG=1")
                .count();
            (count >= n).then_some(())
        },
    )
    .await;
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

    // Wedge the writer thread (a job that blocks it until the test lets it go).
    let writer = s.state().writer.clone();
    let (release, wedged) = std::sync::mpsc::channel::<()>();
    let wedge = tokio::spawn(async move {
        writer
            .run(move |_| {
                let _ = wedged.recv_timeout(Duration::from_secs(30));
                Ok(())
            })
            .await
    });
    common::eventually(
        "the status says the writer is unhealthy",
        Duration::from_secs(5),
        || async {
            sent.lock()
                .unwrap()
                .iter()
                .any(|m| m.starts_with("STATUS=UNHEALTHY"))
                .then_some(())
        },
    )
    .await;
    let before = pings(&sent);
    // Nine ping periods with the writer still wedged.
    common::quiet(Duration::from_millis(900)).await;
    assert_eq!(
        pings(&sent),
        before,
        "no watchdog ping while the writer is wedged"
    );
    release.send(()).unwrap();
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
