//! Property tests: the merge is a join (commutative, associative, idempotent, monotone) and
//! replicas that exchanged everything agree on what is visible.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::crdt::Store;
use super::message::{OwnerState, OwnerStatus, UnregisterReason, Value};
use super::*;
use crate::hlc::Hlc;
use crate::outbox::Outbox;
use crate::rng::Rng;
use crate::time::Now;
use crate::wire::Limits;

fn value() -> impl Strategy<Value = Value> {
    let stamp = (0u64..6, 0u32..3).prop_map(|(w, l)| Hlc::new(w, l));
    prop_oneof![
        (stamp.clone(), prop::sample::select(vec![&b""[..], &b"a"[..], &b"b"[..]]))
            .prop_map(|(stamp, meta)| Value::Registered { meta: Bytes::from_static(meta), stamp }),
        (stamp, any::<bool>()).prop_map(|(stamp, dropped)| Value::Tombstone {
            stamp,
            reason: if dropped {
                UnregisterReason::HandleDropped
            } else {
                UnregisterReason::Unregistered
            },
        }),
    ]
}

fn status() -> impl Strategy<Value = OwnerStatus> {
    (0u64..4, prop::sample::select(vec![OwnerState::Alive, OwnerState::Suspect, OwnerState::Dead]))
        .prop_map(|(incarnation, state)| OwnerStatus { incarnation, state })
}

/// Small stores over 3 owners, 2 names, 2 ids, so keys collide often.
fn store() -> impl Strategy<Value = Store<u8>> {
    let op = prop_oneof![
        (0u8..3, status()).prop_map(|(o, s)| (o, Some(s), None)),
        (0u8..3, prop::sample::select(vec!["x", "y"]), 0u64..2, value())
            .prop_map(|(o, n, id, v)| (o, None, Some((n, id, v)))),
    ];
    prop::collection::vec(op, 0..12).prop_map(|ops| {
        let mut s = Store::default();
        for (owner, status, entry) in ops {
            if let Some(status) = status {
                s.merge_status(&owner, status);
            }
            if let Some((name, reg_id, value)) = entry {
                s.merge_entry(&owner, name, reg_id, value, 0);
            }
        }
        s
    })
}

fn merged(a: &Store<u8>, b: &Store<u8>) -> Store<u8> {
    let mut out = a.clone();
    out.merge_from(b, 0);
    out
}

