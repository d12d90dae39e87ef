//! Encode and decode cost of the hot wire messages: GOSSIP (64 B and 1 KiB payloads), an IHAVE
//! batch of 64 ids and a SHUFFLE of 8 u64 peers.
//!
//! Run: `cargo bench -p shoal-benches --bench wire -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shoal_protocols::hyparview;
use shoal_protocols::plumtree::{self, Gossip, IHave, MessageId, Tag};
use shoal_protocols::wire::{decode_frame, encode_frame, Limits, Wire};

fn gossip(payload_len: usize) -> plumtree::Message {
    plumtree::Message::Gossip(Gossip {
        id: MessageId(0x0123_4567_89AB_CDEF_0011_2233_4455_6677),
        round: 3,
        tag: Tag::APPLICATION_MIN,
        payload: Bytes::from(vec![0xA5; payload_len]),
    })
}

fn ihave(len: u16) -> plumtree::Message {
    plumtree::Message::IHave(
        (0..len).map(|i| IHave { id: MessageId(u128::from(i) << 64 | 99), round: i }).collect(),
    )
}

fn shuffle(len: u64) -> hyparview::Message<u64> {
    hyparview::Message::Shuffle { origin: 1, ttl: 6, peers: (1..=len).collect() }
}

fn bench_pair<M: Wire>(c: &mut Criterion, name: &str, msg: &M) {
    let limits = Limits::default();
    let frame = encode_frame(msg);
    let mut group = c.benchmark_group(format!("wire/{name}"));
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("encode", |b| b.iter(|| encode_frame(black_box(msg))));
    group.bench_function("decode", |b| {
        b.iter(|| decode_frame::<M>(black_box(&frame), &limits).expect("valid frame"))
    });
    group.finish();
}

fn wire(c: &mut Criterion) {
    bench_pair(c, "gossip_64B", &gossip(64));
    bench_pair(c, "gossip_1KiB", &gossip(1024));
    bench_pair(c, "ihave_64", &ihave(64));
    bench_pair(c, "shuffle_8_u64", &shuffle(8));
}

criterion_group!(benches, wire);
criterion_main!(benches);
