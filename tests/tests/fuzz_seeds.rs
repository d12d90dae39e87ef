//! Keeps the committed fuzz seed corpus (`tests/fuzz/corpus/<target>/seed-*.bin`) in step with
//! the encoders: every seed is the encoding of a known message, so a format change that forgets
//! the seeds fails here. Regenerate with `SHOAL_WRITE_SEEDS=1 cargo test -p shoal-tests --test
//! fuzz_seeds`.

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use shoal_protocols::hlc::Hlc;
use shoal_protocols::hyparview::{self, Priority};
use shoal_protocols::plumtree::{self, Gossip, IHave, MessageId, Tag};
use shoal_protocols::registry::{
    self, Delta, EntryUpdate, OwnerDigest, OwnerState, OwnerStatus, OwnerSync, UnregisterReason,
    Value,
};
use shoal_protocols::wire::{encode_frame, Wire, Writer};
use shoal_protocols::{node, NodeName};
use shoal_transport::auth::Mode;
use shoal_transport::frame::{encode_hello, encode_message, encode_welcome, AuthFields};

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("seed names are valid")
}

/// A registration and a tombstone, the two kinds of registry entry.
fn entries() -> Vec<EntryUpdate> {
    vec![
        EntryUpdate {
            name: "web".to_owned(),
            reg_id: 1,
            value: Value::Registered {
                meta: Bytes::from_static(b"port=8080"),
                stamp: Hlc::new(1_700_000_000_000, 0),
            },
        },
        EntryUpdate {
            name: "db.primary".to_owned(),
            reg_id: 2,
            value: Value::Tombstone {
                stamp: Hlc::new(1_700_000_000_001, 3),
                reason: UnregisterReason::HandleDropped,
            },
        },
    ]
}

fn digest(state: OwnerState) -> OwnerDigest {
    OwnerDigest {
        incarnation: 1_700_000_000_000,
        state,
        entries_max_stamp: Hlc::new(1_700_000_000_001, 3),
        entries_count: 2,
        entries_hash: 0x5EED,
    }
}

/// Registry direct messages (frames) and deltas (Plumtree payloads, no version byte).
fn registry_seeds() -> Vec<(&'static str, &'static str, Bytes)> {
    use registry::Message as R;
    vec![
        (
            "registry_message",
            "seed-digest-u32.bin",
            encode_frame(&R::<u32>::Digest {
                range_start: Some(1),
                range_end: None,
                owners: vec![(1, digest(OwnerState::Alive)), (2, digest(OwnerState::Suspect))],
            }),
        ),
        (
            "registry_message",
            "seed-digest-name.bin",
            encode_frame(&R::Digest {
                range_start: None,
                range_end: Some(name("z@host")),
                owners: vec![(name("a@host"), digest(OwnerState::Dead))],
            }),
        ),
        (
            "registry_message",
            "seed-sync-u32.bin",
            encode_frame(&R::<u32>::Sync {
                owners: vec![OwnerSync {
                    owner: 7,
                    status: OwnerStatus::alive(1_700_000_000_000),
                    entries: entries(),
                }],
            }),
        ),
        (
            "registry_message",
            "seed-sync-request-name.bin",
            encode_frame(&R::SyncRequest { owners: vec![name("a@b"), name("node-1@10.0.0.1")] }),
        ),
        (
            "registry_message",
            "seed-delta-update-u32.bin",
            Delta::<u32>::Update { owner: 7, incarnation: 1_700_000_000_000, entries: entries() }
                .encode(),
        ),
        (
            "registry_message",
            "seed-delta-suspect-name.bin",
            Delta::Suspect { node: name("node-1@10.0.0.1"), incarnation: 1_700_000_000_000 }
                .encode(),
        ),
        (
            "registry_message",
            "seed-delta-alive-u32.bin",
            Delta::<u32>::Alive { node: 7, incarnation: 1_700_000_000_002, entries: entries() }
                .encode(),
        ),
    ]
}

