//! Interop with a real Mosquitto (Debian's `mosquitto`, installed by `scripts/test.sh`): the
//! password and ACL files written by `orderd device export-acl` let each device touch only its
//! own topics, and refuse wrong passwords; orderd's hub works through that Mosquitto
//! (external-broker mode); Mosquitto's own clients work against the embedded broker.

use crate::common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_orderd");

fn orderd(args: &[&str], dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_mosquitto(dir: &Path, acl_dir: &Path) -> (Broker, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    let running_as_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\npersistence false\n{}",
            acl_dir.join("mosquitto.passwd").display(),
            acl_dir.join("mosquitto.acl").display(),
            // As root, Mosquitto drops to its own `mosquitto` user, as the installed service
            // does: it reads the files because `export-acl` gave them to its group (0640).
            ""
        ),
    )
    .unwrap();
    if running_as_root {
        use std::os::unix::fs::PermissionsExt as _;
        // The temporary directories are 0700; let the broker's user walk to the files.
        let mut walk = acl_dir.to_path_buf();
        while walk.pop() && walk.starts_with(dir) {
            std::fs::set_permissions(&walk, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        for file in ["mosquitto.passwd", "mosquitto.acl"] {
            let meta = std::fs::metadata(acl_dir.join(file)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{file}");
        }
    }
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is installed (scripts/test.sh installs it)");
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (broker, port)
}

/// The broker's address and a device's credentials, as every Mosquitto client takes them.
fn connection(port: u16, user: &str, password: &str) -> [String; 8] {
    [
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-u",
        user,
        "-P",
        password,
    ]
    .map(str::to_owned)
}

fn client(tool: &str, port: u16, user: &str, password: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(connection(port, user, password));
    if !args.contains(&"-i") {
        cmd.arg("-i").arg(format!("{user}-{tool}"));
    }
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

fn password_of(added: &str) -> String {
    added.trim().rsplit("password: ").next().unwrap().to_owned()
}

#[test]
fn exported_acl_confines_each_device_in_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p1 = password_of(&orderd(
        &[
            "device",
            "add",
            "p1",
            "--kind",
            "printer",
            "--station",
            "grill",
        ],
        &data,
    ));
    let p2 = password_of(&orderd(
        &[
            "device",
            "add",
            "p2",
            "--kind",
            "printer",
            "--station",
            "bar",
        ],
        &data,
    ));
    let bb = password_of(&orderd(
        &[
            "device",
            "add",
            "bb",
            "--kind",
            "bump_bar",
            "--station",
            "grill",
        ],
        &data,
    ));
    let acl_dir = dir.path().join("acl");
    orderd(
        &["device", "export-acl", "--dir", acl_dir.to_str().unwrap()],
        &data,
    );
    let hub = std::fs::read_to_string(acl_dir.join("hub-password"))
        .unwrap()
        .trim()
        .to_owned();
    let (_broker, port) = start_mosquitto(dir.path(), &acl_dir);

    // Wrong password: refused.
    let out = client(
        "mosquitto_pub",
        port,
        "p1",
        "wrong",
        &["-t", "orderd/demo/printer/p1/job/status", "-m", "x"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authorised"),
        "{out:?}"
    );

    // Publishing: own topics pass, others' and the hub's are dropped (retained, so the check
    // below needs no timing).
    for (user, pw, topic, payload) in [
        ("p1", &p1, "orderd/demo/printer/p1/job/status", "p1-own"),
        ("p1", &p1, "orderd/demo/printer/p2/job/status", "p1-forged"),
        ("p1", &p1, "orderd/demo/hub/status", "p1-hub"),
        ("bb", &bb, "orderd/demo/station/grill/bump", "bb-own"),
        (
            "bb",
            &bb,
            "orderd/demo/station/bar/bump",
            "bb-other-station",
        ),
    ] {
        let out = client(
            "mosquitto_pub",
            port,
            user,
            pw,
            &["-r", "-q", "1", "-t", topic, "-m", payload],
        );
        assert!(out.status.success(), "{out:?}");
    }
    let out = client(
        "mosquitto_sub",
        port,
        "orderd-hub",
        &hub,
        &["-t", "orderd/demo/#", "-v", "-W", "2"],
    );
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        seen.contains("orderd/demo/printer/p1/job/status p1-own"),
        "{seen}"
    );
    assert!(
        seen.contains("orderd/demo/station/grill/bump bb-own"),
        "{seen}"
    );
    for forged in ["p1-forged", "p1-hub", "bb-other-station"] {
        assert!(!seen.contains(forged), "{forged} got through:\n{seen}");
    }

    // Subscribing: a printer gets its own jobs, never another printer's.
    for (printer, payload) in [("p1", "job-for-p1"), ("p2", "job-for-p2")] {
        let topic = format!("orderd/demo/printer/{printer}/job");
        let out = client(
            "mosquitto_pub",
            port,
            "orderd-hub",
            &hub,
            &["-r", "-q", "1", "-t", &topic, "-m", payload],
        );
        assert!(out.status.success(), "{out:?}");
    }
    let own = client(
        "mosquitto_sub",
        port,
        "p1",
        &p1,
        &["-t", "orderd/demo/printer/p1/job", "-C", "1", "-W", "5"],
    );
    assert_eq!(String::from_utf8_lossy(&own.stdout).trim(), "job-for-p1");
    let other = client(
        "mosquitto_sub",
        port,
        "p1",
        &p1,
        &["-t", "orderd/demo/printer/p2/job", "-C", "1", "-W", "2"],
    );
    assert!(other.stdout.is_empty(), "p1 read p2's job: {other:?}");
    let p2_own = client(
        "mosquitto_sub",
        port,
        "p2",
        &p2,
        &["-t", "orderd/demo/printer/p2/job", "-C", "1", "-W", "5"],
    );
    assert_eq!(String::from_utf8_lossy(&p2_own.stdout).trim(), "job-for-p2");

    // A removed device's credentials stop working after the files are exported again.
    orderd(&["device", "remove", "p2"], &data);
    orderd(
        &["device", "export-acl", "--dir", acl_dir.to_str().unwrap()],
        &data,
    );
    let acl = std::fs::read_to_string(acl_dir.join("mosquitto.acl")).unwrap();
    assert!(!acl.contains("user p2"));
    let passwd = std::fs::read_to_string(acl_dir.join("mosquitto.passwd")).unwrap();
    assert!(passwd.lines().all(|l| !l.starts_with("p2:")));
}

/// Runs a Mosquitto client in the background (it blocks until its message or timeout).
/// Starts `mosquitto_sub` in the background and returns once the broker has acknowledged its
/// subscription (its debug output says so), so nothing published afterwards is missed. The
/// handle gives the messages it printed, one per line.
fn subscribe(
    port: u16,
    user: &str,
    password: &str,
    args: &[&str],
) -> std::thread::JoinHandle<String> {
    use std::io::BufRead as _;
    // Line-buffered: piped, mosquitto_sub would hold its debug lines until it exits.
    let mut child = Command::new("stdbuf")
        .args(["-oL", "mosquitto_sub"])
        .args(connection(port, user, password))
        .args(["-i", &format!("{user}-mosquitto_sub"), "-d"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let (subscribed, acked) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut messages = String::new();
        for line in stdout.lines().map_while(Result::ok) {
            if line.contains("received SUBACK") {
                let _ = subscribed.send(());
            } else if !line.starts_with("Client ") && !line.starts_with("Subscribed (") {
                messages.push_str(&line);
                messages.push('\n');
            }
        }
        let _ = child.wait();
        messages
    });
    acked
        .recv_timeout(Duration::from_secs(10))
        .expect("the broker acknowledged the subscription");
    reader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_works_through_an_external_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p1 = password_of(&orderd(
        &[
            "device",
            "add",
            "p1",
            "--kind",
            "printer",
            "--station",
            "grill",
        ],
        &data,
    ));
    let disp = password_of(&orderd(
        &[
            "device",
            "add",
            "disp",
            "--kind",
            "display",
            "--station",
            "grill",
        ],
        &data,
    ));
    // A stock Tasmota relay as the grill's buzzer, in its own dialect.
    let relay = password_of(&orderd(
        &[
            "device",
            "add",
            "bz-t",
            "--kind",
            "buzzer",
            "--station",
            "grill",
            "--flavour",
            "tasmota",
        ],
        &data,
    ));
    let acl_dir = dir.path().join("acl");
    orderd(
        &["device", "export-acl", "--dir", acl_dir.to_str().unwrap()],
        &data,
    );
    let (_broker, port) = start_mosquitto(dir.path(), &acl_dir);
    let data_dir = tempfile::TempDir::new_in(dir.path()).unwrap();
    std::fs::remove_dir(data_dir.path()).unwrap();
    std::fs::rename(&data, data_dir.path()).unwrap();
    let hub_file = acl_dir.join("hub-password");
    let s = common::TestServer::start_in(data_dir, |c| {
        c.mqtt.mode = "external".into();
        c.mqtt.external_port = port;
        c.mqtt.hub_password_file = hub_file;
    })
    .await;
    assert!(s.running.as_ref().unwrap().mqtt_addr.is_none());
    // Wait for the hub to connect (its retained status says online).
    let hub_pw = std::fs::read_to_string(acl_dir.join("hub-password")).unwrap();
    let status = client(
        "mosquitto_sub",
        port,
        "orderd-hub",
        hub_pw.trim(),
        &["-t", "orderd/demo/hub/status", "-C", "1", "-W", "10"],
    );
    assert_eq!(String::from_utf8_lossy(&status.stdout).trim(), "online");
    let job = subscribe(
        port,
        "p1",
        &p1,
        &[
            "-t",
            "orderd/demo/printer/p1/job",
            "-C",
            "1",
            "-W",
            "15",
            "-q",
            "1",
        ],
    );
    let ticket = subscribe(
        port,
        "disp",
        &disp,
        &[
            "-t",
            "orderd/demo/station/grill/ticket",
            "-C",
            "1",
            "-W",
            "15",
            "-q",
            "1",
        ],
    );
    let ring = subscribe(
        port,
        "bz-t",
        &relay,
        &["-t", "cmnd/bz-t/Backlog", "-C", "1", "-W", "15"],
    );
    let out = client(
        "mosquitto_pub",
        port,
        "bz-t",
        &relay,
        &["-q", "1", "-r", "-t", "tele/bz-t/LWT", "-m", "Online"],
    );
    assert!(out.status.success(), "{out:?}");
    s.wait_get("/api/v1/devices", &s.admin, |v| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "bz-t" && d["online"] == true)
    })
    .await;
    let (st, order) = s
        .order(
            &s.admin,
            serde_json::json!([{"item_id": "tave_kosi", "quantity": 1}]),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED, "{order}");
    let job = tokio::task::spawn_blocking(move || job.join().unwrap())
        .await
        .unwrap();
    let job: orderd_protocol::PrintJob = serde_json::from_str(&job).expect("a print job");
    assert!(
        job.data.windows(3).any(|w| w == b"001"),
        "the ticket shows the short number"
    );
    let ticket = tokio::task::spawn_blocking(move || ticket.join().unwrap())
        .await
        .unwrap();
    let ticket: orderd_protocol::TicketEvent = serde_json::from_str(&ticket).expect("a ticket");
    assert_eq!(ticket.ticket, order["id"].as_str().unwrap());
    let ring = tokio::task::spawn_blocking(move || ring.join().unwrap())
        .await
        .unwrap();
    assert!(
        ring.starts_with("Power1 ON; Delay 3; Power1 OFF"),
        "the relay rung through Mosquitto: {ring:?}"
    );
    // The printer's report through Mosquitto closes the job.
    let report = format!(
        "{{\"version\":1,\"job_id\":\"{}\",\"status\":\"printed\"}}",
        job.job_id
    );
    let out = client(
        "mosquitto_pub",
        port,
        "p1",
        &p1,
        &[
            "-q",
            "1",
            "-t",
            "orderd/demo/printer/p1/job/status",
            "-m",
            &report,
        ],
    );
    assert!(out.status.success(), "{out:?}");
    // The printed report reached the hub through Mosquitto.
    s.wait_get("/api/v1/print-jobs?state=printed", &s.admin, |v| {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == job.job_id.as_str())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_work_against_the_embedded_broker() {
    let s = common::TestServer::start().await;
    let port = s.mqtt().port();
    let pw = s.device("disp", "display", &["grill"], false).await;
    let (st, _) = s
        .order(
            &s.admin,
            serde_json::json!([{"item_id": "tave_kosi", "quantity": 1}]),
        )
        .await;
    assert_eq!(st, reqwest::StatusCode::CREATED);
    // Once the hub has handled the order, its board is published.
    s.wait_hub().await;
    // The retained board, read by Debian's mosquitto_sub.
    let out = tokio::task::spawn_blocking(move || {
        client(
            "mosquitto_sub",
            port,
            "disp",
            &pw,
            &[
                "-i",
                "disp",
                "-t",
                "orderd/demo/station/grill/board",
                "-C",
                "1",
                "-W",
                "5",
            ],
        )
    })
    .await
    .unwrap();
    // (The embedded broker wants the client id to be the username, so `-i disp`.)
    let board: orderd_protocol::Board =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("the board: {e}: {out:?}"));
    assert_eq!(board.tickets.len(), 1);
    // Wrong password: mosquitto_pub is refused.
    let out = tokio::task::spawn_blocking(move || {
        client(
            "mosquitto_pub",
            port,
            "disp",
            "wrong",
            &[
                "-i",
                "disp",
                "-t",
                "orderd/demo/device/disp/state",
                "-m",
                "ready",
            ],
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "{out:?}");
    s.stop().await;
}
