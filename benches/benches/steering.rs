//! Cost of the shard-steering decision `shoal_transport::sys::steer` (the pure twin of the
//! kernel's classic-BPF program), which the shard core runs on every received datagram to spot
//! ones whose connection ID belongs to another shard.
//!
//! Run: `cargo bench -p shoal-benches --bench steering -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal_transport::sys::steer;

/// A 1,200-byte long-header packet (Initial-sized): flags, version 1, 8-byte DCID.
fn long_header() -> Vec<u8> {
    let mut d = vec![0xC3, 0, 0, 0, 1, 8, 0x2A, 1, 2, 3, 4, 5, 6, 7];
    d.resize(1200, 0xA5);
    d
}

/// A 1,200-byte short-header packet with an 8-byte DCID.
fn short_header() -> Vec<u8> {
    let mut d = vec![0x41, 0x2B, 1, 2, 3, 4, 5, 6, 7];
    d.resize(1200, 0xA5);
    d
}

fn steering(c: &mut Criterion) {
    let mut group = c.benchmark_group("steer");
    group.throughput(Throughput::Elements(1));
    for (name, datagram) in [("long_header", long_header()), ("short_header", short_header())] {
        for shards in [2, 16] {
            group.bench_function(format!("{name}/{shards}_shards"), |b| {
                b.iter(|| steer(black_box(&datagram), black_box(shards)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, steering);
criterion_main!(benches);
