//! `shoal-loadgen sim`.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use shoal_protocols::sim::{self, Latency, Options, Progress, Scenario, Senders};

/// Options of `shoal-loadgen sim`. Defaults are those of docs/SIMULATION.md.
#[derive(Args, Debug)]
pub(crate) struct SimArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Scenario: stable, crash, churn, partition, registry, overlay.
    #[arg(long, default_value = "crash")]
    scenario: String,
    /// Seed; the same seed reproduces the same report byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Membership cycles of stabilisation before measuring.
    #[arg(long)]
    cycles: Option<u64>,
    /// Measured broadcasts (stable).
    #[arg(long)]
    broadcasts: Option<u64>,
    /// Broadcast senders: single or random (stable).
    #[arg(long, default_value = "single")]
    senders: String,
    /// Link latency: const:MS or uniform:A-B (milliseconds).
    #[arg(long)]
    latency: Option<String>,
    /// Fraction of nodes crashed at once (crash).
    #[arg(long)]
    fail_fraction: Option<f64>,
    /// Fraction of live nodes killed per cycle (churn, registry).
    #[arg(long)]
    churn_rate: Option<f64>,
    /// Cycles of churn.
    #[arg(long)]
    churn_cycles: Option<u64>,
    /// Broadcasts right after the crash (crash).
    #[arg(long)]
    crash_broadcasts: Option<u64>,
    /// Services registered (partition, registry).
    #[arg(long)]
    services: Option<u64>,
    /// Cycles the partition lasts (partition).
    #[arg(long)]
    partition_cycles: Option<u64>,
    /// Probability that a message needs a retransmission.
    #[arg(long)]
    loss: Option<f64>,
    /// Link failure detection delay, in ms.
    #[arg(long)]
    detect_ms: Option<u64>,
    /// Gap between measured broadcasts, in ms (stable).
    #[arg(long)]
    broadcast_interval_ms: Option<u64>,
    /// Unmeasured broadcasts that let Plumtree build its tree (stable).
    #[arg(long)]
    warmup_broadcasts: Option<u64>,
    /// Plumtree IHAVE batching interval, in ms.
    #[arg(long)]
    ihave_batch_interval_ms: Option<u64>,
    /// Plumtree tree-optimisation threshold, in hops.
    #[arg(long)]
    optimization_threshold: Option<u16>,
    /// HyParView active view size.
    #[arg(long)]
    active_size: Option<usize>,
    /// HyParView passive view size.
    #[arg(long)]
    passive_size: Option<usize>,
    /// No progress bar on stderr.
    #[arg(long)]
    quiet: bool,
}

pub(crate) fn run(args: SimArgs) -> anyhow::Result<()> {
    let options = options(&args)?;
    let started = Instant::now();
    let mut last_draw = Instant::now();
    let quiet = args.quiet;
    let mut progress = |p: Progress| {
        if quiet || last_draw.elapsed().as_millis() < 200 && p.done != p.total {
            return;
        }
        last_draw = Instant::now();
        let width = 30usize;
        let filled =
            (p.done.min(p.total) as usize * width).checked_div(p.total as usize).unwrap_or(0);
        eprint!(
            "\r{:<12} [{}{}] {}/{}   ",
            p.phase,
            "#".repeat(filled),
            "-".repeat(width - filled),
            p.done,
            p.total
        );
        let _ = std::io::stderr().flush();
    };
    let (mut report, network) = sim::scenario::run_keeping_network(&options, &mut progress);
    // The process exits after printing the report: the operating system takes the memory
    // back at once, where dropping the cluster frees it one allocation at a time (~0.3 s at
    // 100,000 nodes, counted in `wall_s` before).
    std::mem::forget(network);
    if !quiet {
        eprintln!();
    }
    let wall_s = started.elapsed().as_secs_f64();
    report.wall_s = Some(wall_s);
    report.peak_rss_bytes = crate::rss::peak_rss_bytes();
    report.bytes_per_node = report.peak_rss_bytes.map(|b| b / options.nodes as u64);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
        // Host measurements vary between runs, so they stay off stdout (which a seed must
        // reproduce byte for byte).
        eprintln!(
            "host: wall_s={wall_s:.2} peak_rss_bytes={} bytes_per_node={}",
            report.peak_rss_bytes.map_or("n/a".into(), |b| b.to_string()),
            report.bytes_per_node.map_or("n/a".into(), |b| b.to_string()),
        );
    }
    Ok(())
}

fn options(args: &SimArgs) -> anyhow::Result<Options> {
    let scenario = Scenario::parse(&args.scenario).map_err(anyhow::Error::msg)?;
    if args.nodes < 2 {
        bail!("--nodes must be at least 2 (got {})", args.nodes);
    }
    let mut o = Options::new(scenario, args.nodes, args.seed);
    o.senders = match args.senders.as_str() {
        "single" => Senders::Single,
        "random" => Senders::Random,
        other => bail!("--senders must be single or random (got {other:?})"),
    };
    if let Some(l) = &args.latency {
        o.latency = Latency::parse(l).map_err(anyhow::Error::msg).context("--latency")?;
    }
    let fraction = |name: &str, v: f64| -> anyhow::Result<f64> {
        if (0.0..1.0).contains(&v) {
            Ok(v)
        } else {
            bail!("{name} must be in [0, 1) (got {v})")
        }
    };
    if let Some(v) = args.fail_fraction {
        o.fail_fraction = fraction("--fail-fraction", v)?;
    }
    if let Some(v) = args.churn_rate {
        o.churn_rate = fraction("--churn-rate", v)?;
    }
    if let Some(v) = args.loss {
        o.loss = fraction("--loss", v)?;
    }
    macro_rules! set {
        ($field:ident, $($path:ident).+) => {
            if let Some(v) = args.$field {
                o.$($path).+ = v;
            }
        };
    }
    set!(cycles, cycles);
    set!(broadcasts, broadcasts);
    set!(churn_cycles, churn_cycles);
    set!(crash_broadcasts, crash_broadcasts);
    set!(services, services);
    set!(partition_cycles, partition_cycles);
    set!(detect_ms, link_failure_detect_ms);
    set!(broadcast_interval_ms, broadcast_interval_ms);
    set!(warmup_broadcasts, warmup_broadcasts);
    set!(ihave_batch_interval_ms, node.plumtree.ihave_batch_interval_ms);
    set!(optimization_threshold, node.plumtree.optimization_threshold);
    set!(active_size, node.hyparview.active_size);
    set!(passive_size, node.hyparview.passive_size);
    o.node.validate().map_err(|e| anyhow::anyhow!("invalid protocol option: {e}"))?;
    Ok(o)
}
