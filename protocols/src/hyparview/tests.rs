//! Exact input → output tests for every HyParView message path.

use super::*;
use crate::outbox::Outbox;
use crate::rng::Rng;

type Out = OutEvent<u32>;

fn state(me: u32) -> State<u32> {
    State::new(me, Config::default(), Rng::from_seed(u64::from(me) + 100))
}

fn run(s: &mut State<u32>, now_ms: u64, event: InEvent<u32>) -> Vec<Out> {
    let mut out = Outbox::new(1024);
    s.handle(now_ms, event, &mut out);
    out.take()
}

fn msg(from: u32, message: Message<u32>) -> InEvent<u32> {
    InEvent::Message { from, message }
}

fn send(to: u32, message: Message<u32>) -> Out {
    OutEvent::SendMessage { to, message }
}

fn emit(e: Event<u32>) -> Out {
    OutEvent::EmitEvent(e)
}

/// Outputs other than the periodic timers (whose first delay is a random phase).
fn non_periodic(out: Vec<Out>) -> Vec<Out> {
    out.into_iter()
        .filter(|o| {
            !matches!(
                o,
                OutEvent::ScheduleTimer {
                    timer: Timer::Shuffle | Timer::PassiveCleanup | Timer::Reconnect,
                    ..
                }
            )
        })
        .collect()
}

/// A node whose active view holds `peers` (each joined through it).
fn with_active(me: u32, peers: &[u32]) -> State<u32> {
    let mut s = state(me);
    for p in peers {
        run(&mut s, 0, msg(*p, Message::Join));
    }
    assert_eq!(s.active_view(), peers);
    s
}

fn add_passive(s: &mut State<u32>, now_ms: u64, peers: Vec<u32>) {
    // A shuffle reply is the plainest way in: it integrates every entry into the passive view.
    run(s, now_ms, msg(999, Message::ShuffleReply { peers }));
}

#[test]
fn first_join_at_contact_accepts_and_arms_periodic_timers() {
    let mut s = state(0);
    let out = run(&mut s, 0, msg(1, Message::Join));
    assert_eq!(
        non_periodic(out.clone()),
        vec![emit(Event::PeerUp(1)), send(1, Message::NeighborReply { accepted: true })]
    );
    let periodic: Vec<&Out> =
        out.iter().filter(|o| matches!(o, OutEvent::ScheduleTimer { .. })).collect();
    assert_eq!(periodic.len(), 3, "shuffle, passive cleanup and reconnect timers: {periodic:?}");
    assert!(
        out.contains(&OutEvent::ScheduleTimer { after_ms: 60_000, timer: Timer::PassiveCleanup })
    );
    assert!(out.contains(&OutEvent::ScheduleTimer { after_ms: 30_000, timer: Timer::Reconnect }));
    assert_eq!(s.stats().joins_received, 1);
}

#[test]
fn join_at_contact_forwards_a_walk_through_every_other_neighbour() {
    let mut s = with_active(0, &[1, 2]);
    let out = run(&mut s, 5, msg(3, Message::Join));
    assert_eq!(
        out,
        vec![
            emit(Event::PeerUp(3)),
            send(3, Message::NeighborReply { accepted: true }),
            send(1, Message::ForwardJoin { peer: 3, ttl: 6 }),
            send(2, Message::ForwardJoin { peer: 3, ttl: 6 }),
        ]
    );
}

#[test]
fn join_at_full_contact_declines_but_walks_through_every_neighbour() {
    // Deviation from the paper (docs/protocols/hyparview.md): a full contact does not evict for
    // the joiner; the joiner's links come from the walks, which keeps the contact's
    // neighbourhood stable.
    let mut s = with_active(0, &[1, 2, 3, 4, 5]);
    let out = run(&mut s, 7, msg(6, Message::Join));
    let mut expected = vec![send(6, Message::NeighborReply { accepted: false })];
    expected.extend((1..=5).map(|p| send(p, Message::ForwardJoin { peer: 6, ttl: 6 })));
    assert_eq!(out, expected);
    assert_eq!(s.active_view(), &[1, 2, 3, 4, 5]);
    assert_eq!(s.stats().evictions, 0);
}

