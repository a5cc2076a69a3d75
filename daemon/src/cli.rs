//! The command line: `run` (the default) and the operations commands (`check-config`,
//! `status`, `backup`, `restore`, `export`, `compact`, `user`, `device`, completions, man page).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The files of an installed box, in `--help` and the man pages.
pub const FILES: &str = "\
Files on an installed box:
  /etc/orderd/orderd.toml   the configuration; every command reads it when given no --config
  /etc/orderd/              token files the configuration names (root:orderd, mode 0640)
  /var/lib/orderd/          the store (orderd.redb, orderd.wal) and initial-admin-password,
                            owned by the user orderd; orderd.sock, the control socket of
                            `orderd status`, `backup` and `export` (root only)
  /usr/lib/systemd/system/orderd.service   the unit: systemctl status orderd,
                            journalctl -u orderd
Without /etc/orderd/orderd.toml (a checkout), the embedded defaults apply and the store is
./orderd-data.";

/// orderd — the order appliance of one restaurant.
#[derive(Debug, Parser)]
#[command(name = "orderd", version, about, after_long_help = FILES)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run`, also accepted without the word `run`.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    #[command(after_long_help = FILES)]
    Run(RunArgs),
    /// Check a configuration file and list every problem with its key.
    #[command(after_long_help = FILES)]
    CheckConfig(ConfigArg),
    /// Print the shipped, commented configuration.
    InitConfig,
    /// Manage kitchen devices and their MQTT credentials (while the daemon is stopped:
    /// `systemctl stop orderd`; use the admin page or /api/v1/devices while it runs).
    #[command(after_long_help = FILES)]
    Device {
        /// The configuration (for the data directory and site id).
        #[command(flatten)]
        config: ConfigArg,
        /// What to do.
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Ask the running daemon how it is.
    #[command(after_long_help = FILES)]
    Status(ConfigArg),
    /// Write a consistent snapshot of the running daemon's store to FILE (orders go on).
    #[command(after_long_help = FILES)]
    Backup {
        /// The configuration and data directory.
        #[command(flatten)]
        config: ConfigArg,
        /// Where to write the snapshot.
        file: PathBuf,
    },
    /// Export the orders (or the Z reports) of a range of business days as CSV (from the running daemon, or from
    /// the store when it is stopped).
    Export {
        /// The configuration and data directory.
        #[command(flatten)]
        config: ConfigArg,
        /// First business day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last business day, YYYY-MM-DD.
        #[arg(long)]
        to: String,
        /// Output format (csv).
        #[arg(long, default_value = "csv")]
        format: String,
        /// What to export: `orders`, or the days' `z-reports`.
        #[arg(long, default_value = "orders")]
        what: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Replace the store with a snapshot (while the daemon is stopped).
    #[command(after_long_help = FILES)]
    Restore {
        /// The configuration and data directory.
        #[command(flatten)]
        config: ConfigArg,
        /// The snapshot written by `orderd backup`.
        file: PathBuf,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell) to standard
    /// output.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to standard output, or write one page per command into DIR.
    Man {
        /// Write `orderd.1` and `orderd-COMMAND.1` here instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print table sizes of the store (while the daemon is stopped).
    #[command(after_long_help = FILES)]
    StoreStats(ConfigArg),
    /// Compact the store file, giving freed pages back to the disk (while the daemon is
    /// stopped).
    #[command(after_long_help = FILES)]
    Compact(ConfigArg),
    /// Manage staff accounts (while the daemon is stopped: `systemctl stop orderd`; use the
    /// admin page or /api/v1/users while it runs).
    #[command(after_long_help = FILES)]
    User {
        /// The configuration (for the data directory).
        #[command(flatten)]
        config: ConfigArg,
        /// What to do.
        #[command(subcommand)]
        action: UserAction,
    },
}

/// `--config`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML). Without it, /etc/orderd/orderd.toml when that exists (an
    /// installed box), else the embedded defaults.
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Data directory, overriding `store.data_dir`.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Options of `run`.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Configuration and data directory.
    #[command(flatten)]
    pub config: ConfigArg,
    /// HTTP listen address, overriding `http.listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<String>,
    /// Embedded MQTT broker address, overriding `mqtt.listen` (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub mqtt_listen: Option<String>,
}

/// `orderd device …`.
#[derive(Debug, Subcommand)]
pub enum DeviceAction {
    /// Register a device; its generated MQTT password is printed once.
    Add {
        /// Device id: its MQTT username and client id (`[a-z0-9_-]`, 1–32).
        id: String,
        /// printer, buzzer, display, bump_bar or home_assistant.
        #[arg(long)]
        kind: String,
        /// A station it serves (repeat for several).
        #[arg(long = "station")]
        stations: Vec<String>,
        /// A backup printer for its stations.
        #[arg(long)]
        backup: bool,
        /// json or postcard.
        #[arg(long, default_value = "json")]
        encoding: String,
        /// A printer on the LAN the box drives itself (raw ESC/POS): `IP` or `IP:PORT` (9100 by
        /// default). Needs the embedded broker.
        #[arg(long)]
        tcp: Option<String>,
        /// A buzzer's or light's dialect: orderd (its own topics), or a stock relay: tasmota,
        /// shelly_gen2 (Plus/Pro, RPC) or shelly_gen1. Set the relay's MQTT client id, user and
        /// topic to the device id.
        #[arg(long, default_value = "orderd")]
        flavour: String,
        /// A printer on USB the box drives itself (raw ESC/POS): its device, e.g. /dev/usb/lp0.
        /// The installed service needs the device allowed (docs/printers.md).
        #[arg(long)]
        usb: Option<String>,
        /// A printer's code page: pc437, pc850, pc858 (the default) or wpc1252.
        #[arg(long)]
        codepage: Option<String>,
        /// A printer's characters per line: 32, 42 or 48 (default: the paper width's).
        #[arg(long)]
        columns: Option<u8>,
    },
    /// Print a test slip on a printer (the box's address, its settings, ë ç €): asks the
    /// running daemon.
    TestPrint {
        /// Printer id.
        id: String,
    },
    /// List devices.
    List,
    /// Remove a device (its credentials stop working).
    Remove {
        /// Device id.
        id: String,
    },
    /// Write a Mosquitto password file and ACL file for an external broker.
    ExportAcl {
        /// Directory to write `mosquitto.passwd`, `mosquitto.acl` and `hub-password` into.
        #[arg(long)]
        dir: PathBuf,
        /// The account orderd itself uses on the broker.
        #[arg(long, default_value = "orderd-hub")]
        hub_user: String,
        /// The group the broker runs as: `mosquitto.passwd` and `mosquitto.acl` become 0640
        /// and owned by it, so the broker can read them. Default: `mosquitto` when that group
        /// exists; `none` keeps them 0600 for the invoking user.
        #[arg(long)]
        group: Option<String>,
    },
}

/// `orderd user …`.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user. The password is read from standard input with --password-stdin, or
    /// generated and printed once.
    Add {
        /// Login name.
        username: String,
        /// `staff` or `admin`.
        #[arg(long, default_value = "staff")]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (ends their sessions).
    Passwd {
        /// Login name.
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an admin's approval PIN (4-8 digits), which a manager enters on a waiter's device
    /// to approve discounts, comps, voids and refunds. Read from standard input with
    /// --pin-stdin, or generated and printed once.
    Pin {
        /// Login name (an admin).
        username: String,
        /// Read the PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// List users.
    List,
}
