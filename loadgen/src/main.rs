//! `shoal-loadgen`: cluster simulations and benchmarks.

fn main() -> anyhow::Result<()> {
    Ok(())
}