#[test]
fn joiner_sends_join_with_backstop_and_emits_joined_on_accept() {
    let mut s = state(9);
    let out = non_periodic(run(&mut s, 0, InEvent::Join(vec![0, 9])));
    assert_eq!(
        out,
        vec![
            OutEvent::ScheduleTimer {
                after_ms: 30_000,
                timer: Timer::PendingTimeout { peer: 0, op_id: 0 }
            },
            send(0, Message::Join),
            OutEvent::ScheduleTimer { after_ms: 5_000, timer: Timer::ContactRetry },
        ],
        "self is filtered out of the contacts"
    );
    let out = run(&mut s, 20, msg(0, Message::NeighborReply { accepted: true }));
    assert_eq!(out, vec![emit(Event::PeerUp(0)), emit(Event::Joined)]);
    assert_eq!(s.pending_peers().count(), 0);
}

#[test]
fn a_declined_request_closes_its_connection_unless_the_peer_is_active() {
    // A full contact declines the JOIN: the joiner closes the connection the request opened
    // (the walks the contact started bring the links).
    let mut s = state(9);
    run(&mut s, 0, InEvent::Join(vec![0]));
    let out = non_periodic(run(&mut s, 20, msg(0, Message::NeighborReply { accepted: false })));
    assert!(out.contains(&OutEvent::DisconnectPeer(0)), "{out:?}");
    assert_eq!(s.pending_peers().count(), 0);
    // A decline from a peer that is an active neighbour (an answer overtaken by its own
    // NEIGHBOR request) leaves the link alone.
    let mut s = with_active(0, &[1]);
    let out = run(&mut s, 5, msg(1, Message::NeighborReply { accepted: false }));
    assert!(!out.contains(&OutEvent::DisconnectPeer(1)), "{out:?}");
    assert!(s.is_active(&1));
}

#[test]
fn contact_retry_rejoins_only_while_the_active_view_is_empty() {
    let mut s = state(9);
    run(&mut s, 0, InEvent::Join(vec![0]));
    // The contact never answered; the backstop fired and the retry timer re-sends JOIN.
    run(&mut s, 30_000, InEvent::TimerExpired(Timer::PendingTimeout { peer: 0, op_id: 0 }));
    let out = run(&mut s, 30_001, InEvent::TimerExpired(Timer::ContactRetry));
    assert_eq!(
        out,
        vec![
            OutEvent::ScheduleTimer {
                after_ms: 30_000,
                timer: Timer::PendingTimeout { peer: 0, op_id: 1 }
            },
            send(0, Message::Join),
            OutEvent::ScheduleTimer { after_ms: 5_000, timer: Timer::ContactRetry },
        ]
    );
    run(&mut s, 30_010, msg(0, Message::NeighborReply { accepted: true }));
    assert_eq!(run(&mut s, 35_001, InEvent::TimerExpired(Timer::ContactRetry)), vec![]);
}

#[test]
fn forward_join_with_ttl_zero_ends_the_walk_with_a_high_priority_neighbor_request() {
    let mut s = with_active(0, &[1, 2]);
    let out = run(&mut s, 1, msg(1, Message::ForwardJoin { peer: 7, ttl: 0 }));
    assert_eq!(
        out,
        vec![
            OutEvent::ScheduleTimer {
                after_ms: 30_000,
                timer: Timer::PendingTimeout { peer: 7, op_id: 0 }
            },
            send(7, Message::Neighbor { priority: Priority::High }),
        ]
    );
    // The joiner accepts; the link is then symmetric.
    let out = run(&mut s, 2, msg(7, Message::NeighborReply { accepted: true }));
    assert_eq!(out, vec![emit(Event::PeerUp(7))]);
    assert_eq!(s.active_view(), &[1, 2, 7]);
}

