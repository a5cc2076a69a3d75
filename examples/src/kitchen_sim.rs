//! Kitchen device simulators: a printer, a buzzer, a station display and a bump bar, each a
//! real MQTT client that speaks orderd's topics and payloads (`orderd-protocol`).
//!
//! ```text
//! kitchen-sim printer  --id p1   --password PW [--paper-out-after N] [--drop-after N]
//! kitchen-sim buzzer   --id bz1  --password PW
//! kitchen-sim display  --id d1   --password PW --station grill
//! kitchen-sim bump-bar --id bb1  --password PW --station grill   (type a ticket id, or "r ID")
//! ```
//!
//! The printer prints each job once per job id (it remembers the ids it printed), decodes the
//! ESC/POS bytes back to text, and reports `printed`; told to, it reports `paper_out` (and sets
//! its state) or drops off the network without a goodbye, so its last will says `offline`.

use std::collections::HashSet;
use std::io::BufRead as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use orderd_protocol::{
    Board, Bump, BumpAction, BuzzerSet, FORMAT_VERSION, JobState, JobStatus, PrintJob, TicketEvent,
    topics,
};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, NetworkOptions, Packet, QoS};

#[derive(Parser)]
#[command(about = "Simulated kitchen devices for orderd")]
struct Args {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1", global = true)]
    host: String,
    /// Broker port.
    #[arg(long, default_value_t = 1883, global = true)]
    port: u16,
    /// Site id.
    #[arg(long, default_value = "demo", global = true)]
    site: String,
    /// Device id (also the MQTT username and client id).
    #[arg(long, global = true, default_value = "")]
    id: String,
    /// The device's password, as printed by `orderd device add`.
    #[arg(long, global = true, default_value = "")]
    password: String,
    #[command(subcommand)]
    device: Device,
}

