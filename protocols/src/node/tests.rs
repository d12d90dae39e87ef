//! Unit tests of the composed [`Node`]: routing between HyParView, Plumtree and the registry.
//!
//! Outputs are compared exactly, except the delays of the timers whose first expiry is a
//! random phase (HyParView's first shuffle, every registry anti-entropy round): those are
//! drawn from the node's seeded Rng, so their value depends on every earlier draw and pinning
//! it would make the tests break on any unrelated change to the order of draws. [`phases`]
//! checks each such delay against its documented range and zeroes it before the exact
//! comparison.

use bytes::Bytes;

use super::*;
use crate::hlc::Hlc;
use crate::hyparview::DownReason;
use crate::plumtree::{Delivery, Gossip};
use crate::registry::{Delta, EntryUpdate, ServiceEntry, Value};
use crate::wire::Limits;

type Out = OutEvent<u32>;

const ME: u32 = 1;
const ORIGIN_HASH: u64 = 0xA5A5_0000_1111_2222;
const WALL_MS: u64 = 1_700_000_000_000;
const APP: Tag = Tag::APPLICATION_MIN;

fn at(mono_ms: u64) -> Now {
    Now { mono_ms, wall_ms: WALL_MS + mono_ms }
}

/// A node plus its outbox; every call returns exactly what was pushed.
struct Harness {
    node: Node<u32>,
    out: NodeOutbox<u32>,
    now: Now,
}

impl Harness {
    /// Node `ME` with default configuration, constructed and started at time 0.
    fn new(seed: u64) -> Self {
        let now = at(0);
        let node = Node::new(ME, ORIGIN_HASH, Config::default(), Rng::from_seed(seed), now);
        let mut h = Self { node, out: NodeOutbox::new(&Config::default()), now };
        let started = h.start();
        assert_eq!(
            phases(started),
            vec![schedule(0, Timer::Registry(registry::Timer::AntiEntropy))]
        );
        h
    }

    fn start(&mut self) -> Vec<Out> {
        self.node.start(self.now, &mut self.out);
        self.out.take()
    }

    fn handle(&mut self, event: InEvent<u32>) -> Vec<Out> {
        self.node.handle(self.now, event, &mut self.out);
        self.out.take()
    }

    fn message(&mut self, from: u32, message: Message<u32>) -> Vec<Out> {
        self.handle(InEvent::Message { from, message })
    }

    /// `peer` joins through us: it becomes an active (HyParView) neighbour.
    fn join_from(&mut self, peer: u32) -> Vec<Out> {
        self.message(peer, Message::Hyparview(hyparview::Message::Join))
    }

    fn broadcast(
        &mut self,
        tag: Tag,
        payload: Bytes,
    ) -> (Result<MessageId, BroadcastError>, Vec<Out>) {
        let result = self.node.broadcast(self.now, tag, payload, &mut self.out);
        (result, self.out.take())
    }
}

/// Zeroes the delay of every random-phase timer after checking it against its range:
/// HyParView's first shuffle is `1..=shuffle_period_ms`, the registry anti-entropy round is
/// `period ± period / 4`.
fn phases(out: Vec<Out>) -> Vec<Out> {
    let hyparview = hyparview::Config::default();
    let period = registry::Config::default().anti_entropy_period_ms;
    out.into_iter()
        .map(|o| match o {
            OutEvent::ScheduleTimer {
                after_ms,
                timer: timer @ Timer::Hyparview(hyparview::Timer::Shuffle),
            } => {
                assert!(
                    (1..=hyparview.shuffle_period_ms).contains(&after_ms),
                    "shuffle phase {after_ms}"
                );
                schedule(0, timer)
            }
            OutEvent::ScheduleTimer {
                after_ms,
                timer: timer @ Timer::Registry(registry::Timer::AntiEntropy),
            } => {
                assert!(
                    (period - period / 4..=period + period / 4).contains(&after_ms),
                    "anti-entropy phase {after_ms}"
                );
                schedule(0, timer)
            }
            other => other,
        })
        .collect()
}

fn schedule(after_ms: u64, timer: Timer<u32>) -> Out {
    OutEvent::ScheduleTimer { after_ms, timer }
}

fn send(to: u32, message: Message<u32>) -> Out {
    OutEvent::SendMessage { to, message }
}

fn emit(event: Event<u32>) -> Out {
    OutEvent::EmitEvent(event)
}

fn empty_digest() -> Message<u32> {
    Message::Registry(registry::Message::Digest {
        range_start: None,
        range_end: None,
        owners: vec![],
    })
}

