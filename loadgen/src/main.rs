//! `shoal-loadgen`: benchmarks of shoal.
//!
//! `sim` runs the deterministic cluster simulator (docs/SIMULATION.md). Transport workloads
//! arrive with the transport issue.

mod rss;
mod sim;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "shoal-loadgen", version, about = "Benchmarks and simulations of shoal clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a deterministic cluster simulation (same seed, same output, byte for byte).
    Sim(sim::SimArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => sim::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes); no backtrace for a usage error.
            eprintln!("shoal-loadgen: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
