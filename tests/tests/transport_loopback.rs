//! The QUIC transport over real sockets on loopback: two nodes (each a `Transport` with its
//! own shards and SO_REUSEPORT group) in one test process. Waits are for events, with
//! generous deadlines; nothing sleeps to synchronise.

mod loopback;

use std::time::{Duration, Instant};

use loopback::{config, count, messages, Node, DEADLINE};
use shoal_protocols::NodeName;
use shoal_transport::endpoint::{DownReason, Event, Lane, MigrationOutcome};
use shoal_transport::shard::{StartError, Transport};
use shoal_transport::sys::SocketError;

#[test]
fn messages_both_ways_in_order_and_steady_traffic_stays_on_the_owning_shard() {
    let mut a = Node::start(config("a@loop", 2));
    let mut b = Node::start(config("b@loop", 2));
    for i in 0..500u32 {
        a.send(&b, Lane::Data(42), &i.to_be_bytes());
    }
    b.wait("500 messages from a", |seen| messages(seen).len() == 500);
    for i in 0..300u32 {
        b.send(&a, Lane::Data(9), &i.to_be_bytes());
    }
    a.wait("300 messages from b", |seen| messages(seen).len() == 300);
    let got: Vec<u32> = b
        .messages()
        .iter()
        .map(|payload| u32::from_be_bytes(payload[..].try_into().expect("4 bytes")))
        .collect();
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    let got: Vec<u32> = a
        .messages()
        .iter()
        .map(|payload| u32::from_be_bytes(payload[..].try_into().expect("4 bytes")))
        .collect();
    assert_eq!(got, (0..300).collect::<Vec<_>>());
    // One connection for the pair, and every datagram was steered to its owner by the kernel.
    assert_eq!(a.transport.handle().metrics().connections, 1);
    assert_eq!(b.transport.handle().metrics().connections, 1);
    assert_eq!(a.transport.handle().metrics().foreign_dcid_handoffs, 0);
    assert_eq!(b.transport.handle().metrics().foreign_dcid_handoffs, 0);
    let owner = a.transport.handle().owner_of(&b.name).expect("a holds a connection to b");
    assert!(
        a.transport.handle().shard_metrics(owner).packets_in > 0,
        "the owner shard received the replies"
    );
}

#[test]
fn shards_that_spin_before_parking_exchange_messages_and_stop() {
    // The latency setting (glommio's spin_before_park) on one side only: the shard spins
    // after each burst instead of parking, and must still serve traffic and shut down.
    let mut spinning = config("spin@loop", 1);
    spinning.spin_before_park_us = 200;
    let mut a = Node::start(spinning);
    let mut b = Node::start(config("park@loop", 1));
    for round in 0..3u32 {
        a.send(&b, Lane::Data(1), &round.to_be_bytes());
        b.wait("a's message", |seen| messages(seen).len() == round as usize + 1);
        b.send(&a, Lane::Data(1), &round.to_be_bytes());
        a.wait("b's reply", |seen| messages(seen).len() == round as usize + 1);
    }
    drop(a);
    b.wait("a's link down at its shutdown", |seen| {
        count(seen, |event| matches!(event, Event::LinkDown { .. })) == 1
    });
}

#[test]
fn oversized_messages_are_refused_and_counted() {
    let mut small = config("small@loop", 1);
    small.endpoint.frame_bytes_max = 1024;
    let mut a = Node::start(small);
    let b = Node::start(config("big@loop", 1));
    a.send(&b, Lane::Control, &[0u8; 4096]);
    a.send(&b, Lane::Control, b"fits");
    // The refused message never dialled; the fitting one did.
    a.wait("link up", |seen| count(seen, |event| matches!(event, Event::LinkUp { .. })) == 1);
    assert_eq!(a.transport.handle().metrics().messages_out, 1);
}

