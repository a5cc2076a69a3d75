//! A full disk, for real: the daemon's data directory on a small tmpfs that a test fills up.
//! New orders get 507, orders already placed can still be finished, orders resume without a
//! restart once space is freed, and a restart finds every acknowledged order.
//!
//! Mounting needs root, so this test is `#[ignore]`d for `cargo test` and run by
//! `scripts/test.sh` (which runs as root) with `--ignored`.

use crate::common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{TestServer, error_code};
use reqwest::StatusCode;
use serde_json::json;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size_mb: u32) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mb}m"),
                "orderd-test",
            ])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (scripts/test.sh runs this test as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes zeros into `path` until the filesystem is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(28), "expected ENOSPC, got {e}");
            break;
        }
    }
    // Top off the last partial chunk too.
    while f.write_all(&[0u8; 4096]).is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; scripts/test.sh runs it with --ignored"]
async fn a_full_disk_refuses_new_orders_with_507_and_recovers_without_a_restart() {
    let fs = Tmpfs::mount(64);
    let dir = tempfile::tempdir_in(&fs.0).unwrap();
    let configure = |c: &mut orderd::config::RawConfig| {
        c.store.warn_free_mb = 32;
        c.store.min_free_mb = 8;
        c.store.reserve_mb = 4;
        c.store.space_check_secs = 1;
    };
    let s = TestServer::start_at(dir, common::T0_MS, configure).await;
    assert!(s.dir.path().join("orderd.reserve").exists());
    let staff = s.user("anna", "staff").await;
    let espresso = || json!([{"item_id": "espresso", "quantity": 1}]);
    let mut acknowledged = Vec::new();
    for _ in 0..5 {
        let (st, o) = s.order(&staff, espresso()).await;
        assert_eq!(st, StatusCode::CREATED, "{o}");
        acknowledged.push(o["id"].as_str().unwrap().to_owned());
    }
    let (_, status) = s.send("GET", "/api/v1/status", Some(&staff), None).await;
    assert_eq!(status["storage"]["level"], "ok", "{status}");

    // Fill the disk.
    let filler = fs.0.join("filler");
    fill(&filler);
    let placed = std::cell::RefCell::new(acknowledged);
    let (st, v) = common::eventually(
        "new orders refused on a full disk",
        Duration::from_secs(5),
        || async {
            let (st, v) = s.order(&staff, espresso()).await;
            if st == StatusCode::CREATED {
                // Placed before the next free-space reading: still acknowledged, still kept.
                placed
                    .borrow_mut()
                    .push(v["id"].as_str().unwrap().to_owned());
                return None;
            }
            Some((st, v))
        },
    )
    .await;
    let mut acknowledged = placed.into_inner();
    assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_eq!(error_code(&v), "storage_full");
    let (_, status) = s.send("GET", "/api/v1/status", Some(&staff), None).await;
    assert_eq!(status["storage"]["level"], "full", "{status}");
    assert!(
        status["status"]
            .as_str()
            .unwrap()
            .contains("DISK FULL, NEW ORDERS REFUSED")
    );
    let metrics = s.metrics().await;
    assert!(metrics.contains("orderd_storage_level 2"), "{metrics}");

    // The kitchen can still finish what was ordered.
    for id in &acknowledged[..3] {
        let (st, v) = s.set_status(&staff, id, "accepted").await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }

    // Space comes back: orders resume, no restart.
    std::fs::remove_file(&filler).unwrap();
    let id = common::eventually(
        "orders resumed after space was freed",
        Duration::from_secs(5),
        || async {
            let (st, v) = s.order(&staff, espresso()).await;
            if st == StatusCode::CREATED {
                return Some(v["id"].as_str().unwrap().to_owned());
            }
            assert_eq!(st, StatusCode::INSUFFICIENT_STORAGE, "{v}");
            None
        },
    )
    .await;
    acknowledged.push(id);
    // The storage reserve is restored.
    s.wait_get("/api/v1/status", &staff, |status| {
        status["storage"]["level"] != "full" && status["storage"]["reserve_in_place"] == true
    })
    .await;

    // A restart finds every acknowledged order, with the statuses it was given.
    let dir = s.stop().await;
    let s = TestServer::start_at(dir, common::T0_MS + 1000, configure).await;
    let staff = s.login("anna", "password-123").await;
    for (i, id) in acknowledged.iter().enumerate() {
        let (st, o) = s
            .send("GET", &format!("/api/v1/orders/{id}"), Some(&staff), None)
            .await;
        assert_eq!(st, StatusCode::OK, "order {id}: {o}");
        let want = if i < 3 { "accepted" } else { "placed" };
        assert_eq!(o["status"], want, "{o}");
    }
    s.stop().await;
}

/// The store itself, on a disk that filled up behind the budget's back: growing the file
/// gives up the reserve instead of failing the commit (which redb could not recover from
/// without a reopen).
#[test]
#[ignore = "needs root to mount a tmpfs; scripts/test.sh runs it with --ignored"]
fn the_store_grows_into_its_reserve_when_the_disk_is_full() {
    use orderd::store::Store;
    let fs = Tmpfs::mount(24);
    let store = Store::open_with_reserve(&fs.0, 1024 * 1024, 8 * 1024 * 1024).unwrap();
    let reserve = store.reserve().unwrap().clone();
    assert!(reserve.in_place());
    fill(&fs.0.join("filler"));
    let size_before = store.file_bytes();
    // Write until the file must grow.
    let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("grow_test");
    let value = vec![7u8; 3000];
    let mut key = 0u64;
    while store.file_bytes() == size_before {
        let wtx = store.db().begin_write().unwrap();
        {
            let mut t = wtx.open_table(table).unwrap();
            for _ in 0..100 {
                t.insert(key, value.as_slice()).unwrap();
                key += 1;
            }
        }
        wtx.commit()
            .expect("a commit on a full disk grows into the reserve");
        assert!(key < 1_000_000, "the store never grew");
    }
    assert!(!reserve.in_place());
    assert_eq!(reserve.released(), 1);
    // Every row is there.
    let rtx = store.read().unwrap();
    let t = rtx.open_table(table).unwrap();
    assert_eq!(redb::ReadableTableMetadata::len(&t).unwrap(), key);
}