#[test]
fn forward_join_at_a_node_with_one_neighbour_ends_the_walk() {
    let mut s = with_active(0, &[1]);
    let out = run(&mut s, 1, msg(1, Message::ForwardJoin { peer: 7, ttl: 5 }));
    assert_eq!(out[1], send(7, Message::Neighbor { priority: Priority::High }));
}

/// The single `ForwardJoin` a full node forwards, checked to go to a neighbour other than the
/// sender and the joiner; returns (next hop, ttl).
fn forwarded(out: &[Out]) -> (u32, u8) {
    match out {
        [OutEvent::SendMessage { to, message: Message::ForwardJoin { peer: 7, ttl } }] => {
            (*to, *ttl)
        }
        other => panic!("expected one forwarded walk: {other:?}"),
    }
}

#[test]
fn forward_join_at_prwl_adds_to_passive_and_keeps_walking() {
    let mut s = with_active(0, &[1, 2, 3, 4, 5]);
    let out = run(&mut s, 1, msg(1, Message::ForwardJoin { peer: 7, ttl: 3 }));
    let (next, ttl) = forwarded(&out);
    assert!((2..=5).contains(&next), "never back to the sender: {next}");
    assert_eq!(ttl, 2);
    assert!(s.passive_entry(&7).is_some());
}

#[test]
fn forward_join_above_prwl_walks_without_touching_the_passive_view() {
    let mut s = with_active(0, &[1, 2, 3, 4, 5]);
    let out = run(&mut s, 1, msg(2, Message::ForwardJoin { peer: 7, ttl: 5 }));
    let (next, ttl) = forwarded(&out);
    assert!([1, 3, 4, 5].contains(&next));
    assert_eq!(ttl, 4);
    assert!(s.passive_entry(&7).is_none());
}

#[test]
fn forward_join_ends_early_at_a_node_with_room_but_not_on_the_first_hop() {
    // First hop (ttl == arwl): keep walking even with room, so walks leave the contact's
    // neighbourhood.
    let mut s = with_active(0, &[1, 2]);
    let out = run(&mut s, 1, msg(1, Message::ForwardJoin { peer: 7, ttl: 6 }));
    assert_eq!(out, vec![send(2, Message::ForwardJoin { peer: 7, ttl: 5 })]);
    // Later hops end at a node with a free slot, which fills the hole instead of evicting.
    let out = run(&mut s, 2, msg(1, Message::ForwardJoin { peer: 7, ttl: 5 }));
    assert_eq!(
        out,
        vec![
            OutEvent::ScheduleTimer {
                after_ms: 30_000,
                timer: Timer::PendingTimeout { peer: 7, op_id: 0 }
            },
            send(7, Message::Neighbor { priority: Priority::High }),
        ]
    );
}

#[test]
fn forward_join_about_ourselves_is_ignored() {
    let mut s = with_active(0, &[1, 2]);
    assert_eq!(run(&mut s, 1, msg(1, Message::ForwardJoin { peer: 0, ttl: 0 })), vec![]);
}

#[test]
fn low_priority_neighbor_is_accepted_with_room_and_rejected_when_full() {
    let mut s = with_active(0, &[1, 2, 3, 4]);
    let out = run(&mut s, 1, msg(5, Message::Neighbor { priority: Priority::Low }));
    assert_eq!(
        out,
        vec![emit(Event::PeerUp(5)), send(5, Message::NeighborReply { accepted: true })]
    );
    let out = run(&mut s, 2, msg(6, Message::Neighbor { priority: Priority::Low }));
    assert_eq!(out, vec![send(6, Message::NeighborReply { accepted: false })]);
    assert_eq!(s.active_view(), &[1, 2, 3, 4, 5]);
    assert_eq!(s.stats().neighbor_requests_rejected, 1);
}

#[test]
fn high_priority_neighbor_is_accepted_even_when_full() {
    let mut s = with_active(0, &[1, 2, 3, 4, 5]);
    let out = run(&mut s, 1, msg(6, Message::Neighbor { priority: Priority::High }));
    assert!(matches!(
        out[0],
        OutEvent::SendMessage { message: Message::Disconnect { leaving: false }, .. }
    ));
    assert_eq!(out[3], emit(Event::PeerUp(6)));
    assert_eq!(out[4], send(6, Message::NeighborReply { accepted: true }));
    assert!(s.is_active(&6));
}

