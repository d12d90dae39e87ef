//! Unit tests with exact outputs. Peers are plain `u64`s.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::*;
use crate::hlc::Hlc;
use crate::outbox::Outbox;
use crate::rng::Rng;
use crate::time::Now;
use crate::wire::{DecodeError, Limits, Reader, Wire, Writer};

type Out = OutEvent<u64>;

const A: u64 = 1;
const B: u64 = 2;
const C: u64 = 3;

fn at(mono_ms: u64, wall_ms: u64) -> Now {
    Now { mono_ms, wall_ms }
}

/// Node `id` with incarnation `100 * id`.
fn node(id: u64) -> State<u64> {
    node_with(id, Config::default())
}

fn node_with(id: u64, config: Config) -> State<u64> {
    State::new(id, 100 * id, config, Rng::from_seed(id))
}

fn outbox() -> Outbox<Out> {
    Outbox::new(100_000)
}

fn reg(s: &mut State<u64>, now: Now, name: &str, reg_id: u64, meta: &'static [u8]) -> Vec<Out> {
    let mut out = outbox();
    s.register(now, name, reg_id, Bytes::from_static(meta), &mut out).unwrap();
    out.take()
}

fn handle(s: &mut State<u64>, now: Now, event: InEvent<u64>) -> Vec<Out> {
    let mut out = outbox();
    s.handle(now, event, &mut out);
    out.take()
}

fn deliver(s: &mut State<u64>, now: Now, payload: Bytes) -> Vec<Out> {
    handle(s, now, InEvent::Delivered { payload })
}