fn cache_timer() -> Out {
    schedule(
        plumtree::Config::default().cache_evict_interval_ms,
        Timer::Plumtree(plumtree::Timer::CacheEvict),
    )
}

/// What a node with an empty active view outputs when `peer` joins through it.
fn first_join_outputs(peer: u32) -> Vec<Out> {
    let hyparview = hyparview::Config::default();
    vec![
        emit(Event::Membership(hyparview::Event::PeerUp(peer))),
        schedule(0, Timer::Hyparview(hyparview::Timer::Shuffle)),
        schedule(
            hyparview.passive_cleanup_period_ms,
            Timer::Hyparview(hyparview::Timer::PassiveCleanup),
        ),
        schedule(hyparview.reconnect_period_ms, Timer::Hyparview(hyparview::Timer::Reconnect)),
        send(peer, Message::Hyparview(hyparview::Message::NeighborReply { accepted: true })),
        // The registry learnt the neighbour: it starts an anti-entropy exchange with it.
        send(peer, empty_digest()),
    ]
}

/// A started node (seed 1) whose active view is `peers`, each joined through it in order.
fn with_neighbours(peers: &[u32]) -> Harness {
    let mut h = Harness::new(1);
    for &peer in peers {
        h.join_from(peer);
    }
    assert_eq!(h.node.hyparview().active_view(), peers);
    h
}

fn app_delivery(id: MessageId, payload: &'static [u8]) -> Out {
    emit(Event::Broadcast(Delivery {
        id,
        tag: APP,
        payload: Bytes::from_static(payload),
        round: 0,
        from: None,
    }))
}

fn plumtree_gossip(to: u32, id: MessageId, tag: Tag, payload: Bytes) -> Out {
    send(to, Message::Plumtree(plumtree::Message::Gossip(Gossip { id, round: 1, tag, payload })))
}

/// The registry delta peer `owner` (alive at `incarnation`) broadcasts when it registers
/// `(name, reg_id)` with `meta` at our wall time.
fn registration_delta(
    owner: u32,
    incarnation: u64,
    name: &str,
    reg_id: u64,
    meta: &'static [u8],
) -> Bytes {
    Delta::Update {
        owner,
        incarnation,
        entries: vec![EntryUpdate {
            name: name.to_owned(),
            reg_id,
            value: Value::Registered {
                meta: Bytes::from_static(meta),
                stamp: Hlc::new(WALL_MS, 0),
            },
        }],
    }
    .encode()
}

// ---- (a) membership feeds Plumtree and the registry ----

#[test]
fn peer_up_makes_the_peer_an_eager_plumtree_neighbour_and_a_registry_neighbour() {
    let mut h = Harness::new(1);
    assert_eq!(phases(h.join_from(2)), first_join_outputs(2));
    assert_eq!(h.node.hyparview().active_view(), &[2]);
    assert_eq!(h.node.plumtree().eager_push_peers(), &[2]);
    assert_eq!(h.node.plumtree().lazy_push_peers(), &[] as &[u32]);
    assert_eq!(h.node.registry().stats().digests_sent, 1);
    // The registry's anti-entropy round picks its partner among the neighbours: only 2.
    assert_eq!(
        phases(h.handle(InEvent::TimerExpired(Timer::Registry(registry::Timer::AntiEntropy)))),
        vec![send(2, empty_digest()), schedule(0, Timer::Registry(registry::Timer::AntiEntropy))]
    );
    assert_eq!(h.node.registry().stats().digests_sent, 2);
}

// ---- (b) application broadcasts ----

#[test]
fn broadcast_with_a_reserved_tag_is_refused_without_outputs() {
    let mut h = with_neighbours(&[2]);
    for tag in [Tag(0), Tag::REGISTRY, Tag(255)] {
        assert_eq!(
            h.broadcast(tag, Bytes::from_static(b"x")),
            (Err(BroadcastError::ReservedTag(tag.0)), vec![])
        );
    }
    assert_eq!(h.node.plumtree().stats().delivered, 0);
}

#[test]
fn broadcast_larger_than_payload_size_max_is_refused_without_outputs() {
    let mut h = with_neighbours(&[2]);
    let len_max = Limits::default().payload_size_max;
    assert_eq!(
        h.broadcast(APP, Bytes::from(vec![0; len_max + 1])),
        (Err(BroadcastError::PayloadTooLarge { len: len_max + 1, len_max }), vec![])
    );
    assert_eq!(h.node.plumtree().stats().delivered, 0);
    // Exactly at the limit is accepted.
    let (result, out) = h.broadcast(APP, Bytes::from(vec![0; len_max]));
    assert!(result.is_ok());
    assert_eq!(out.len(), 3, "{out:?}");
}