#[test]
fn rejected_promotion_defers_the_candidate_and_tries_the_next() {
    let mut s = with_active(0, &[1]);
    add_passive(&mut s, 0, vec![10]);
    // Link to 1 fails: 1 goes to passive with a failure; 10 is the only eligible candidate
    // and is asked with high priority because the active view is now empty.
    let out = run(&mut s, 100, InEvent::PeerFailed(1));
    assert_eq!(
        out,
        vec![
            emit(Event::PeerDown(1, DownReason::Failed)),
            OutEvent::ScheduleTimer {
                after_ms: 30_000,
                timer: Timer::PendingTimeout { peer: 10, op_id: 0 }
            },
            send(10, Message::Neighbor { priority: Priority::High }),
            // 1 is in backoff until 2 s from now: retry promotion then.
            OutEvent::ScheduleTimer { after_ms: 2_000, timer: Timer::Promote },
        ]
    );
    let entry = s.passive_entry(&1).expect("failed active peer kept in passive");
    assert_eq!(entry.fail_count, 1);
    assert_eq!(entry.backoff_until_ms, 100 + 2_000, "base_backoff_ms · 2^1");
    // 10 rejects: its connection is closed (it carried only the request), it is deferred,
    // nobody else is eligible yet, a promote retry is armed.
    let out = run(&mut s, 110, msg(10, Message::NeighborReply { accepted: false }));
    assert_eq!(out, vec![OutEvent::DisconnectPeer(10)]);
    assert_eq!(s.passive_entry(&10).unwrap().backoff_until_ms, 110 + 1_000);
    // When the retry fires after the backoff, a candidate is asked again.
    let out = run(&mut s, 1_200, InEvent::TimerExpired(Timer::Promote));
    assert!(out.contains(&send(10, Message::Neighbor { priority: Priority::High })), "{out:?}");
}

