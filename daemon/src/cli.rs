//! The command line: `run` (the default), `check-config`, `init-config` and `user`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// orderd — the order appliance of one restaurant.
#[derive(Debug, Parser)]
#[command(name = "orderd", version, about)]
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
    Run(RunArgs),
    /// Check a configuration file and list every problem with its key.
    CheckConfig(ConfigArg),
    /// Print the shipped, commented configuration.
    InitConfig,
    /// Print table sizes of the store (while the daemon is stopped).
    StoreStats(ConfigArg),
    /// Manage staff accounts (while the daemon is stopped; use /api/v1/users while it runs).
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
    /// Configuration file (TOML). Without it, the embedded defaults are used.
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
    /// List users.
    List,
}