/// Node envelope frames: one per protocol, plus a GOSSIP carrying a registry delta.
fn node_seeds() -> Vec<(&'static str, &'static str, Bytes)> {
    use node::Message as N;
    let gossip = |tag: Tag, payload: Bytes| {
        plumtree::Message::Gossip(Gossip {
            id: MessageId(0x0123_4567_89AB_CDEF),
            round: 1,
            tag,
            payload,
        })
    };
    let delta = Delta::<u32>::Update { owner: 7, incarnation: 1, entries: entries() }.encode();
    vec![
        (
            "node_message",
            "seed-hyparview-shuffle-u32.bin",
            encode_frame(&N::<u32>::Hyparview(hyparview::Message::Shuffle {
                origin: 1,
                ttl: 4,
                peers: vec![2, 3],
            })),
        ),
        (
            "node_message",
            "seed-hyparview-forward-join-name.bin",
            encode_frame(&N::Hyparview(hyparview::Message::ForwardJoin {
                peer: name("node-1@10.0.0.1"),
                ttl: 6,
            })),
        ),
        (
            "node_message",
            "seed-plumtree-gossip.bin",
            encode_frame(&N::<u32>::Plumtree(gossip(
                Tag::APPLICATION_MIN,
                Bytes::from_static(b"hello, shoal"),
            ))),
        ),
        (
            "node_message",
            "seed-plumtree-gossip-registry-delta.bin",
            encode_frame(&N::<u32>::Plumtree(gossip(Tag::REGISTRY, delta))),
        ),
        (
            "node_message",
            "seed-plumtree-prune.bin",
            encode_frame(&N::<u32>::Plumtree(plumtree::Message::Prune)),
        ),
        (
            "node_message",
            "seed-registry-sync-u32.bin",
            encode_frame(&N::<u32>::Registry(registry::Message::Sync {
                owners: vec![OwnerSync {
                    owner: 7,
                    status: OwnerStatus { incarnation: 2, state: OwnerState::Suspect },
                    entries: entries(),
                }],
            })),
        ),
        (
            "node_message",
            "seed-registry-digest-name.bin",
            encode_frame(&N::Registry(registry::Message::Digest {
                range_start: Some(name("a@host")),
                range_end: Some(name("m@host")),
                owners: vec![(name("b@host"), digest(OwnerState::Alive))],
            })),
        ),
    ]
}

/// A signed proof and a cookie-only one (zero key and signature), the two modes of `auth`.
fn auth(signed: bool) -> AuthFields {
    AuthFields {
        mode: if signed { Mode::Signed } else { Mode::CookieOnly } as u8,
        identity_key: if signed { [0x11; 32] } else { [0; 32] },
        timestamp_ms: 1_700_000_000_000,
        signature: if signed { [0x22; 64] } else { [0; 64] },
        cookie_mac: [0x33; 32],
    }
}

/// The bytes `encode` appends to an empty buffer.
fn encoded(encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::new();
    encode(&mut out);
    out.freeze()
}

/// Transport frames as sent on a stream: one of each kind, and a connection's opening (HELLO,
/// WELCOME, then messages) back to back.
fn transport_seeds() -> Vec<(&'static str, &'static str, Bytes)> {
    let (dialer, acceptor) = (name("node-1@10.0.0.1"), name("node-2@10.0.0.2"));
    let hello = |out: &mut BytesMut| {
        encode_hello(&dialer, &acceptor, 0x0123_4567_89AB_CDEF, &auth(true), out);
    };
    let welcome = |out: &mut BytesMut| {
        encode_welcome(&acceptor, 0xFEDC_BA98_7654_3210, &auth(false), out);
    };
    // A node envelope frame: what MESSAGE carries on a control stream.
    let message = encode_frame(&node::Message::<NodeName>::Hyparview(hyparview::Message::Join));
    vec![
        ("transport_frame", "seed-hello.bin", encoded(hello)),
        ("transport_frame", "seed-welcome.bin", encoded(welcome)),
        ("transport_frame", "seed-message.bin", encoded(|out| encode_message(&message, out))),
        (
            "transport_frame",
            "seed-stream.bin",
            encoded(|out| {
                hello(out);
                welcome(out);
                encode_message(&message, out);
                encode_message(b"", out);
                encode_message(b"hello, shoal", out);
            }),
        ),
    ]
}

