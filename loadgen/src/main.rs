//! `shoal-loadgen`: benchmarks of shoal.
//!
//! `sim` runs the deterministic cluster simulator (docs/SIMULATION.md); `transport` measures
//! the QUIC transport between two processes on loopback (docs/PERFORMANCE.md, "Transport").

mod allocator;
mod host;
mod rss;
mod sim;
mod sim_reexec;
mod transport;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "shoal-loadgen", version, about = "Benchmarks and simulations of shoal clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run a deterministic cluster simulation (same seed, same output, byte for byte).
    Sim(sim::SimArgs),
    /// Measure the transport on loopback: handshake, messages, rtt or bulk.
    #[command(long_about = transport::LONG_ABOUT)]
    Transport(transport::TransportArgs),
    /// The server process of `transport` (started by it; not for direct use).
    #[command(hide = true)]
    TransportServer(transport::server::ServerArgs),
    /// The in-memory idle-connection baseline, in a process of its own so that its RSS
    /// growth is not hidden by a heap other phases already grew (started by `transport`).
    #[command(hide = true)]
    TransportBaselineIdle(transport::BaselineIdleArgs),
}

/// mimalloc for `sim` (chosen at the first allocation: see `allocator.rs`), the system
/// allocator otherwise.
#[global_allocator]
static ALLOCATOR: allocator::Selected = allocator::Selected;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => {
            sim_reexec::reexec_for_sim();
            sim::run(args)
        }
        Command::Transport(args) => transport::run(args),
        Command::TransportServer(args) => transport::server::run(args),
        Command::TransportBaselineIdle(args) => transport::run_baseline_idle(&args),
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
