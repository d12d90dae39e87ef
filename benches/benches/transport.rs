//! Per-message and per-datagram costs of the transport's pure pieces: MESSAGE framing (encode
//! one 64-byte frame, decode a buffer of 1,000 frames with `FrameReader`) and connection-ID
//! routing (mint a CID, read its shard byte, and the `HashMap<[u8; 16], u32>` lookup the
//! endpoint does for every received datagram, on a table of 10,000 connections). The
//! kernel-steering decision has its own bench (`steering`).
//!
//! Run: `cargo bench -p shoal-benches --bench transport -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shoal_transport::cid::{self, CID_LEN};
use shoal_transport::frame::{self, Frame, FrameReader};

/// Payload of the framing benches: the 64-byte message of the `messages` workload.
const PAYLOAD_BYTES: usize = 64;
/// Frames in the decoded buffer.
const FRAMES: usize = 1_000;
/// Connections in the routing table (one shard's worth at a large cluster).
const CONNECTIONS: usize = 10_000;

fn framing(c: &mut Criterion) {
    let payload = [0xA5u8; PAYLOAD_BYTES];
    let mut group = c.benchmark_group("frame");

    group.throughput(Throughput::Elements(1));
    let mut out = BytesMut::with_capacity(1 << 16);
    group.bench_function("encode_message_64B", |b| {
        b.iter(|| {
            // Reuse the buffer as the send queue does; clear before it needs to grow.
            if out.capacity() - out.len() < frame::message_frame_bytes(PAYLOAD_BYTES) {
                out.clear();
            }
            frame::encode_message(black_box(&payload), &mut out);
        })
    });

    let mut wire = BytesMut::new();
    for _ in 0..FRAMES {
        frame::encode_message(&payload, &mut wire);
    }
    let wire = wire.freeze();
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("decode_1000x64B", |b| {
        b.iter_batched_ref(
            || FrameReader::new(1 << 20),
            |reader| {
                reader.push(black_box(&wire));
                let mut frames = 0;
                while let Some(frame) = reader.next_frame().expect("valid frames") {
                    debug_assert!(matches!(frame, Frame::Message(_)));
                    black_box(frame);
                    frames += 1;
                }
                assert_eq!(frames, FRAMES);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("cid");
    group.throughput(Throughput::Elements(1));
    group.bench_function("new_cid", |b| b.iter(|| cid::new_cid(black_box(3))));

    let sample = cid::new_cid(5);
    group.bench_function("shard_of", |b| {
        b.iter(|| cid::shard_of(black_box(&sample), black_box(16)))
    });

    // The endpoint's table: every issued CID of every connection → slot. Look up CIDs that are
    // there (every datagram of a live connection) in a scattered order, and one that is not
    // (a stranger's Initial).
    let mut table: HashMap<[u8; CID_LEN], u32> = HashMap::with_capacity(CONNECTIONS);
    let mut keys = Vec::with_capacity(CONNECTIONS);
    for slot in 0..CONNECTIONS {
        let cid = cid::new_cid(0);
        table.insert(cid, u32::try_from(slot).expect("10,000 fits u32"));
        keys.push(cid);
    }
    let mut next = 0usize;
    group.bench_function("lookup_hit_10k", |b| {
        b.iter(|| {
            // A stride coprime with the table size visits every key in a cache-unfriendly order.
            next = (next + 7_919) % CONNECTIONS;
            table.get(black_box(&keys[next])).copied()
        })
    });
    let stranger = cid::new_cid(0);
    group
        .bench_function("lookup_miss_10k", |b| b.iter(|| table.get(black_box(&stranger)).copied()));
    group.finish();
}

criterion_group!(benches, framing, routing);
criterion_main!(benches);
