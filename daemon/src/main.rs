//! The `orderd` binary: parse the command line and hand over to [`orderd::commands`].

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    orderd::commands::main(orderd::cli::Cli::parse())
}
