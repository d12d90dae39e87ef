//! Keeps the committed fuzz seed corpus (`tests/fuzz/corpus/<target>/seed-*.bin`) in step with
//! the encoders: every seed is the encoding of a known message, so a format change that forgets
//! the seeds fails here. Regenerate with `SHOAL_WRITE_SEEDS=1 cargo test -p shoal-tests --test
//! fuzz_seeds`.

use std::path::PathBuf;

use bytes::Bytes;
use shoal_protocols::hyparview::{self, Priority};
use shoal_protocols::plumtree::{self, Gossip, IHave, MessageId, Tag};
use shoal_protocols::wire::{encode_frame, Wire, Writer};
use shoal_protocols::NodeName;

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("seed names are valid")
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
