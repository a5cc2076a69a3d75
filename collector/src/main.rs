//! `orderd-collector`: parses the command line and runs it (see [`orderd_collector::cli`]).

fn main() -> std::process::ExitCode {
    orderd_collector::cli::main()
}