#[test]
fn broadcast_is_delivered_locally_and_pushed_to_the_eager_peer() {
    let mut h = with_neighbours(&[2]);
    let (result, out) = h.broadcast(APP, Bytes::from_static(b"hello"));
    let id = result.expect("valid broadcast");
    assert_eq!((id.0 >> 64) as u64, ORIGIN_HASH, "high 64 bits are the origin hash");
    assert_eq!(
        out,
        vec![
            cache_timer(),
            app_delivery(id, b"hello"),
            plumtree_gossip(2, id, APP, Bytes::from_static(b"hello")),
        ]
    );
    // Ids are consecutive per node; the cache timer is already armed.
    let (second, out) = h.broadcast(APP, Bytes::from_static(b"again"));
    let second = second.expect("valid broadcast");
    assert_eq!(second, MessageId(id.0 + 1));
    assert_eq!(
        out,
        vec![
            app_delivery(second, b"again"),
            plumtree_gossip(2, second, APP, Bytes::from_static(b"again"))
        ]
    );
}

#[test]
fn refused_broadcasts_consume_no_id() {
    let mut refused = with_neighbours(&[2]);
    let _ = refused.broadcast(Tag::REGISTRY, Bytes::new());
    let _ = refused.broadcast(APP, Bytes::from(vec![0; Limits::default().payload_size_max + 1]));
    let mut fresh = with_neighbours(&[2]);
    assert_eq!(
        refused.broadcast(APP, Bytes::new()).0.expect("valid"),
        fresh.broadcast(APP, Bytes::new()).0.expect("valid")
    );
}

// ---- (c) registry deltas ride on Plumtree ----

#[test]
fn register_service_broadcasts_the_delta_on_plumtree_and_emits_registered() {
    let mut h = with_neighbours(&[2]);
    h.node.register_service(h.now, "svc", 7, Bytes::from_static(b"m"), &mut h.out).expect("valid");
    let out = h.out.take();
    let [first, cache, gossip] = out.as_slice() else { panic!("three outputs expected: {out:?}") };
    assert_eq!(
        *first,
        emit(Event::Registry(registry::Event::Registered {
            name: "svc".into(),
            node: ME,
            reg_id: 7
        }))
    );
    assert_eq!(*cache, cache_timer());
    let OutEvent::SendMessage {
        to: 2,
        message: Message::Plumtree(plumtree::Message::Gossip(gossip)),
    } = gossip
    else {
        panic!("a Plumtree gossip to 2 expected: {gossip:?}")
    };
    assert_eq!(gossip.tag, Tag::REGISTRY);
    assert_eq!(gossip.round, 1);
    assert_eq!((gossip.id.0 >> 64) as u64, ORIGIN_HASH);
    // Our incarnation is the wall clock at construction (time 0 here).
    assert_eq!(gossip.payload, registration_delta(ME, WALL_MS, "svc", 7, b"m"));
    // Our own delta came back to the registry as a delivery (no event, no second gossip), and
    // the service is visible locally.
    assert_eq!(h.node.registry().stats().deltas_applied, 1);
    assert_eq!(
        h.node.registry().lookup("svc"),
        vec![ServiceEntry {
            name: "svc".into(),
            node: ME,
            reg_id: 7,
            meta: Bytes::from_static(b"m")
        }]
    );
    // The delta used an id of the node's broadcast sequence: the next application broadcast
    // takes the following one.
    let (next, _) = h.broadcast(APP, Bytes::new());
    assert_eq!(next.expect("valid"), MessageId(gossip.id.0 + 1));
}

#[test]
fn registry_gossip_from_a_peer_is_applied_and_never_surfaces_as_a_broadcast() {
    let mut h = with_neighbours(&[2, 3]);
    let id = MessageId((2u128 << 64) | 5);
    let payload = registration_delta(2, 500, "db", 3, b"meta");
    let gossip = Gossip { id, round: 1, tag: Tag::REGISTRY, payload: payload.clone() };
    assert_eq!(
        h.message(2, Message::Plumtree(plumtree::Message::Gossip(gossip))),
        vec![
            cache_timer(),
            // Forwarded along the tree like any broadcast (round + 1), to the other eager peer.
            send(
                3,
                Message::Plumtree(plumtree::Message::Gossip(Gossip {
                    id,
                    round: 2,
                    tag: Tag::REGISTRY,
                    payload
                }))
            ),
            // Delivered to the registry, which reports the new service; no Event::Broadcast.
            emit(Event::Registry(registry::Event::Registered {
                name: "db".into(),
                node: 2,
                reg_id: 3
            })),
        ]
    );
    assert_eq!(
        h.node.registry().lookup("db"),
        vec![ServiceEntry {
            name: "db".into(),
            node: 2,
            reg_id: 3,
            meta: Bytes::from_static(b"meta")
        }]
    );
    assert_eq!(h.node.registry().stats().deltas_applied, 1);
    assert_eq!(h.node.plumtree().stats().delivered, 1);
}