fn seeds() -> Vec<(&'static str, &'static str, Bytes)> {
    use hyparview::Message as H;
    use plumtree::Message as T;
    let id = MessageId(0x0123_4567_89AB_CDEF_0011_2233_4455_6677);
    let name_bytes = |n: &NodeName| {
        let mut w = Writer::new();
        n.encode(&mut w);
        w.finish()
    };
    vec![
        ("hyparview_message", "seed-join.bin", encode_frame(&H::<u32>::Join)),
        (
            "hyparview_message",
            "seed-forward-join-u32.bin",
            encode_frame(&H::<u32>::ForwardJoin { peer: 42, ttl: 6 }),
        ),
        (
            "hyparview_message",
            "seed-forward-join-name.bin",
            encode_frame(&H::ForwardJoin { peer: name("node-1@10.0.0.1"), ttl: 6 }),
        ),
        (
            "hyparview_message",
            "seed-neighbor-high.bin",
            encode_frame(&H::<u32>::Neighbor { priority: Priority::High }),
        ),
        (
            "hyparview_message",
            "seed-neighbor-reply.bin",
            encode_frame(&H::<u32>::NeighborReply { accepted: true }),
        ),
        (
            "hyparview_message",
            "seed-disconnect-leaving.bin",
            encode_frame(&H::<u32>::Disconnect { leaving: true }),
        ),
        (
            "hyparview_message",
            "seed-shuffle-u32.bin",
            encode_frame(&H::<u32>::Shuffle { origin: 1, ttl: 4, peers: vec![1, 2, 3, 4] }),
        ),
        (
            "hyparview_message",
            "seed-shuffle-reply-name.bin",
            encode_frame(&H::ShuffleReply {
                peers: vec![name("a@b"), name("beta_2@host.example")],
            }),
        ),
        (
            "plumtree_message",
            "seed-gossip.bin",
            encode_frame(&T::Gossip(Gossip {
                id,
                round: 1,
                tag: Tag::APPLICATION_MIN,
                payload: Bytes::from_static(b"hello, shoal"),
            })),
        ),
        (
            "plumtree_message",
            "seed-ihave.bin",
            encode_frame(&T::IHave(vec![
                IHave { id, round: 2 },
                IHave { id: MessageId(7), round: 3 },
            ])),
        ),
        (
            "plumtree_message",
            "seed-graft-some.bin",
            encode_frame(&T::Graft { id: Some(id), round: 2 }),
        ),
        ("plumtree_message", "seed-graft-none.bin", encode_frame(&T::Graft { id: None, round: 0 })),
        ("plumtree_message", "seed-prune.bin", encode_frame(&T::Prune)),
        ("node_name", "seed-short.bin", name_bytes(&name("a@b"))),
        ("node_name", "seed-ip.bin", name_bytes(&name("node-1@10.0.0.1"))),
        ("node_name", "seed-text.bin", Bytes::from_static(b"alpha_1@host-2.example.org")),
    ]
    .into_iter()
    .chain(registry_seeds())
    .chain(node_seeds())
    .chain(transport_seeds())
    .collect()
}

#[test]
fn committed_seeds_match_the_encoders() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus");
    let write = std::env::var_os("SHOAL_WRITE_SEEDS").is_some();
    for (target, file, bytes) in seeds() {
        let path = corpus.join(target).join(file);
        if write {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write seed");
        }
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (regenerate with SHOAL_WRITE_SEEDS=1)", path.display())
        });
        assert_eq!(
            on_disk,
            &bytes[..],
            "{} is stale (regenerate with SHOAL_WRITE_SEEDS=1)",
            path.display()
        );
    }
}
