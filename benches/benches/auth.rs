//! What authentication costs per connection, piece by piece: the dialler's proof (transcript,
//! Ed25519 signature, cookie HMAC), the acceptor's check of it against a pin (strict Ed25519
//! verification included), and a TOFU pin written to disk on first contact (an fsynced file
//! in the system's temp directory). The end-to-end cost is the `auth_ratio` of
//! `shoal-loadgen transport --workload handshake`.
//!
//! Run: `cargo bench -p shoal-benches --bench auth -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal_protocols::NodeName;
use shoal_transport::auth::{Auth, AuthConfig, Binding, Identity, TrustStore};

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("valid")
}

/// A fresh identity and an empty trust store, in memory.
fn memory_auth() -> Auth {
    Auth::load(&AuthConfig { auth_key_dir: None, ..AuthConfig::default() }).expect("valid")
}

fn proofs(c: &mut Criterion) {
    let binding = Binding {
        dialer_cid: [1; 16],
        acceptor_cid: [2; 16],
        dialer_tls_key: [3; 32],
        acceptor_tls_key: [4; 32],
    };
    let (dialer, acceptor) = (memory_auth(), memory_auth());
    let (a, b) = (name("dialer@bench"), name("acceptor@bench"));
    let mut scratch = Vec::new();
    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Elements(1));
    group.bench_function("prove_hello", |bench| {
        bench.iter(|| dialer.prove_hello(black_box(&binding), &a, &b, 1, &mut scratch))
    });
    let hello = dialer.prove_hello(&binding, &a, &b, 1, &mut scratch);
    // The first check pins the dialler (TOFU, in memory); the measured ones compare with it.
    acceptor.check_hello(&binding, &b, &a, &b, 1, &hello, &mut scratch).expect("valid proof");
    group.bench_function("check_hello_pinned", |bench| {
        bench.iter(|| {
            acceptor
                .check_hello(black_box(&binding), &b, &a, &b, 1, &hello, &mut scratch)
                .expect("valid proof")
        })
    });
    group.finish();
}

fn pins(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("shoal-bench-pins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (store, _) = TrustStore::open(&dir).expect("trust store");
    let store = Arc::new(store);
    let key = Identity::generate().public_key();
    let mut next = 0u64;
    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("pin_first_contact_fsync", |bench| {
        bench.iter(|| {
            next += 1;
            let peer = name(&format!("peer-{next}@bench"));
            store.pin_if_new(&peer, &key).expect("new name")
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, proofs, pins);
criterion_main!(benches);