// ---- (d) link failures ----

#[test]
fn peer_failed_emits_peer_down_failed_and_plumtree_drops_the_peer() {
    let mut h = with_neighbours(&[2, 3]);
    assert_eq!(h.node.plumtree().eager_push_peers(), &[2, 3]);
    assert_eq!(
        h.handle(InEvent::PeerFailed(2)),
        vec![
            emit(Event::Membership(hyparview::Event::PeerDown(2, DownReason::Failed))),
            // 2 stays a passive candidate in backoff (2 × base_backoff_ms after one failure):
            // promotion is retried when it ends.
            schedule(2_000, Timer::Hyparview(hyparview::Timer::Promote)),
        ]
    );
    assert_eq!(h.node.hyparview().active_view(), &[3]);
    assert_eq!(h.node.plumtree().eager_push_peers(), &[3]);
    assert_eq!(h.node.plumtree().lazy_push_peers(), &[] as &[u32]);
    // Broadcasts no longer reach 2.
    let (id, out) = h.broadcast(APP, Bytes::from_static(b"x"));
    let id = id.expect("valid");
    assert_eq!(
        out,
        vec![
            cache_timer(),
            app_delivery(id, b"x"),
            plumtree_gossip(3, id, APP, Bytes::from_static(b"x"))
        ]
    );
    // A failure report about a peer that is not active changes nothing in Plumtree.
    assert_eq!(h.handle(InEvent::PeerFailed(9)), vec![]);
    assert_eq!(h.node.plumtree().eager_push_peers(), &[3]);
}

#[test]
fn peer_failed_of_an_owner_with_services_starts_a_suspicion() {
    let mut h = with_neighbours(&[2, 3]);
    let gossip = Gossip {
        id: MessageId((2u128 << 64) | 5),
        round: 1,
        tag: Tag::REGISTRY,
        payload: registration_delta(2, 500, "db", 3, b"meta"),
    };
    h.message(2, Message::Plumtree(plumtree::Message::Gossip(gossip)));
    let out = h.handle(InEvent::PeerFailed(2));
    assert_eq!(out[0], emit(Event::Membership(hyparview::Event::PeerDown(2, DownReason::Failed))));
    // The suspicion goes out on the tree (to 3, not to the failed 2) with Tag::REGISTRY and
    // arms the suspicion timer.
    let suspect = Delta::Suspect { node: 2u32, incarnation: 500 }.encode();
    let gossips: Vec<&Gossip> = out
        .iter()
        .filter_map(|o| match o {
            OutEvent::SendMessage {
                to: 3,
                message: Message::Plumtree(plumtree::Message::Gossip(g)),
            } => Some(g),
            OutEvent::SendMessage { to, .. } => panic!("unexpected send to {to}: {out:?}"),
            _ => None,
        })
        .collect();
    assert_eq!(gossips.len(), 1, "{out:?}");
    assert_eq!((gossips[0].tag, &gossips[0].payload), (Tag::REGISTRY, &suspect));
    let suspicion = Timer::Registry(registry::Timer::Suspicion { node: 2, incarnation: 500 });
    assert!(
        out.contains(&schedule(registry::Config::default().suspicion_timeout_ms, suspicion)),
        "{out:?}"
    );
    assert_eq!(h.node.registry().stats().suspicions_sent, 1);
    // Still visible while only suspected.
    assert_eq!(h.node.registry().lookup("db").len(), 1);
}

// ---- (e) determinism ----

/// A script: joins, broadcasts (`None`), a registration (`None` at 30), a remote registry
/// delta, timers and a failure, at increasing times.
fn script() -> Vec<(u64, Option<InEvent<u32>>)> {
    let remote = Gossip {
        id: MessageId((2u128 << 64) | 9),
        round: 1,
        tag: Tag::REGISTRY,
        payload: registration_delta(2, 500, "db", 3, b"meta"),
    };
    let join = || Message::Hyparview(hyparview::Message::Join);
    vec![
        (0, Some(InEvent::Message { from: 2, message: join() })),
        (10, Some(InEvent::Message { from: 3, message: join() })),
        (20, None),
        (30, None),
        (
            40,
            Some(InEvent::Message {
                from: 2,
                message: Message::Plumtree(plumtree::Message::Gossip(remote)),
            }),
        ),
        (50, Some(InEvent::TimerExpired(Timer::Plumtree(plumtree::Timer::IHaveFlush)))),
        (60, Some(InEvent::TimerExpired(Timer::Hyparview(hyparview::Timer::Shuffle)))),
        (70, Some(InEvent::TimerExpired(Timer::Registry(registry::Timer::AntiEntropy)))),
        (80, Some(InEvent::PeerFailed(2))),
        (90, None),
    ]
}