#[test]
fn simultaneous_dials_end_with_one_connection() {
    let mut a = Node::start(config("a@sim", 2));
    let mut b = Node::start(config("b@sim", 2));
    a.send(&b, Lane::Data(1), b"from a");
    b.send(&a, Lane::Data(1), b"from b");
    a.wait("b's message", |seen| messages(seen).len() == 1);
    b.wait("a's message", |seen| messages(seen).len() == 1);
    let deadline = Instant::now() + DEADLINE;
    while a.transport.handle().metrics().connections != 1
        || b.transport.handle().metrics().connections != 1
    {
        assert!(Instant::now() < deadline, "duplicate connection never drained");
        std::thread::yield_now();
    }
    assert_eq!(count(&a.seen, |event| matches!(event, Event::LinkUp { .. })), 1);
    assert_eq!(count(&b.seen, |event| matches!(event, Event::LinkUp { .. })), 1);
}

#[test]
fn idle_connection_is_reaped_busy_one_is_not_and_the_next_send_redials() {
    let mut reaping = config("gc@loop", 1);
    reaping.endpoint.dist_gc_min_age_ms = 300;
    reaping.endpoint.dist_gc_sweep_period_ms = 100;
    let mut a = Node::start(reaping);
    let mut b = Node::start(config("peer@loop", 1));
    let mut c = Node::start(config("busy@loop", 1));
    a.send(&b, Lane::Data(0), b"one");
    b.wait("first message", |seen| messages(seen).len() == 1);
    // Keep a↔c busy while a↔b idles: c's connection must survive every sweep.
    let started = Instant::now();
    let mut sent = 0;
    while count(&a.seen, |event| {
        matches!(event, Event::LinkDown { reason: DownReason::Reaped, .. })
    }) == 0
    {
        assert!(started.elapsed() < DEADLINE, "idle connection never reaped");
        a.send(&c, Lane::Data(0), b"busy");
        sent += 1;
        if let Ok(event) = a.events.recv_timeout(Duration::from_millis(50)) {
            a.seen.push(event);
        }
    }
    c.wait("every busy message", |seen| messages(seen).len() == sent);
    let reaped: Vec<&NodeName> = a
        .seen
        .iter()
        .filter_map(|(_, event)| match event {
            Event::LinkDown { peer, reason: DownReason::Reaped, .. } => Some(peer),
            _ => None,
        })
        .collect();
    assert_eq!(reaped, vec![&b.name], "only the idle connection was reaped");
    assert_eq!(a.transport.handle().metrics().dist_gc_reap, 1);
    b.wait("b saw the reap", |seen| {
        count(seen, |event| matches!(event, Event::LinkDown { reason: DownReason::Reaped, .. }))
            == 1
    });
    a.send(&b, Lane::Data(0), b"two");
    b.wait("message over the re-dialled connection", |seen| messages(seen).len() == 2);
}

#[test]
fn migration_is_validated_end_to_end_and_traffic_follows() {
    let mut a = Node::start(config("mover@loop", 2));
    let mut b = Node::start(config("stay@loop", 2));
    a.send(&b, Lane::Data(0), b"before");
    b.wait("first message", |seen| messages(seen).len() == 1);
    let before =
        a.transport.handle().path_stats(&b.name).expect("shard answers").expect("connected");
    let outcome = a.transport.handle().migrate(&b.name).expect("migration runs");
    assert_eq!(outcome, MigrationOutcome::Ok);
    let after =
        a.transport.handle().path_stats(&b.name).expect("shard answers").expect("connected");
    assert_ne!(
        after.local_addr.port(),
        before.local_addr.port(),
        "the connection moved to a new port"
    );
    assert_eq!(
        after.local_addr.port(),
        b.transport
            .handle()
            .path_stats(&a.name)
            .expect("answers")
            .expect("connected")
            .peer_addr
            .port()
    );
    a.send(&b, Lane::Data(0), b"after");
    b.send(&a, Lane::Data(0), b"reply");
    b.wait("message after migration", |seen| messages(seen).len() == 2);
    a.wait("reply after migration", |seen| messages(seen).len() == 1);
    assert_eq!(a.transport.handle().metrics().migrate_ok, 1);
    // The migration socket is the shard's own: no hand-offs after the move.
    assert_eq!(b.transport.handle().metrics().foreign_dcid_handoffs, 0);
}

