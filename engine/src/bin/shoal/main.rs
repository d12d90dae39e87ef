//! `shoal` — the engine binary. Today it carries the operator's key commands
//! (`shoal keys …`, docs/operations/key-management.md); the node itself (`shoal run`) arrives
//! with the engine issues.

mod keys;
mod logger;

use clap::{Parser, Subcommand};

/// shoal: a peer-to-peer cluster engine.
#[derive(Parser, Debug)]
#[command(name = "shoal", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Identity keys, TLS certificate and the trust store (pins) of a node's data directory.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

fn main() -> std::process::ExitCode {
    logger::install();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(command) => keys::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
