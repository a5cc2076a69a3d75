//! An ESC/POS printer to try orderd with at home and in tests: it listens on a TCP port (9100 by
//! default, as a real one), or with `--device` stands behind a device path as a USB printer
//! does, answers `DLE EOT` status queries and prints each job it receives as readable text on
//! standard output. Type a command and Enter to change its state:
//! `paper` (out of paper), `cover` (cover open), `ready`, `drop` (drop the connection in the
//! middle of the next job), `stall` / `go`.
//!
//!   printer-emu [--listen 127.0.0.1:9100 | --device]

use std::time::Duration;

use clap::Parser;
use orderd_plugins::escpos::status::PrinterState;
use orderd_plugins::printer_emu::Emulator;

#[derive(Parser)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: String,
    /// Behind a device path instead (a pseudo-terminal, printed at start), as a USB printer.
    #[arg(long)]
    device: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let emu = if args.device {
        Emulator::start_device()?
    } else {
        Emulator::start_on(&args.listen).await?
    };
    match emu.path() {
        Some(path) => println!(
            "printer-emu at {} (paper, cover, ready, stall, go)",
            path.display()
        ),
        None => println!(
            "printer-emu listening on {} (paper, cover, ready, drop, stall, go)",
            emu.addr()
        ),
    }
    let shown = emu.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let printed = shown.printed();
            for job in &printed[n..] {
                println!("----- job {} -----\n{job}", n + 1);
                n += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Commands on standard input, read on a thread of their own.
    let ctl = emu.clone();
    let input = std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            match line.trim() {
                "paper" => ctl.set_state(PrinterState::PaperOut),
                "cover" => ctl.set_state(PrinterState::CoverOpen),
                "ready" => ctl.set_state(PrinterState::Ready),
                "drop" => ctl.drop_next_job_midway(),
                "stall" => ctl.stall(true),
                "go" => ctl.stall(false),
                "" => {}
                other => println!("unknown command {other:?}"),
            }
        }
    });
    // Until standard input closes (or ctrl-c).
    while !input.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