#[derive(Subcommand)]
enum Device {
    /// A ticket printer.
    Printer {
        /// Report `paper_out` for every job after this many printed.
        #[arg(long)]
        paper_out_after: Option<usize>,
        /// Drop off the network (no DISCONNECT) after this many printed.
        #[arg(long)]
        drop_after: Option<usize>,
    },
    /// A buzzer.
    Buzzer,
    /// A station display showing its retained board and live tickets.
    Display {
        /// Station.
        #[arg(long)]
        station: String,
    },
    /// A bump bar: type a ticket (order) id to bump it, `r ID` to recall, `a ID` to acknowledge
    /// its allergy note.
    BumpBar {
        /// Station.
        #[arg(long)]
        station: String,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        !args.id.is_empty() && !args.password.is_empty(),
        "--id and --password are required"
    );
    let avail = topics::device_availability(&args.site, &args.id);
    let mut opts = MqttOptions::new(&args.id, &args.host, args.port);
    opts.set_credentials(&args.id, &args.password)
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(1024 * 1024, 64 * 1024)
        .set_last_will(LastWill::new(&avail, "offline", QoS::AtLeastOnce, true));
    let (client, mut el) = AsyncClient::new(opts, 64);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    el.set_network_options(net);
    let site = args.site.clone();
    let id = args.id.clone();
    let subscribe = match &args.device {
        Device::Printer { .. } => vec![topics::printer_job(&site, &id)],
        Device::Buzzer => vec![topics::buzzer_set(&site, &id)],
        Device::Display { station } => vec![
            topics::station_board(&site, station),
            topics::station_ticket(&site, station),
        ],
        Device::BumpBar { station } => vec![topics::station_board(&site, station)],
    };
    if let Device::BumpBar { station } = &args.device {
        spawn_bump_input(client.clone(), topics::station_bump(&site, station));
    }
    let mut printed: HashSet<String> = HashSet::new();
    loop {
        let ev = match el.poll().await {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("connection: {e}; retrying in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                println!("[{id}] connected");
                // Subscribe first, then say it is online: the hub sends a display that comes
                // back what it missed, and a printer its open jobs, once it is online.
                for t in &subscribe {
                    client.subscribe(t, QoS::AtLeastOnce).await?;
                }
                client
                    .publish(&avail, QoS::AtLeastOnce, true, "online")
                    .await?;
                client
                    .publish(
                        topics::device_state(&site, &id),
                        QoS::AtLeastOnce,
                        true,
                        "ready",
                    )
                    .await?;
            }
            Event::Incoming(Packet::Publish(p)) => {
                let topic = p.topic.clone();
                match &args.device {
                    Device::Printer {
                        paper_out_after,
                        drop_after,
                    } => {
                        let job: PrintJob = serde_json::from_slice(&p.payload).context("job")?;
                        let status = if printed.contains(&job.job_id) {
                            println!(
                                "[{id}] job {} again: already printed, not printing twice",
                                job.job_id
                            );
                            JobState::Printed
                        } else if paper_out_after.is_some_and(|n| printed.len() >= n) {
                            println!("[{id}] PAPER OUT: job {} not printed", job.job_id);
                            client
                                .publish(
                                    topics::device_state(&site, &id),
                                    QoS::AtLeastOnce,
                                    true,
                                    "paper_out",
                                )
                                .await?;
                            JobState::PaperOut
                        } else {
                            println!(
                                "[{id}] ---- job {} ({:?}) ----\n{}",
                                job.job_id,
                                job.copy,
                                escpos_to_text(&job.data)
                            );
                            printed.insert(job.job_id.clone());
                            JobState::Printed
                        };
                        let report = JobStatus {
                            version: FORMAT_VERSION,
                            job_id: job.job_id,
                            status,
                        };
                        client
                            .publish(
                                topics::printer_job_status(&site, &id),
                                QoS::AtLeastOnce,
                                false,
                                serde_json::to_vec(&report)?,
                            )
                            .await?;
                        if drop_after.is_some_and(|n| printed.len() >= n) {
                            println!("[{id}] dropping off the network (no goodbye)");
                            return Ok(());
                        }
                    }
                    Device::Buzzer => {
                        let set: BuzzerSet =
                            serde_json::from_slice(&p.payload).context("buzzer")?;
                        println!("[{id}] BZZZ {:?} for {} ms", set.pattern, set.duration_ms);
                    }
                    Device::Display { .. } | Device::BumpBar { .. }
                        if topic.ends_with("/board") =>
                    {
                        let board: Board = serde_json::from_slice(&p.payload).context("board")?;
                        println!(
                            "[{id}] board {} ({} open):",
                            board.station,
                            board.tickets.len()
                        );
                        for t in &board.tickets {
                            let lines: Vec<String> = t
                                .lines
                                .iter()
                                .map(|l| format!("{}x {}", l.quantity, l.name))
                                .collect();
                            println!(
                                "  {} {:<10} {:?} {}  [{}]",
                                t.short,
                                t.status.as_str(),
                                t.order_type,
                                lines.join(", "),
                                t.ticket
                            );
                        }
                    }
                    Device::Display { .. } | Device::BumpBar { .. } => {
                        let t: TicketEvent =
                            serde_json::from_slice(&p.payload).context("ticket")?;
                        println!("[{id}] ticket {} #{} {:?}", t.short, t.seq, t.change);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Reads ticket ids from stdin and publishes bumps (`r ID` recalls, `a ID` acknowledges the
/// order's allergy note).
fn spawn_bump_input(client: AsyncClient, topic: String) {
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            let line = line.trim();
            let (action, ticket) = if let Some(id) = line.strip_prefix("r ") {
                (BumpAction::Recall, id.trim())
            } else if let Some(id) = line.strip_prefix("a ") {
                (BumpAction::AckAllergy, id.trim())
            } else {
                (BumpAction::Bump, line)
            };
            if ticket.is_empty() {
                continue;
            }
            let bump = Bump {
                version: FORMAT_VERSION,
                ticket: ticket.to_owned(),
                action,
            };
            let Ok(bytes) = serde_json::to_vec(&bump) else {
                continue;
            };
            if client
                .try_publish(&topic, QoS::AtLeastOnce, false, bytes)
                .is_err()
            {
                eprintln!("bump not sent");
            }
        }
    });
}

/// The printable text of ESC/POS bytes: control sequences dropped, PC850 letters decoded.
fn escpos_to_text(data: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            0x1b | 0x1d => {
                // ESC/GS + command byte + (for the ones the renderer uses) one argument;
                // GS V takes two.
                let skip = if data[i] == 0x1d && data.get(i + 1) == Some(&b'V') {
                    4
                } else if data.get(i + 1) == Some(&b'@') {
                    2
                } else {
                    3
                };
                i += skip;
                continue;
            }
            b'\n' => out.push('\n'),
            0x89 => out.push('ë'),
            0x87 => out.push('ç'),
            0x80 => out.push('Ç'),
            0xd3 => out.push('Ë'),
            b if b.is_ascii_graphic() || b == b' ' => out.push(char::from(b)),
            _ => {}
        }
        i += 1;
    }
    out
}