/// Feeds one step of [`script`] to `node` and returns its outputs.
fn run_step(
    node: &mut Node<u32>,
    mono_ms: u64,
    event: Option<InEvent<u32>>,
    out: &mut NodeOutbox<u32>,
) -> Vec<Out> {
    call_step(node, mono_ms, event, out);
    out.take()
}

/// Feeds one step of [`script`] to `node`, whose outputs go to `out`'s sink.
fn call_step<O: Sink<Out>>(
    node: &mut Node<u32>,
    mono_ms: u64,
    event: Option<InEvent<u32>>,
    out: &mut NodeOutbox<u32, O>,
) {
    let now = at(mono_ms);
    match event {
        Some(event) => node.handle(now, event, out),
        None if mono_ms == 30 => {
            let meta = Bytes::from_static(b"m");
            node.register_service(now, "svc", 1, meta, out).expect("valid");
        }
        None => {
            let payload = Bytes::from(mono_ms.to_be_bytes().to_vec());
            node.broadcast(now, APP, payload, out).expect("valid");
        }
    }
}

/// Every output of [`script`] fed to a node seeded with `seed`, timer phases included.
fn scripted_run(seed: u64) -> Vec<Out> {
    let mut h = Harness::new(seed);
    let mut all = Vec::new();
    for (mono_ms, event) in script() {
        all.extend(run_step(&mut h.node, mono_ms, event, &mut h.out));
    }
    all
}

#[test]
fn same_seed_and_inputs_give_identical_outputs() {
    let a = scripted_run(11);
    assert!(a.len() > 20, "the script exercises every layer: {a:?}");
    assert_eq!(a, scripted_run(11));
    // The seed matters (broadcast ids and timer phases), so the comparison is not vacuous.
    assert_ne!(a, scripted_run(12));
}

/// A driver's own sink: records each output as it is pushed.
struct Recorder(Vec<Out>);

impl Sink<Out> for Recorder {
    fn push(&mut self, output: Out) {
        self.0.push(output);
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

#[test]
fn a_sink_that_carries_outputs_out_sees_what_an_outbox_would() {
    // The simulator's sink handles each output while the node runs: it must see the same
    // outputs, in the same order, as an `Outbox` drained after each call.
    let expected = scripted_run(11);
    let mut h = Harness::new(11);
    let mut out = NodeOutbox::with_sink(&Config::default(), Recorder(Vec::new()));
    for (mono_ms, event) in script() {
        call_step(&mut h.node, mono_ms, event, &mut out);
    }
    assert_eq!(out.sink().0, expected);
    assert_eq!(out.sink_mut().count(), expected.len());
}

#[test]
fn one_outbox_serves_many_nodes_as_separate_ones_would() {
    // A driver keeps one `NodeOutbox` for all its nodes: nothing of one node's call may stay
    // in it and reach the next node's outputs.
    let (alone_a, alone_b) = (scripted_run(11), scripted_run(12));
    let (mut a, mut b) = (Harness::new(11), Harness::new(12));
    let mut shared = NodeOutbox::new(&Config::default());
    let (mut shared_a, mut shared_b) = (Vec::new(), Vec::new());
    for (mono_ms, event) in script() {
        shared_a.extend(run_step(&mut a.node, mono_ms, event.clone(), &mut shared));
        shared_b.extend(run_step(&mut b.node, mono_ms, event, &mut shared));
    }
    assert_eq!(shared_a, alone_a);
    assert_eq!(shared_b, alone_b);
}

#[test]
fn registry_bounds_above_the_wire_limits_are_refused() {
    let mut config = Config::default();
    config.limits.payload_size_max = 16 << 10;
    let err = config.validate().unwrap_err();
    assert_eq!((err.section, err.key), ("registry", "message_size_max"));
    let mut config = Config::default();
    config.limits.list_len_max = 100;
    assert_eq!(config.validate().unwrap_err().key, "sync_entries_per_message_max");
    assert!(Config::default().validate().is_ok());
}