#[test]
fn tagged_streams_and_unknown_tags_over_sockets() {
    let mut a = Node::start(config("opener@loop", 1));
    let mut b = Node::start(config("acceptor@loop", 1));
    b.transport.handle().register_acceptor(b"logs").expect("registered");
    a.send(&b, Lane::Control, b"hello");
    a.wait("link up", |seen| count(seen, |event| matches!(event, Event::LinkUp { .. })) == 1);
    let peer = b.name.clone();
    let handle = a.transport.handle();
    let shard = handle.owner_of(&peer).expect("connected");
    handle
        .run_on(shard, DEADLINE, move |ctx| {
            let now = ctx.now();
            let stream = ctx.endpoint().open_stream(now, &peer, b"logs").expect("open");
            ctx.endpoint().stream_send(now, stream, b"line 1\n", true).expect("room");
            let unknown = ctx.endpoint().open_stream(now, &peer, b"nope").expect("open");
            ctx.endpoint().stream_send(now, unknown, b"x", false).expect("room");
        })
        .expect("ran on the shard");
    b.wait("stream opened", |seen| {
        count(seen, |event| matches!(event, Event::StreamOpened { .. })) == 1
    });
    let stream = b
        .seen
        .iter()
        .find_map(|(_, event)| match event {
            Event::StreamOpened { stream, tag, .. } if &tag[..] == b"logs" => Some(*stream),
            _ => None,
        })
        .expect("the logs stream");
    let shard_b = b.transport.handle().owner_of(&a.name).expect("connected");
    let deadline = Instant::now() + DEADLINE;
    let mut received = Vec::new();
    loop {
        let chunk = b
            .transport
            .handle()
            .run_on(shard_b, DEADLINE, move |ctx| {
                let now = ctx.now();
                let mut buf = [0u8; 64];
                ctx.endpoint()
                    .stream_recv(now, stream, &mut buf)
                    .map(|(read, fin)| (buf[..read].to_vec(), fin))
            })
            .expect("ran");
        if let Ok((bytes, fin)) = chunk {
            received.extend(bytes);
            if fin {
                break;
            }
        }
        assert!(Instant::now() < deadline, "stream bytes never arrived");
        if let Ok(event) = b.events.recv_timeout(Duration::from_millis(20)) {
            b.seen.push(event);
        }
    }
    assert_eq!(received, b"line 1\n");
    let deadline = Instant::now() + DEADLINE;
    while b.transport.handle().metrics().unknown_tag_resets != 1 {
        assert!(Instant::now() < deadline, "unknown tag never reset");
        std::thread::yield_now();
    }
}

#[test]
fn garbage_datagrams_are_counted_and_harmless() {
    let mut a = Node::start(config("target@loop", 2));
    let mut b = Node::start(config("friend@loop", 1));
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut rng = shoal_protocols::Rng::from_seed(11);
    for len in [1usize, 7, 30, 100, 1200, 1400] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            junk.send_to(&bytes, a.addr()).expect("send junk");
        }
    }
    let deadline = Instant::now() + DEADLINE;
    while a.transport.handle().metrics().datagrams_dropped < 120 {
        assert!(
            Instant::now() < deadline,
            "junk not counted: {:?}",
            a.transport.handle().metrics()
        );
        std::thread::yield_now();
    }
    b.send(&a, Lane::Data(0), b"still alive");
    a.wait("real traffic after junk", |seen| messages(seen).len() == 1);
    b.wait("link up", |seen| count(seen, |event| matches!(event, Event::LinkUp { .. })) == 1);
}

#[test]
fn a_port_in_use_fails_start_with_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let mut config = config("late@loop", 2);
    config.listen_addr = addr;
    let error = Transport::start_with_channel(config, 16).expect_err("the port is taken");
    assert!(matches!(error, StartError::Socket(SocketError::AddrInUse { .. })), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&addr.port().to_string()), "the error names the port: {text}");
}

#[test]
fn shutdown_closes_connections_and_the_peer_sees_it() {
    let a = Node::start(config("leaver@loop", 2));
    let mut b = Node::start(config("watcher@loop", 1));
    a.send(&b, Lane::Data(0), b"hi");
    b.wait("message", |seen| messages(seen).len() == 1);
    let started = Instant::now();
    a.transport.shutdown().expect("clean shutdown");
    assert!(started.elapsed() < Duration::from_secs(4), "shutdown exceeded its bound");
    b.wait("link down with reason shutdown", |seen| {
        count(seen, |event| matches!(event, Event::LinkDown { reason: DownReason::Shutdown, .. }))
            == 1
    });
}