fn broadcasts(outs: &[Out]) -> Vec<Bytes> {
    outs.iter()
        .filter_map(|o| match o {
            OutEvent::Broadcast(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn events(outs: &[Out]) -> Vec<Event<u64>> {
    outs.iter()
        .filter_map(|o| match o {
            OutEvent::EmitEvent(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn registered(name: &str, node: u64, reg_id: u64) -> Event<u64> {
    Event::Registered { name: name.to_owned(), node, reg_id }
}

fn down(name: &str, node: u64, reg_id: u64, reason: DownReason) -> Event<u64> {
    Event::Down { name: name.to_owned(), node, reg_id, reason }
}

fn update(owner: u64, incarnation: u64, entries: Vec<EntryUpdate>) -> Bytes {
    Delta::Update { owner, incarnation, entries }.encode()
}

fn entry(name: &str, reg_id: u64, value: Value) -> EntryUpdate {
    EntryUpdate { name: name.to_owned(), reg_id, value }
}

fn live(meta: &'static [u8], wall_ms: u64, logical: u32) -> Value {
    Value::Registered { meta: Bytes::from_static(meta), stamp: Hlc::new(wall_ms, logical) }
}

fn visible(s: &State<u64>) -> Vec<ServiceEntry<u64>> {
    let mut all: Vec<_> = s.list_services().iter().flat_map(|n| s.lookup(n)).collect();
    all.sort();
    all
}

/// Routes direct messages (and floods broadcasts to every other node) until quiet. Returns the
/// events each node emitted and the number of direct messages delivered.
fn run(
    nodes: &mut BTreeMap<u64, State<u64>>,
    now: Now,
    from: u64,
    initial: Vec<Out>,
) -> (BTreeMap<u64, Vec<Event<u64>>>, usize) {
    let mut queue: VecDeque<(u64, Out)> = initial.into_iter().map(|o| (from, o)).collect();
    let mut seen: BTreeMap<u64, Vec<Event<u64>>> = BTreeMap::new();
    let mut delivered = 0;
    while let Some((src, o)) = queue.pop_front() {
        match o {
            OutEvent::SendMessage { to, message } => {
                delivered += 1;
                let s = nodes.get_mut(&to).unwrap();
                for o in handle(s, now, InEvent::Message { from: src, message }) {
                    queue.push_back((to, o));
                }
            }
            OutEvent::Broadcast(payload) => {
                let others: Vec<u64> = nodes.keys().copied().filter(|id| *id != src).collect();
                for id in others {
                    let s = nodes.get_mut(&id).unwrap();
                    for o in deliver(s, now, payload.clone()) {
                        queue.push_back((id, o));
                    }
                }
            }
            OutEvent::EmitEvent(e) => seen.entry(src).or_default().push(e),
            OutEvent::ScheduleTimer { .. } => {}
        }
    }
    (seen, delivered)
}

// ---- registration API ---------------------------------------------------------------------

#[test]
fn register_broadcasts_delta_and_emits_event() {
    let mut a = node(A);
    let outs = reg(&mut a, at(10, 5_000), "web", 7, b"m");
    assert_eq!(
        outs,
        vec![
            OutEvent::Broadcast(update(A, 100, vec![entry("web", 7, live(b"m", 5_000, 0))])),
            OutEvent::EmitEvent(registered("web", A, 7)),
        ]
    );
    assert!(a.is_visible("web", &A, 7));
    assert_eq!(a.visible_count(), 1);
    assert_eq!(
        a.lookup("web"),
        vec![ServiceEntry {
            name: "web".into(),
            node: A,
            reg_id: 7,
            meta: Bytes::from_static(b"m")
        }]
    );
}

#[test]
fn register_refusals_change_nothing() {
    let config = Config { services_local_max: 2, meta_size_max: 4, ..Config::default() };
    let mut a = node_with(A, config);
    let mut out = outbox();
    let now = at(0, 1_000);
    a.register(now, "web", 1, Bytes::new(), &mut out).unwrap();
    out.take();
    assert_eq!(
        a.register(now, "web", 1, Bytes::new(), &mut out),
        Err(RegisterError::Duplicate { name: "web".into(), reg_id: 1 })
    );
    assert_eq!(
        a.register(now, "", 2, Bytes::new(), &mut out),
        Err(RegisterError::InvalidName(ServiceNameError::Empty))
    );
    let long = "x".repeat(256);
    assert_eq!(
        a.register(now, &long, 2, Bytes::new(), &mut out),
        Err(RegisterError::InvalidName(ServiceNameError::TooLong { len: 256 }))
    );
    assert_eq!(
        a.register(now, "web", 2, Bytes::from_static(b"12345"), &mut out),
        Err(RegisterError::MetaTooLarge { len: 5, len_max: 4 })
    );
    a.register(now, &"y".repeat(255), 2, Bytes::new(), &mut out).unwrap();
    out.take();
    assert_eq!(
        a.register(now, "db", 3, Bytes::new(), &mut out),
        Err(RegisterError::TooManyServices { count_max: 2 })
    );
    assert!(out.is_empty());
    // Unregistering frees a slot and the same reg_id can be registered again.
    a.unregister(now, "web", 1, UnregisterReason::Unregistered, &mut out).unwrap();
    a.register(now, "web", 1, Bytes::new(), &mut out).unwrap();
}

#[test]
fn unregister_writes_tombstone_and_emits_event() {
    let mut a = node(A);
    reg(&mut a, at(0, 5_000), "web", 7, b"m");
    let mut out = outbox();
    a.unregister(at(1, 5_000), "web", 7, UnregisterReason::Unregistered, &mut out).unwrap();
    let tomb =
        Value::Tombstone { stamp: Hlc::new(5_000, 1), reason: UnregisterReason::Unregistered };
    assert_eq!(
        out.take(),
        vec![
            OutEvent::Broadcast(update(A, 100, vec![entry("web", 7, tomb)])),
            OutEvent::EmitEvent(Event::Unregistered { name: "web".into(), node: A, reg_id: 7 }),
        ]
    );
    assert!(!a.is_visible("web", &A, 7));
    assert_eq!(a.list_services(), Vec::<String>::new());
    assert_eq!(
        a.unregister(at(2, 5_000), "web", 7, UnregisterReason::Unregistered, &mut out),
        Err(UnregisterError::NotRegistered { name: "web".into(), reg_id: 7 })
    );
    assert!(out.is_empty());
}

#[test]
fn handle_dropped_is_down_locally_and_remotely() {
    let mut a = node(A);
    let mut b = node(B);
    let r = reg(&mut a, at(0, 5_000), "web", 7, b"m");
    deliver(&mut b, at(0, 5_000), broadcasts(&r)[0].clone());
    let mut out = outbox();
    a.unregister(at(1, 6_000), "web", 7, UnregisterReason::HandleDropped, &mut out).unwrap();
    let outs = out.take();
    assert_eq!(events(&outs), vec![down("web", A, 7, DownReason::HandleDropped)]);
    let remote = deliver(&mut b, at(1, 6_000), broadcasts(&outs)[0].clone());
    assert_eq!(remote, vec![OutEvent::EmitEvent(down("web", A, 7, DownReason::HandleDropped))]);
    assert!(!b.is_visible("web", &A, 7));
}

// ---- remote deltas ------------------------------------------------------------------------

#[test]
fn remote_delta_emits_registered_once() {
    let mut b = node(B);
    let delta = update(A, 100, vec![entry("web", 7, live(b"m", 5_000, 0))]);
    assert_eq!(
        deliver(&mut b, at(0, 5_000), delta.clone()),
        vec![OutEvent::EmitEvent(registered("web", A, 7))]
    );
    assert_eq!(deliver(&mut b, at(1, 5_000), delta), vec![]);
    assert_eq!(b.stats().deltas_applied, 2);
    assert_eq!(b.owner_status(&A), Some(OwnerStatus::alive(100)));
    assert_eq!(b.whereis("web", 0).map(|e| e.node), Some(A));
}

#[test]
fn stale_delta_is_ignored() {
    let mut b = node(B);
    let newer =
        Value::Tombstone { stamp: Hlc::new(6_000, 0), reason: UnregisterReason::Unregistered };
    deliver(&mut b, at(0, 6_000), update(A, 100, vec![entry("web", 7, newer)]));
    let outs =
        deliver(&mut b, at(1, 6_000), update(A, 100, vec![entry("web", 7, live(b"", 5_000, 0))]));
    assert_eq!(outs, vec![]);
    assert!(!b.is_visible("web", &A, 7));
}

#[test]
fn undecodable_payloads_are_counted_and_ignored() {
    let mut b = node(B);
    for garbage in [&b""[..], &[0x20][..], &[0x7F, 1, 2][..], &[0x21, 0, 0, 0, 0, 0, 0, 0, 1][..]] {
        assert_eq!(deliver(&mut b, at(0, 0), Bytes::copy_from_slice(garbage)), vec![]);
    }
    assert_eq!(b.stats().decode_errors, 4);
    assert_eq!(b.stats().deltas_applied, 0);
}

#[test]
fn skewed_stamps_are_rejected_rest_of_delta_applies() {
    let mut b = node(B);
    let delta = update(
        A,
        100,
        vec![entry("far", 1, live(b"", 40_001, 0)), entry("near", 2, live(b"", 30_000, 0))],
    );
    let outs = deliver(&mut b, at(0, 10_000), delta);
    assert_eq!(outs, vec![OutEvent::EmitEvent(registered("near", A, 2))]);
    assert_eq!(b.stats().skew_rejected, 1);
    assert!(!b.is_visible("far", &A, 1));
}

// ---- failure detection --------------------------------------------------------------------

/// B knows A's service "web"/7.
fn b_knows_a() -> (State<u64>, State<u64>) {
    let mut a = node(A);
    let mut b = node(B);
    let r = reg(&mut a, at(0, 5_000), "web", 7, b"m");
    deliver(&mut b, at(0, 5_000), broadcasts(&r)[0].clone());
    (a, b)
}

#[test]
fn failed_link_suspects_owner_and_broadcasts() {
    let (_a, mut b) = b_knows_a();
    let outs = handle(&mut b, at(1, 5_000), InEvent::PeerDown { peer: A, failed: true });
    assert_eq!(
        outs,
        vec![
            OutEvent::Broadcast(Delta::Suspect { node: A, incarnation: 100 }.encode()),
            OutEvent::ScheduleTimer {
                after_ms: 5_000,
                timer: Timer::Suspicion { node: A, incarnation: 100 },
            },
        ]
    );
    assert_eq!(
        b.owner_status(&A),
        Some(OwnerStatus { incarnation: 100, state: OwnerState::Suspect })
    );
    assert!(b.is_visible("web", &A, 7), "suspected entries stay visible");
    // Already suspected at this incarnation: no second broadcast.
    assert_eq!(handle(&mut b, at(2, 5_000), InEvent::PeerDown { peer: A, failed: true }), vec![]);
    // A peer owning nothing costs nothing.
    assert_eq!(handle(&mut b, at(2, 5_000), InEvent::PeerDown { peer: C, failed: true }), vec![]);
    assert_eq!(b.stats().suspicions_sent, 1);
}

#[test]
fn leaving_the_active_view_does_nothing() {
    let (_a, mut b) = b_knows_a();
    assert_eq!(handle(&mut b, at(0, 5_000), InEvent::PeerUp(A)).len(), 1);
    assert_eq!(handle(&mut b, at(1, 5_000), InEvent::PeerDown { peer: A, failed: false }), vec![]);
    assert_eq!(b.owner_status(&A), Some(OwnerStatus::alive(100)));
    assert!(b.is_visible("web", &A, 7));
}

#[test]
fn suspicion_timeout_declares_dead_and_hides_entries() {
    let (_a, mut b) = b_knows_a();
    handle(&mut b, at(1, 5_000), InEvent::PeerDown { peer: A, failed: true });
    let timer = Timer::Suspicion { node: A, incarnation: 100 };
    let outs = handle(&mut b, at(5_001, 10_000), InEvent::TimerExpired(timer.clone()));
    assert_eq!(outs, vec![OutEvent::EmitEvent(down("web", A, 7, DownReason::NodeDown))]);
    assert!(!b.is_visible("web", &A, 7));
    assert_eq!(b.visible_count(), 0);
    assert_eq!(b.stats().deaths_declared, 1);
    // Firing again is a no-op.
    assert_eq!(handle(&mut b, at(5_002, 10_000), InEvent::TimerExpired(timer)), vec![]);
}

#[test]
fn a_suspicion_received_by_broadcast_arms_the_timer() {
    let (_a, mut b) = b_knows_a();
    let outs = deliver(&mut b, at(1, 5_000), Delta::Suspect { node: A, incarnation: 100 }.encode());
    assert_eq!(
        outs,
        vec![OutEvent::ScheduleTimer {
            after_ms: 5_000,
            timer: Timer::Suspicion { node: A, incarnation: 100 },
        }]
    );
    // A stale suspicion (older incarnation) changes nothing.
    assert_eq!(
        deliver(&mut b, at(1, 5_000), Delta::Suspect { node: A, incarnation: 99 }.encode()),
        vec![]
    );
}

#[test]
fn owner_refutes_and_revives_its_entries_remotely() {
    let (mut a, mut b) = b_knows_a();
    let suspect =
        broadcasts(&handle(&mut b, at(1, 5_000), InEvent::PeerDown { peer: A, failed: true }));
    handle(
        &mut b,
        at(5_001, 10_000),
        InEvent::TimerExpired(Timer::Suspicion { node: A, incarnation: 100 }),
    );
    assert!(!b.is_visible("web", &A, 7));

    let outs = deliver(&mut a, at(2, 5_000), suspect[0].clone());
    assert_eq!(
        outs,
        vec![OutEvent::Broadcast(
            Delta::Alive {
                node: A,
                incarnation: 101,
                entries: vec![entry("web", 7, live(b"m", 5_000, 0))]
            }
            .encode()
        )]
    );
    assert_eq!(a.incarnation(), 101);
    assert_eq!(a.stats().refutations_sent, 1);

    let revived = deliver(&mut b, at(5_002, 10_000), broadcasts(&outs)[0].clone());
    assert_eq!(revived, vec![OutEvent::EmitEvent(registered("web", A, 7))]);
    assert_eq!(b.owner_status(&A), Some(OwnerStatus::alive(101)));
    assert!(b.is_visible("web", &A, 7));
}

#[test]
fn a_refutation_before_the_timeout_cancels_the_death() {
    let (mut a, mut b) = b_knows_a();
    let suspect =
        broadcasts(&handle(&mut b, at(1, 5_000), InEvent::PeerDown { peer: A, failed: true }));
    let alive = broadcasts(&deliver(&mut a, at(2, 5_000), suspect[0].clone()));
    assert_eq!(deliver(&mut b, at(3, 5_000), alive[0].clone()), vec![]);
    let fired = InEvent::TimerExpired(Timer::Suspicion { node: A, incarnation: 100 });
    assert_eq!(handle(&mut b, at(5_001, 10_000), fired), vec![]);
    assert!(b.is_visible("web", &A, 7));
}

// ---- anti-entropy -------------------------------------------------------------------------

#[test]
fn start_arms_a_jittered_anti_entropy_timer() {
    for seed in 0..50 {
        let mut s = State::new(A, 1, Config::default(), Rng::from_seed(seed));
        let mut out = outbox();
        s.start(at(0, 0), &mut out);
        match out.take().as_slice() {
            [OutEvent::ScheduleTimer { after_ms, timer: Timer::AntiEntropy }] => {
                assert!((22_500..=37_500).contains(after_ms), "{after_ms}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// `entries_hash` of one registered entry ("web", 7) stamped (5,000 ms, 0).
const PINNED_HASH: u64 = 10_788_163_075_961_514_221;

#[test]
fn peer_up_starts_a_sync_immediately() {
    let mut a = node(A);
    reg(&mut a, at(0, 5_000), "web", 7, b"m");
    let outs = handle(&mut a, at(1, 5_000), InEvent::PeerUp(B));
    // Every field literal (the hash is pinned: it must be the same on every replica and
    // release, so a change to it is a wire change).
    let digest = OwnerDigest {
        incarnation: 100,
        state: OwnerState::Alive,
        entries_max_stamp: Hlc::new(5_000, 0),
        entries_count: 1,
        entries_hash: PINNED_HASH,
    };
    assert_eq!(
        outs,
        vec![OutEvent::SendMessage {
            to: B,
            message: Message::Digest {
                range_start: None,
                range_end: None,
                owners: vec![(A, digest)]
            },
        }]
    );
    // A brand-new node receives the existing services through that exchange.
    let mut nodes = BTreeMap::from([(A, a), (B, node(B))]);
    let (seen, _) = run(&mut nodes, at(1, 5_000), A, outs);
    assert_eq!(seen[&B], vec![registered("web", A, 7)]);
    assert_eq!(visible(&nodes[&A]), visible(&nodes[&B]));
}

#[test]
fn one_push_pull_round_converges_both_sides() {
    let mut a = node(A);
    let mut b = node(B);
    reg(&mut a, at(0, 5_000), "web", 1, b"a");
    reg(&mut a, at(0, 5_001), "db", 2, b"a");
    reg(&mut b, at(0, 5_000), "web", 3, b"b");
    let mut out = outbox();
    a.unregister(at(0, 5_002), "db", 2, UnregisterReason::Unregistered, &mut out).unwrap();
    // C's entries known only to B; C is dead there (hidden), and A must learn that too.
    deliver(&mut b, at(0, 5_000), update(C, 300, vec![entry("cache", 9, live(b"c", 4_000, 0))]));
    deliver(&mut b, at(0, 5_000), Delta::Suspect { node: C, incarnation: 300 }.encode());
    handle(
        &mut b,
        at(9_000, 9_000),
        InEvent::TimerExpired(Timer::Suspicion { node: C, incarnation: 300 }),
    );

    handle(&mut a, at(0, 5_000), InEvent::PeerUp(B));
    let mut nodes = BTreeMap::from([(A, a), (B, b)]);
    let digest = handle(
        nodes.get_mut(&A).unwrap(),
        at(10_000, 10_000),
        InEvent::TimerExpired(Timer::AntiEntropy),
    );
    let (seen, delivered) = run(&mut nodes, at(10_000, 10_000), A, digest);
    // Digest, Sync (B->A), SyncRequest (B->A), Sync (A->B): one round trip and a half.
    assert_eq!(delivered, 4);
    assert_eq!(seen[&A], vec![registered("web", B, 3)]);
    assert_eq!(seen[&B], vec![registered("web", A, 1)]);
    assert_eq!(visible(&nodes[&A]), visible(&nodes[&B]));
    assert_eq!(nodes[&A].store.snapshot(), nodes[&B].store.snapshot());
    assert_eq!(
        nodes[&A].owner_status(&C),
        Some(OwnerStatus { incarnation: 300, state: OwnerState::Dead })
    );
    assert!(!nodes[&A].is_visible("cache", &C, 9));
    // A second round finds nothing to do: only the digest travels.
    let digest = handle(nodes.get_mut(&B).unwrap(), at(20_000, 20_000), InEvent::PeerUp(A));
    let (_, delivered) = run(&mut nodes, at(20_000, 20_000), B, digest);
    assert_eq!(delivered, 1);
}

#[test]
fn sync_of_a_dead_owner_who_refuted_heals_after_a_partition() {
    // B declared A dead during a partition; A never saw the suspicion. Anti-entropy carries
    // B's verdict to A, A refutes, and B sees A's services again without any re-join.
    let (a, mut b) = b_knows_a();
    handle(&mut b, at(1, 5_000), InEvent::PeerDown { peer: A, failed: true });
    handle(
        &mut b,
        at(5_001, 10_000),
        InEvent::TimerExpired(Timer::Suspicion { node: A, incarnation: 100 }),
    );
    let mut nodes = BTreeMap::from([(A, a), (B, b)]);
    let digest = handle(nodes.get_mut(&B).unwrap(), at(6_000, 11_000), InEvent::PeerUp(A));
    let (seen, _) = run(&mut nodes, at(6_000, 11_000), B, digest);
    assert_eq!(seen[&B], vec![registered("web", A, 7)]);
    assert_eq!(nodes[&A].incarnation(), 101);
    assert!(nodes[&B].is_visible("web", &A, 7));
}

#[test]
fn syncs_are_split_by_item_count_and_size() {
    let config = Config { sync_entries_per_message_max: 4, ..Config::default() };
    let mut a = node_with(A, config.clone());
    for i in 0..10 {
        reg(&mut a, at(0, 5_000), "svc", i, b"");
    }
    let mut b = node_with(B, config);
    let outs = handle(&mut b, at(0, 5_000), InEvent::PeerUp(A));
    let OutEvent::SendMessage { message, .. } = outs[0].clone() else { panic!() };
    let replies = handle(&mut a, at(0, 5_000), InEvent::Message { from: B, message });
    let mut entries = 0;
    let mut syncs = 0;
    for o in &replies {
        if let OutEvent::SendMessage { message: Message::Sync { owners }, .. } = o {
            syncs += 1;
            let items: usize = owners.iter().map(|o| 1 + o.entries.len()).sum();
            assert!(items <= 4, "{items} items");
            entries += owners.iter().map(|o| o.entries.len()).sum::<usize>();
        }
    }
    assert_eq!(entries, 10);
    assert_eq!(syncs, 4); // 3 + 3 + 3 + 1 entries (the header takes one item each)
    let mut nodes = BTreeMap::from([(A, a), (B, b)]);
    run(&mut nodes, at(0, 5_000), A, replies);
    assert_eq!(nodes[&B].lookup("svc").len(), 10);

    // Size: 3 KiB metadata, 5 KiB messages -> one entry per message.
    let config = Config { meta_size_max: 3_072, message_size_max: 5_120, ..Config::default() };
    let s = node_with(A, config);
    static META: [u8; 3_000] = [7; 3_000];
    let records = vec![OwnerSync {
        owner: A,
        status: OwnerStatus::alive(1),
        entries: (0..3).map(|i| entry("big", i, live(&META, 1, 0))).collect(),
    }];
    let chunks = s.chunk_syncs(records);
    assert_eq!(chunks.len(), 3);
    for chunk in chunks {
        let mut w = Writer::new();
        Message::Sync { owners: chunk }.encode(&mut w);
        assert!(w.len() <= 5_120);
    }
}

#[test]
fn large_refutations_are_split_into_several_alive_deltas() {
    let config = Config { sync_entries_per_message_max: 3, ..Config::default() };
    let mut a = node_with(A, config);
    for i in 0..5 {
        reg(&mut a, at(0, 5_000), "svc", i, b"");
    }
    let outs = deliver(&mut a, at(1, 5_000), Delta::Suspect { node: A, incarnation: 100 }.encode());
    let deltas: Vec<Delta<u64>> =
        broadcasts(&outs).iter().map(|b| Delta::decode(b, &Limits::default()).unwrap()).collect();
    assert_eq!(deltas.len(), 3);
    let total: usize = deltas
        .iter()
        .map(|d| match d {
            Delta::Alive { incarnation: 101, entries, .. } => entries.len(),
            other => panic!("unexpected {other:?}"),
        })
        .sum();
    assert_eq!(total, 5);
}

#[test]
fn digests_are_windowed_by_digest_owners_max() {
    let config = Config { digest_owners_max: 2, ..Config::default() };
    let mut s = node_with(A, config);
    for owner in [B, C, 4, 5] {
        deliver(&mut s, at(0, 1_000), update(owner, 1, vec![entry("x", 1, live(b"", 1_000, 0))]));
    }
    // Only owners with entries are summarised (2..=5; the local node 1 has none): windows
    // [2,3], [4,5], then again from the start.
    let mut windows = Vec::new();
    for _ in 0..4 {
        let Message::Digest { range_start, range_end, owners } = s.digest() else { panic!() };
        windows.push((range_start, range_end, owners.iter().map(|(p, _)| *p).collect::<Vec<_>>()));
    }
    assert_eq!(
        windows,
        vec![
            (None, Some(3), vec![2, 3]),
            (Some(4), None, vec![4, 5]),
            (None, Some(3), vec![2, 3]),
            (Some(4), None, vec![4, 5]),
        ]
    );
}

#[test]
fn tombstones_are_collected_after_the_ttl() {
    let mut a = node(A);
    reg(&mut a, at(0, 5_000), "web", 7, b"");
    let mut out = outbox();
    a.unregister(at(1_000, 5_000), "web", 7, UnregisterReason::Unregistered, &mut out).unwrap();
    let ttl = Config::default().tombstone_ttl_ms;
    handle(&mut a, at(1_000 + ttl - 1, 5_000), InEvent::TimerExpired(Timer::AntiEntropy));
    assert_eq!(a.stats().tombstones_collected, 0);
    assert_eq!(a.store.record(&A).unwrap().entries.len(), 1);
    handle(&mut a, at(1_000 + ttl, 5_000), InEvent::TimerExpired(Timer::AntiEntropy));
    assert_eq!(a.stats().tombstones_collected, 1);
    assert!(a.store.record(&A).unwrap().entries.is_empty());
    assert!(a.store.index_is_consistent());
}

#[test]
fn tombstones_older_than_the_ttl_are_not_stored_again() {
    let mut b = node(B);
    let ttl = Config::default().tombstone_ttl_ms;
    let old =
        Value::Tombstone { stamp: Hlc::new(1_000, 0), reason: UnregisterReason::Unregistered };
    deliver(&mut b, at(0, 1_000 + ttl), update(A, 100, vec![entry("web", 7, old)]));
    assert!(b.store.record(&A).unwrap().entries.is_empty());
}

#[test]
fn a_restarted_owner_reclaims_entries_of_its_previous_life() {
    // A's previous life registered "old"/1; B still holds it. A restarts with an empty store.
    let mut b = node(B);
    deliver(&mut b, at(0, 5_000), update(A, 50, vec![entry("old", 1, live(b"", 4_000, 0))]));
    let mut nodes = BTreeMap::from([(A, node(A)), (B, b)]);
    let digest = handle(nodes.get_mut(&A).unwrap(), at(0, 6_000), InEvent::PeerUp(B));
    let (seen, _) = run(&mut nodes, at(0, 6_000), A, digest);
    assert_eq!(seen[&B], vec![down("old", A, 1, DownReason::HandleDropped)]);
    assert!(!nodes[&B].is_visible("old", &A, 1));
    assert!(!nodes[&A].is_visible("old", &A, 1));
}

// ---- queries ------------------------------------------------------------------------------

#[test]
fn whereis_prefers_local_instances_and_queries_are_ordered() {
    let mut a = node(A);
    deliver(&mut a, at(0, 5_000), update(C, 300, vec![entry("web", 1, live(b"c", 5_000, 0))]));
    deliver(&mut a, at(0, 5_000), update(B, 200, vec![entry("web", 2, live(b"b", 5_000, 0))]));
    assert_eq!(a.lookup("web").iter().map(|e| e.node).collect::<Vec<_>>(), vec![B, C]);
    assert_eq!(a.whereis("web", 0).unwrap().node, B);
    assert_eq!(a.whereis("web", 1).unwrap().node, C);
    reg(&mut a, at(0, 5_000), "web", 9, b"a");
    for pick in 0..4 {
        assert_eq!(a.whereis("web", pick).unwrap().node, A);
    }
    assert_eq!(a.whereis("nothing", 0), None);
    reg(&mut a, at(0, 5_000), "api", 1, b"");
    assert_eq!(a.list_services(), vec!["api".to_owned(), "web".to_owned()]);
    assert_eq!(a.visible_count(), 4);
}

#[test]
fn filters_match_names() {
    assert!(Filter::All.matches("x"));
    assert!(Filter::Exact("web".into()).matches("web"));
    assert!(!Filter::Exact("web".into()).matches("web2"));
    assert!(Filter::Prefix("web.".into()).matches("web.eu"));
    assert!(!Filter::Prefix("web.".into()).matches("db"));
}

// ---- wire ---------------------------------------------------------------------------------

fn roundtrip_message(m: &Message<u64>) {
    let mut w = Writer::new();
    m.encode(&mut w);
    let bytes = w.finish();
    let mut r = Reader::new(&bytes);
    assert_eq!(&Message::<u64>::decode(&mut r, &Limits::default()).unwrap(), m);
    assert_eq!(r.finish(), Ok(()));
    // Every strict prefix fails cleanly.
    for cut in 0..bytes.len() {
        let mut r = Reader::new(&bytes[..cut]);
        assert!(Message::<u64>::decode(&mut r, &Limits::default()).is_err(), "prefix {cut}");
    }
}

#[test]
fn messages_round_trip() {
    let digest = OwnerDigest {
        incarnation: 5,
        state: OwnerState::Suspect,
        entries_max_stamp: Hlc::new(9, 1),
        entries_count: 3,
        entries_hash: 0x0102_0304_0506_0708,
    };
    roundtrip_message(&Message::Digest {
        range_start: None,
        range_end: Some(9),
        owners: vec![(1, digest)],
    });
    roundtrip_message(&Message::Sync {
        owners: vec![OwnerSync {
            owner: 4,
            status: OwnerStatus { incarnation: 2, state: OwnerState::Dead },
            entries: vec![
                entry("a", 1, live(b"meta", 3, 4)),
                entry(
                    "b",
                    2,
                    Value::Tombstone {
                        stamp: Hlc::new(5, 0),
                        reason: UnregisterReason::HandleDropped,
                    },
                ),
            ],
        }],
    });
    roundtrip_message(&Message::SyncRequest { owners: vec![1, 2, 3] });
}

#[test]
fn deltas_round_trip_and_start_with_their_codes() {
    let deltas = [
        Delta::Update {
            owner: 1u64,
            incarnation: 2,
            entries: vec![entry("x", 3, live(b"m", 4, 5))],
        },
        Delta::Suspect { node: 1, incarnation: 2 },
        Delta::Alive { node: 1, incarnation: 3, entries: vec![] },
    ];
    for (delta, code) in
        deltas.iter().zip([CODE_DELTA_UPDATE, CODE_DELTA_SUSPECT, CODE_DELTA_ALIVE])
    {
        let bytes = delta.encode();
        assert_eq!(bytes[0], code);
        assert_eq!(&Delta::<u64>::decode(&bytes, &Limits::default()).unwrap(), delta);
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(
            Delta::<u64>::decode(&longer, &Limits::default()),
            Err(DecodeError::TrailingBytes(1))
        );
    }
}

#[test]
fn garbage_is_refused_with_typed_errors() {
    let limits = Limits::default();
    assert_eq!(
        Delta::<u64>::decode(&[0x2F], &limits),
        Err(DecodeError::UnknownTag { what: "registry delta", tag: 0x2F })
    );
    let mut r = Reader::new(&[0x2B]);
    assert_eq!(
        Message::<u64>::decode(&mut r, &limits),
        Err(DecodeError::UnknownTag { what: "registry message", tag: 0x2B })
    );
    // A huge list length is refused before allocating.
    let mut w = Writer::new();
    w.u8(CODE_SYNC_REQUEST);
    w.u32(u32::MAX);
    let bytes = w.finish();
    let mut r = Reader::new(&bytes);
    assert!(matches!(Message::<u64>::decode(&mut r, &limits), Err(DecodeError::TooLong { .. })));
    // A plausible length with too little input is refused too.
    let mut w = Writer::new();
    w.u8(CODE_SYNC_REQUEST);
    w.u32(100);
    w.u64(1);
    let bytes = w.finish();
    let mut r = Reader::new(&bytes);
    assert!(matches!(Message::<u64>::decode(&mut r, &limits), Err(DecodeError::Truncated { .. })));
    // Empty service name, unknown owner state, oversized metadata.
    let mut w = Writer::new();
    w.short_str("");
    w.u64(1);
    Value::Tombstone { stamp: Hlc::ZERO, reason: UnregisterReason::Unregistered }.encode(&mut w);
    let bytes = w.finish();
    assert!(matches!(
        EntryUpdate::decode(&mut Reader::new(&bytes), &limits),
        Err(DecodeError::Invalid { what: "service name", .. })
    ));
    assert!(matches!(
        OwnerStatus::decode(&mut Reader::new(&[0, 0, 0, 0, 0, 0, 0, 1, 3]), &limits),
        Err(DecodeError::UnknownTag { what: "owner state", tag: 3 })
    ));
    let small = Limits { payload_size_max: 2, ..Limits::default() };
    let mut w = Writer::new();
    live(b"abc", 1, 1).encode(&mut w);
    let bytes = w.finish();
    assert!(matches!(
        Value::decode(&mut Reader::new(&bytes), &small),
        Err(DecodeError::TooLong { .. })
    ));
    assert!(matches!(
        Delta::<u64>::decode(&[0x21; 100], &Limits { frame_size_max: 10, ..Limits::default() }),
        Err(DecodeError::FrameTooLarge { len: 100, len_max: 10 })
    ));
}

// ---- hostile input -------------------------------------------------------------------------

#[test]
fn an_incarnation_beyond_the_wall_clock_is_refused() {
    // Incarnations start at a wall time; `u64::MAX` would leave the owner unable to refute.
    let mut a = node(A);
    deliver(&mut a, at(0, 5_000), update(B, 10, vec![entry("web", 1, live(b"", 4_000, 0))]));
    let outs =
        deliver(&mut a, at(1, 5_000), Delta::Suspect { node: B, incarnation: u64::MAX }.encode());
    assert_eq!(outs, vec![]);
    assert_eq!(a.owner_status(&B), Some(OwnerStatus::alive(10)));
    assert_eq!(a.stats().statuses_refused, 1);
    // The same about ourselves: no refutation to u64::MAX.
    let outs =
        deliver(&mut a, at(2, 5_000), Delta::Suspect { node: A, incarnation: u64::MAX }.encode());
    assert_eq!(outs, vec![]);
    assert_eq!(a.stats().refutations_sent, 0);
}

#[test]
fn a_bare_verdict_about_an_unknown_owner_stores_nothing_and_arms_nothing() {
    let mut a = node(A);
    let outs =
        deliver(&mut a, at(0, 5_000), Delta::Suspect { node: 77u64, incarnation: 10 }.encode());
    assert_eq!(outs, vec![], "no record, no suspicion timer");
    assert_eq!(a.owner_status(&77), None);
    assert_eq!(a.stats().statuses_refused, 1);
}

#[test]
fn remote_entries_are_bounded_per_owner_and_by_metadata_size() {
    let config = Config { services_local_max: 2, meta_size_max: 8, ..Config::default() };
    let mut a = node_with(A, config);
    let entries = (0..6).map(|i| entry("svc", i, live(b"m", 4_000, 0))).collect();
    deliver(&mut a, at(0, 5_000), update(B, 10, entries));
    assert_eq!(a.lookup("svc").len(), 4, "entries_per_owner_max = 2 × services_local_max");
    assert_eq!(a.stats().entries_refused, 2);
    let big = entry("big", 1, live(b"0123456789", 4_000, 0));
    deliver(&mut a, at(1, 5_000), update(C, 10, vec![big]));
    assert!(a.lookup("big").is_empty(), "metadata over meta_size_max is refused");
    assert_eq!(a.stats().entries_refused, 3);
}

#[test]
fn new_owners_are_bounded_by_owners_max() {
    let config = Config { owners_max: 2, ..Config::default() };
    let mut a = node_with(A, config); // The local record is the first owner.
    deliver(&mut a, at(0, 5_000), update(B, 10, vec![entry("x", 1, live(b"", 4_000, 0))]));
    deliver(&mut a, at(0, 5_000), update(C, 10, vec![entry("y", 1, live(b"", 4_000, 0))]));
    assert_eq!(a.lookup("x").len(), 1);
    assert!(a.lookup("y").is_empty());
    assert_eq!(a.owner_status(&C), None);
}

#[test]
fn a_sync_request_naming_an_owner_many_times_is_answered_once() {
    let mut a = node(A);
    reg(&mut a, at(0, 5_000), "web", 1, b"");
    let outs = handle(
        &mut a,
        at(1, 5_000),
        InEvent::Message { from: B, message: Message::SyncRequest { owners: vec![A; 1000] } },
    );
    assert_eq!(outs.len(), 1, "one Sync: {outs:?}");
}

#[test]
fn replicas_that_differ_only_in_an_older_entry_heal_in_one_round() {
    // Same newest stamp and same count: only the entries hash tells these digests apart.
    let mut a = node(A);
    let mut b = node(B);
    let k2 = || entry("k2", 2, live(b"", 4_010, 0));
    deliver(
        &mut a,
        at(0, 5_000),
        update(C, 300, vec![entry("k1", 1, live(b"old", 4_003, 0)), k2()]),
    );
    deliver(
        &mut b,
        at(0, 5_000),
        update(C, 300, vec![entry("k1", 1, live(b"new", 4_005, 0)), k2()]),
    );
    handle(&mut a, at(0, 5_000), InEvent::PeerUp(B));
    let mut nodes = BTreeMap::from([(A, a), (B, b)]);
    let digest = handle(
        nodes.get_mut(&A).unwrap(),
        at(10_000, 10_000),
        InEvent::TimerExpired(Timer::AntiEntropy),
    );
    run(&mut nodes, at(10_000, 10_000), A, digest);
    let meta = |s: &State<u64>| s.lookup("k1")[0].meta.clone();
    assert_eq!(meta(&nodes[&A]), Bytes::from_static(b"new"));
    assert_eq!(nodes[&A].store.snapshot()[&C], nodes[&B].store.snapshot()[&C]);
}