proptest! {
    #[test]
    fn merge_is_commutative(a in store(), b in store()) {
        prop_assert_eq!(merged(&a, &b).snapshot(), merged(&b, &a).snapshot());
    }

    #[test]
    fn merge_is_associative(a in store(), b in store(), c in store()) {
        prop_assert_eq!(
            merged(&merged(&a, &b), &c).snapshot(),
            merged(&a, &merged(&b, &c)).snapshot()
        );
    }

    #[test]
    fn merge_is_idempotent(a in store(), b in store()) {
        prop_assert_eq!(merged(&a, &a).snapshot(), a.snapshot());
        let ab = merged(&a, &b);
        prop_assert_eq!(merged(&ab, &b).snapshot(), ab.snapshot());
    }

    #[test]
    fn merge_is_monotone_and_keeps_the_index(a in store(), b in store()) {
        let ab = merged(&a, &b);
        prop_assert!(ab.index_is_consistent());
        let m = ab.snapshot();
        for side in [a.snapshot(), b.snapshot()] {
            for (owner, (status, entries)) in side {
                let (merged_status, merged_entries) = &m[&owner];
                prop_assert!(*merged_status >= status);
                for (key, value) in entries {
                    prop_assert!(merged_entries[&key] >= value);
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        node: usize,
        name: &'static str,
        reg_id: u64,
    },
    Unregister {
        node: usize,
        name: &'static str,
        reg_id: u64,
        dropped: bool,
    },
    /// `observer` sees a failed link to the other node; optionally let the timer fire.
    Fail {
        observer: usize,
        fire: bool,
    },
    /// Deliver every pending broadcast of `node` to the other one.
    Flush {
        node: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let name = prop::sample::select(vec!["a", "b", "c"]);
    prop_oneof![
        4 => (0usize..2, name.clone(), 0u64..3)
            .prop_map(|(node, name, reg_id)| Op::Register { node, name, reg_id }),
        2 => (0usize..2, name, 0u64..3, any::<bool>())
            .prop_map(|(node, name, reg_id, dropped)| Op::Unregister { node, name, reg_id, dropped }),
        1 => (0usize..2, any::<bool>()).prop_map(|(observer, fire)| Op::Fail { observer, fire }),
        2 => (0usize..2).prop_map(|node| Op::Flush { node }),
    ]
}

type Replica = (State<u64>, Vec<OutEvent<u64>>);

fn visible(s: &State<u64>) -> Vec<ServiceEntry<u64>> {
    s.list_services().iter().flat_map(|n| s.lookup(n)).collect()
}

/// Feeds outputs of `from` to `to` (broadcasts as deliveries, messages addressed to `to`) until
/// both are quiet; timers are dropped.
fn pump(nodes: &mut [Replica; 2], now: Now) {
    loop {
        let mut moved = false;
        for from in 0..2 {
            let to = 1 - from;
            let pending = std::mem::take(&mut nodes[from].1);
            let from_id = *nodes[from].0.local();
            for o in pending {
                let input = match o {
                    OutEvent::Broadcast(payload) => InEvent::Delivered { payload },
                    OutEvent::SendMessage { message, .. } => {
                        InEvent::Message { from: from_id, message }
                    }
                    _ => continue,
                };
                moved = true;
                let mut out = Outbox::default();
                nodes[to].0.handle(now, input, &mut out);
                nodes[to].1.extend(out.take());
            }
        }
        if !moved {
            return;
        }
    }
}

proptest! {
    #[test]
    fn replicas_converge_after_a_full_exchange(ops in prop::collection::vec(op(), 0..40)) {
        let mut nodes: [Replica; 2] = [
            (State::new(1, 10, Config::default(), Rng::from_seed(1)), Vec::new()),
            (State::new(2, 20, Config::default(), Rng::from_seed(2)), Vec::new()),
        ];
        for (step, op) in ops.into_iter().enumerate() {
            let now = Now { mono_ms: step as u64, wall_ms: 1_000 + step as u64 / 3 };
            let mut out = Outbox::default();
            match op {
                Op::Register { node, name, reg_id } => {
                    let _ = nodes[node].0.register(now, name, reg_id, Bytes::new(), &mut out);
                    nodes[node].1.extend(out.take());
                }
                Op::Unregister { node, name, reg_id, dropped } => {
                    let reason = if dropped {
                        UnregisterReason::HandleDropped
                    } else {
                        UnregisterReason::Unregistered
                    };
                    let _ = nodes[node].0.unregister(now, name, reg_id, reason, &mut out);
                    nodes[node].1.extend(out.take());
                }
                Op::Fail { observer, fire } => {
                    let peer = *nodes[1 - observer].0.local();
                    nodes[observer].0.handle(now, InEvent::PeerDown { peer, failed: true }, &mut out);
                    let mut outs = out.take();
                    if fire {
                        let timers: Vec<_> = outs.iter().filter_map(|o| match o {
                            OutEvent::ScheduleTimer { timer, .. } => Some(timer.clone()),
                            _ => None,
                        }).collect();
                        for timer in timers {
                            nodes[observer].0.handle(now, InEvent::TimerExpired(timer), &mut out);
                            outs.extend(out.take());
                        }
                    }
                    // The suspicion broadcast is lost (the link failed); anti-entropy must
                    // still reconcile it.
                    outs.retain(|o| !matches!(o, OutEvent::Broadcast(_)));
                    nodes[observer].1.extend(outs);
                }
                Op::Flush { node } => {
                    let to = 1 - node;
                    let now2 = now;
                    let pending: Vec<_> = nodes[node].1.drain(..).collect();
                    for o in pending {
                        if let OutEvent::Broadcast(payload) = o {
                            nodes[to].0.handle(now2, InEvent::Delivered { payload }, &mut out);
                            nodes[to].1.extend(out.take().into_iter().filter(|o| matches!(o, OutEvent::Broadcast(_))));
                        }
                    }
                }
            }
        }
        // Drop whatever is still in flight, then one full anti-entropy exchange each way.
        for n in nodes.iter_mut() {
            n.1.clear();
        }
        let now = Now { mono_ms: 10_000, wall_ms: 2_000 };
        for starter in 0..2 {
            let peer = *nodes[1 - starter].0.local();
            let mut out = Outbox::default();
            nodes[starter].0.handle(now, InEvent::PeerUp(peer), &mut out);
            nodes[starter].1.extend(out.take());
            pump(&mut nodes, now);
        }
        prop_assert_eq!(visible(&nodes[0].0), visible(&nodes[1].0));
        // Anti-entropy exchanges owners that have entries; the status of an owner without any
        // entry hides nothing and is deliberately not replicated.
        let with_entries = |s: &State<u64>| {
            let mut snap = s.store.snapshot();
            snap.retain(|_, (_, entries)| !entries.is_empty());
            snap
        };
        prop_assert_eq!(with_entries(&nodes[0].0), with_entries(&nodes[1].0));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Delta::<u64>::decode(&bytes, &Limits::default());
        let mut r = crate::wire::Reader::new(&bytes);
        let _ = <Message<u64> as crate::wire::Wire>::decode(&mut r, &Limits::default());
    }
}

#[test]
fn merge_laws_hold_for_a_hand_picked_tie() {
    // Two different values with the same stamp (never written by a correct owner) still merge
    // deterministically.
    let mut a: Store<u8> = Store::default();
    let mut b: Store<u8> = Store::default();
    let stamp = Hlc::new(1, 0);
    a.merge_entry(&1, "x", 0, Value::Registered { meta: Bytes::from_static(b"a"), stamp }, 0);
    b.merge_entry(
        &1,
        "x",
        0,
        Value::Tombstone { stamp, reason: UnregisterReason::Unregistered },
        0,
    );
    assert_eq!(merged(&a, &b).snapshot(), merged(&b, &a).snapshot());
    let snapshot: BTreeMap<_, _> = merged(&a, &b).snapshot();
    assert!(!snapshot[&1].1[&("x".to_owned(), 0)].is_registered());
}