#[test]
fn failures_back_off_exponentially_and_drop_the_entry_at_max_fail_count() {
    let mut s = with_active(0, &[1]);
    run(&mut s, 0, InEvent::PeerFailed(1));
    let mut now = 0;
    for n in 2..=4u8 {
        now += 100_000;
        run(&mut s, now, InEvent::PeerFailed(1));
        let e = s.passive_entry(&1).expect("still kept");
        assert_eq!(e.fail_count, n);
        assert_eq!(e.backoff_until_ms, now + 1_000 * (1 << n));
    }
    run(&mut s, now + 1, InEvent::PeerFailed(1));
    assert!(s.passive_entry(&1).is_none(), "dropped at the fifth failure");
    assert_eq!(s.failed_peers().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(s.stats().passive_dropped_failed, 1);
}

#[test]
fn reconnect_probes_a_failed_peer_with_high_priority() {
    let mut s = with_active(0, &[1, 2]);
    for t in 0..5 {
        run(&mut s, t, InEvent::PeerFailed(1));
    }
    let out = run(&mut s, 40_000, InEvent::TimerExpired(Timer::Reconnect));
    assert_eq!(
        out,
        vec![
            OutEvent::ScheduleTimer {
                after_ms: 30_000,
                timer: Timer::PendingTimeout { peer: 1, op_id: out_op(&out) }
            },
            send(1, Message::Neighbor { priority: Priority::High }),
            OutEvent::ScheduleTimer { after_ms: 30_000, timer: Timer::Reconnect },
        ]
    );
    assert_eq!(s.stats().reconnect_probes, 1);
}

fn out_op(out: &[Out]) -> u64 {
    out.iter()
        .find_map(|o| match o {
            OutEvent::ScheduleTimer { timer: Timer::PendingTimeout { op_id, .. }, .. } => {
                Some(*op_id)
            }
            _ => None,
        })
        .expect("a pending backstop")
}

#[test]
fn backstop_fires_only_for_its_own_operation() {
    let mut s = with_active(0, &[1, 2]);
    run(&mut s, 0, msg(1, Message::ForwardJoin { peer: 7, ttl: 0 })); // op 0 towards 7
    add_passive(&mut s, 0, vec![7]);
    // 7 answers with a rejection, then a new request towards 7 starts (op 1).
    run(&mut s, 10, msg(7, Message::NeighborReply { accepted: false }));
    run(&mut s, 20, msg(1, Message::ForwardJoin { peer: 7, ttl: 0 }));
    assert_eq!(s.pending_peers().copied().collect::<Vec<_>>(), vec![7]);
    // The stale backstop of op 0 must not cancel op 1.
    assert_eq!(
        run(&mut s, 30_000, InEvent::TimerExpired(Timer::PendingTimeout { peer: 7, op_id: 0 })),
        vec![]
    );
    assert_eq!(s.pending_peers().count(), 1);
    assert_eq!(s.stats().pending_timeouts, 0);
    // Its own backstop does: the attempt counts as a failure.
    run(&mut s, 30_020, InEvent::TimerExpired(Timer::PendingTimeout { peer: 7, op_id: 1 }));
    assert_eq!(s.pending_peers().count(), 0);
    assert_eq!(s.stats().pending_timeouts, 1);
    assert_eq!(s.passive_entry(&7).unwrap().fail_count, 1);
}

#[test]
fn disconnect_moves_the_peer_to_passive_and_promotes_another() {
    let mut s = with_active(0, &[1, 2]);
    add_passive(&mut s, 0, vec![10]);
    let out = run(&mut s, 50, msg(1, Message::Disconnect { leaving: false }));
    assert_eq!(
        out,
        vec![
            OutEvent::DisconnectPeer(1),
            emit(Event::PeerDown(1, DownReason::Disconnected)),
            OutEvent::ScheduleTimer {
                after_ms: 30_000,
                timer: Timer::PendingTimeout { peer: 10, op_id: 0 }
            },
            send(10, Message::Neighbor { priority: Priority::Low }),
            OutEvent::ScheduleTimer { after_ms: 1_000, timer: Timer::Promote },
        ]
    );
    assert!(s.passive_entry(&1).is_some(), "graceful disconnect keeps the peer as a candidate");
}

#[test]
fn disconnect_from_a_leaving_peer_forgets_it() {
    let mut s = with_active(0, &[1, 2]);
    let out = run(&mut s, 50, msg(1, Message::Disconnect { leaving: true }));
    assert_eq!(out[..2], [OutEvent::DisconnectPeer(1), emit(Event::PeerDown(1, DownReason::Left))]);
    assert!(s.passive_entry(&1).is_none());
}

#[test]
fn unsolicited_accept_when_full_is_undone() {
    let mut s = with_active(0, &[1, 2, 3, 4, 5]);
    let out = run(&mut s, 1, msg(8, Message::NeighborReply { accepted: true }));
    assert_eq!(
        out,
        vec![send(8, Message::Disconnect { leaving: false }), OutEvent::DisconnectPeer(8)]
    );
    assert!(!s.is_active(&8));
}

#[test]
fn shuffle_sends_self_plus_active_and_passive_samples() {
    let mut s = with_active(0, &[1, 2, 3, 4]);
    add_passive(&mut s, 0, (10..20).collect());
    let out = run(&mut s, 10_000, InEvent::TimerExpired(Timer::Shuffle));
    let OutEvent::SendMessage { to, message: Message::Shuffle { origin, ttl, peers } } =
        out[0].clone()
    else {
        panic!("expected a shuffle: {out:?}")
    };
    assert!((1..=4).contains(&to));
    assert_eq!((origin, ttl), (0, 6));
    assert_eq!(peers.len(), 8, "self + 3 active + 4 passive");
    assert_eq!(peers[0], 0);
    assert!(peers[1..4].iter().all(|p| (1..=4).contains(p) && *p != to));
    assert!(peers[4..].iter().all(|p| (10..20).contains(p)));
    assert_eq!(out[1], OutEvent::ScheduleTimer { after_ms: 10_000, timer: Timer::Shuffle });
}

#[test]
fn shuffle_walk_is_forwarded_while_ttl_remains() {
    let mut s = with_active(0, &[1, 2]);
    let out = run(&mut s, 1, msg(1, Message::Shuffle { origin: 9, ttl: 4, peers: vec![9, 30] }));
    assert_eq!(out, vec![send(2, Message::Shuffle { origin: 9, ttl: 3, peers: vec![9, 30] })]);
}

#[test]
fn shuffle_walk_end_replies_to_the_origin_and_integrates() {
    let mut s = with_active(0, &[1, 2]);
    add_passive(&mut s, 0, vec![40, 41, 42]);
    let out =
        run(&mut s, 1, msg(1, Message::Shuffle { origin: 9, ttl: 1, peers: vec![9, 30, 0, 2] }));
    let OutEvent::SendMessage { to: 9, message: Message::ShuffleReply { peers } } = out[0].clone()
    else {
        panic!("expected a reply to the origin: {out:?}")
    };
    assert_eq!(peers.len(), 3, "as many as our passive view can give, at most as many as received");
    assert!(peers.iter().all(|p| [40, 41, 42].contains(p)));
    assert_eq!(out[1], OutEvent::DisconnectPeer(9), "the reply link is temporary");
    assert!(s.passive_entry(&9).is_some() && s.passive_entry(&30).is_some());
    assert!(s.passive_entry(&0).is_none(), "never self");
    assert!(s.passive_entry(&2).is_none(), "never an active peer");
}

#[test]
fn shuffle_reply_integration_prefers_evicting_what_was_sent() {
    let config = Config { passive_size: 4, ..Config::default() };
    let mut s = State::new(0, config, Rng::from_seed(5));
    run(&mut s, 0, msg(1, Message::Join));
    add_passive(&mut s, 0, vec![10, 11, 12, 13]);
    let out = run(&mut s, 10_000, InEvent::TimerExpired(Timer::Shuffle));
    let OutEvent::SendMessage { message: Message::Shuffle { peers, .. }, .. } = out[0].clone()
    else {
        panic!()
    };
    let sent: Vec<u32> = peers[1..].to_vec();
    run(&mut s, 10_050, msg(1, Message::ShuffleReply { peers: vec![50, 51] }));
    let passive: Vec<u32> = s.passive_view().iter().map(|e| e.peer).collect();
    assert!(passive.contains(&50) && passive.contains(&51));
    let kept_unsent =
        [10, 11, 12, 13].iter().filter(|p| !sent.contains(p)).all(|p| passive.contains(p));
    assert!(kept_unsent, "entries not sent away survive: passive {passive:?}, sent {sent:?}");
}

#[test]
fn passive_entries_age_out_on_the_local_clock() {
    let mut s = with_active(0, &[1]);
    add_passive(&mut s, 0, vec![10]);
    add_passive(&mut s, 200_000, vec![11]);
    run(&mut s, 300_001, InEvent::TimerExpired(Timer::PassiveCleanup));
    assert!(s.passive_entry(&10).is_none(), "older than passive_max_age_ms");
    assert!(s.passive_entry(&11).is_some());
    assert_eq!(s.stats().passive_dropped_aged, 1);
}

#[test]
fn leave_disconnects_everyone_and_stays_left_until_join() {
    let mut s = with_active(0, &[1, 2]);
    let out = run(&mut s, 1, InEvent::Leave);
    assert_eq!(
        out,
        vec![
            send(1, Message::Disconnect { leaving: true }),
            OutEvent::DisconnectPeer(1),
            emit(Event::PeerDown(1, DownReason::LocalLeave)),
            send(2, Message::Disconnect { leaving: true }),
            OutEvent::DisconnectPeer(2),
            emit(Event::PeerDown(2, DownReason::LocalLeave)),
            emit(Event::Left),
        ]
    );
    assert!(s.has_left());
    assert_eq!(
        run(&mut s, 2, msg(3, Message::Neighbor { priority: Priority::High })),
        vec![send(3, Message::NeighborReply { accepted: false })]
    );
    assert_eq!(
        run(&mut s, 3, msg(3, Message::Join)),
        vec![send(3, Message::NeighborReply { accepted: false })]
    );
    assert_eq!(run(&mut s, 4, InEvent::TimerExpired(Timer::Shuffle)), vec![]);
    let out = non_periodic(run(&mut s, 5, InEvent::Join(vec![1])));
    assert!(out.contains(&send(1, Message::Join)));
    assert!(!s.has_left());
}

#[test]
fn same_seed_same_outputs() {
    let script = |s: &mut State<u32>| {
        let mut all = Vec::new();
        for p in 1..=7 {
            all.extend(run(s, u64::from(p), msg(p, Message::Join)));
        }
        all.extend(run(s, 100, InEvent::TimerExpired(Timer::Shuffle)));
        all.extend(run(s, 200, InEvent::PeerFailed(3)));
        all
    };
    assert_eq!(script(&mut state(0)), script(&mut state(0)));
}

#[test]
fn config_validation_names_the_key() {
    let bad = Config { prwl: 7, ..Config::default() };
    assert_eq!(bad.validate().unwrap_err().key, "prwl");
    let bad = Config { active_size: 0, ..Config::default() };
    assert_eq!(bad.validate().unwrap_err().key, "active_size");
    assert!(Config::default().validate().is_ok());
}

#[test]
fn reconnect_also_probes_passive_peers_with_a_failure_record() {
    // After a partition heals, a side may have stopped trying the other side before dropping
    // it into the failed list: passive entries with failures whose backoff expired are probed
    // too.
    let mut s = with_active(0, &[1, 2]);
    run(&mut s, 0, InEvent::PeerFailed(1)); // 1: passive, fail_count 1, backoff until 2 s
    assert_eq!(s.failed_peers().count(), 0);
    let out = run(&mut s, 40_000, InEvent::TimerExpired(Timer::Reconnect));
    assert!(out.contains(&send(1, Message::Neighbor { priority: Priority::High })), "{out:?}");
    assert_eq!(s.stats().reconnect_probes, 1);
}

#[test]
fn walk_lengths_and_samples_from_the_network_are_clamped() {
    let mut s = with_active(0, &[1, 2, 3, 4, 5]);
    // A FORWARD_JOIN claiming a TTL of 255 walks on with at most arwl − 1.
    let out = run(&mut s, 1, msg(1, Message::ForwardJoin { peer: 7, ttl: 255 }));
    assert_eq!(forwarded(&out).1, 5);
    // A SHUFFLE claiming a TTL of 255 and carrying 100 entries is forwarded with at most
    // shuffle_ttl − 1 and shuffle_length entries.
    let peers: Vec<u32> = (100..200).collect();
    let out = run(&mut s, 2, msg(1, Message::Shuffle { origin: 9, ttl: 255, peers }));
    let [OutEvent::SendMessage { message: Message::Shuffle { ttl, peers, .. }, .. }] = &out[..]
    else {
        panic!("expected one forwarded shuffle: {out:?}")
    };
    assert_eq!(*ttl, 5);
    assert_eq!(peers.len(), 8);
    // A SHUFFLE_REPLY integrates at most shuffle_length entries.
    run(&mut s, 3, msg(9, Message::ShuffleReply { peers: (300..400).collect() }));
    assert_eq!(s.passive_view().len(), 8);
}

#[test]
fn pending_requests_are_bounded_against_forward_join_floods() {
    let mut s = with_active(0, &[1]);
    // Each FORWARD_JOIN with TTL 0 makes us ask a new peer; a flood must not grow without bound.
    for peer in 100..200 {
        run(&mut s, 1, msg(1, Message::ForwardJoin { peer, ttl: 0 }));
    }
    assert_eq!(s.pending_peers().count(), 4 * 5, "4 per active slot, no contacts");
    assert_eq!(s.stats().neighbor_requests_refused, 100 - 20);
}
