//! In-memory pairs of endpoints: real quiche connections and TLS, datagrams shuttled in
//! memory. quiche reads the real clock, so waits are "until the event, within a generous
//! real-time deadline" — never sleeps as synchronisation.

use std::collections::HashMap;

use shoal_protocols::Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use shoal_protocols::NodeName;

use super::event::{close_code, reset_code};
use super::*;
use crate::auth::{Auth, AuthConfig};
use crate::directory::Directory;
use crate::metrics::ShardMetrics;
use crate::tls::{quiche_config, AcceptAnyCertificate, PeerVerifier, QuicSettings, TlsMaterial};

mod auth;

const DEADLINE: Duration = Duration::from_secs(10);

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("valid test name")
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Net {
    nodes: Vec<Endpoint>,
    names: Vec<NodeName>,
    /// Extra local addresses (migration sockets) → node index.
    routes: HashMap<SocketAddr, usize>,
    events: Vec<Vec<Event>>,
    /// Drop every datagram (a partitioned or dead path) while set.
    blackhole: bool,
}

/// Authentication with an in-memory identity and pins, default settings otherwise.
pub(super) fn memory_auth(config: AuthConfig) -> Arc<Auth> {
    let config = AuthConfig { auth_key_dir: None, ..config };
    Arc::new(Auth::load(&config).expect("valid auth config"))
}

/// What an endpoint under test is built from, beyond its name and settings.
pub(super) struct Parts {
    pub auth: Arc<Auth>,
    pub verifier: Arc<dyn PeerVerifier>,
    /// Applied to the quiche configuration after the factory built it (a test changing it
    /// the way someone editing the code might).
    pub tamper: fn(&mut quiche::Config),
}

impl Default for Parts {
    fn default() -> Self {
        Self {
            auth: memory_auth(AuthConfig::default()),
            verifier: Arc::new(AcceptAnyCertificate),
            tamper: |_| {},
        }
    }
}

fn endpoint(node: &str, port: u16, settings: EndpointSettings, incarnation: u64) -> Endpoint {
    endpoint_with(node, port, settings, incarnation, Parts::default())
}

pub(super) fn endpoint_with(
    node: &str,
    port: u16,
    settings: EndpointSettings,
    incarnation: u64,
    parts: Parts,
) -> Endpoint {
    let material = TlsMaterial::generate_ephemeral(node).expect("ephemeral TLS material");
    let mut quic_config =
        quiche_config(&material, &QuicSettings::default(), Arc::clone(&parts.verifier))
            .expect("quic config");
    (parts.tamper)(&mut quic_config);
    let params = EndpointParams {
        shard: 0,
        shards: 1,
        name: name(node),
        incarnation,
        local_addr: addr(port),
        quic_config,
        settings,
        directory: Arc::new(Directory::new()),
        metrics: Arc::new(ShardMetrics::default()),
        auth: parts.auth,
        verifier: parts.verifier,
        tls_public_key: material.public_key(),
    };
    Endpoint::new(params, Instant::now())
}

impl Net {
    fn new(nodes: Vec<Endpoint>) -> Self {
        let names = nodes.iter().map(|node| node.name.clone()).collect();
        let events = nodes.iter().map(|_| Vec::new()).collect();
        let mut routes = HashMap::new();
        for (index, node) in nodes.iter().enumerate() {
            routes.insert(node.local_addr(), index);
        }
        Self { nodes, names, routes, events, blackhole: false }
    }

    fn pair() -> Self {
        Self::pair_with(EndpointSettings::default(), EndpointSettings::default())
    }

    fn pair_with(a: EndpointSettings, b: EndpointSettings) -> Self {
        Self::new(vec![endpoint("a@host", 1001, a, 1), endpoint("b@host", 1002, b, 2)])
    }

    fn addr_of(&self, index: usize) -> SocketAddr {
        self.nodes[index].local_addr()
    }

    /// Moves datagrams until nobody has anything to send; runs due timers.
    fn pump(&mut self) {
        let mut buf = vec![0u8; 64 * 1500];
        for _round in 0..10_000 {
            let mut moved = false;
            for index in 0..self.nodes.len() {
                let now = Instant::now();
                self.nodes[index].handle_timeout(now);
                while let Some(transmit) = self.nodes[index].poll_transmit(now, &mut buf) {
                    moved = true;
                    if self.blackhole {
                        continue;
                    }
                    let Some(&target) = self.routes.get(&transmit.to) else { continue };
                    for segment in buf[..transmit.len].chunks(transmit.segment_size) {
                        let mut datagram = segment.to_vec();
                        let outcome = self.nodes[target].handle_datagram(
                            now,
                            &mut datagram,
                            transmit.from,
                            transmit.to,
                        );
                        assert_ne!(
                            outcome,
                            DatagramOutcome::Foreign(0),
                            "single-shard nodes never hand off"
                        );
                    }
                }
                if let Some((_, handoff)) = self.nodes[index].poll_handoff() {
                    panic!("single-shard node produced a hand-off: {handoff:?}");
                }
            }
            for index in 0..self.nodes.len() {
                while let Some(event) = self.nodes[index].poll_event() {
                    self.events[index].push(event);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("pump did not settle in 10,000 rounds");
    }

    /// Pumps (real time passes) until `done` holds, within the deadline.
    fn pump_until(&mut self, what: &str, mut done: impl FnMut(&mut Self) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.pump();
            if done(self) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            // Let quiche's real-time timers (PTO, draining) come due without spinning hot.
            std::thread::yield_now();
        }
    }

    fn send(
        &mut self,
        from: usize,
        to: usize,
        lane: Lane,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let peer = self.names[to].clone();
        let target = self.addr_of(to);
        self.nodes[from].send(Instant::now(), &peer, target, lane, payload)
    }

    fn messages(&self, index: usize) -> Vec<(Lane, Bytes)> {
        self.events[index]
            .iter()
            .filter_map(|event| match event {
                Event::Message { lane, payload, .. } => Some((*lane, payload.clone())),
                _ => None,
            })
            .collect()
    }

    fn count(&self, index: usize, pred: impl Fn(&Event) -> bool) -> usize {
        self.events[index].iter().filter(|event| pred(event)).count()
    }

    fn link_ups(&self, index: usize) -> usize {
        self.count(index, |event| matches!(event, Event::LinkUp { .. }))
    }

    fn connect(&mut self, from: usize, to: usize) {
        self.send(from, to, Lane::Control, b"hi").expect("first send dials");
        self.pump_until("link up on both sides", |net| {
            net.link_ups(from) >= 1 && net.link_ups(to) >= 1
        });
    }
}

#[test]
fn messages_flow_both_ways_in_order_per_lane() {
    let mut net = Net::pair();
    for i in 0..100u32 {
        net.send(0, 1, Lane::Data(7), &i.to_be_bytes()).expect("queued");
        net.send(0, 1, Lane::Control, &(1000 + i).to_be_bytes()).expect("queued");
    }
    net.pump_until("200 messages at b", |net| net.messages(1).len() == 200);
    for i in 0..50u32 {
        net.send(1, 0, Lane::Data(3), &i.to_be_bytes()).expect("b answers on the same connection");
    }
    net.pump_until("50 messages at a", |net| net.messages(0).len() == 50);
    let at_b = net.messages(1);
    let data: Vec<u32> = at_b
        .iter()
        .filter(|(lane, _)| *lane != Lane::Control)
        .map(|(_, payload)| u32::from_be_bytes(payload[..].try_into().expect("4 bytes")))
        .collect();
    assert_eq!(data, (0..100).collect::<Vec<_>>(), "one key keeps its order");
    let control: Vec<u32> = at_b
        .iter()
        .filter(|(lane, _)| *lane == Lane::Control)
        .map(|(_, payload)| u32::from_be_bytes(payload[..].try_into().expect("4 bytes")))
        .collect();
    assert_eq!(control, (1000..1100).collect::<Vec<_>>());
    assert_eq!(net.link_ups(0), 1);
    assert_eq!(net.link_ups(1), 1);
    assert_eq!(net.nodes[0].connections(), 1, "b's answers reuse a's connection");
    assert_eq!(net.nodes[1].connections(), 1);
    let a = net.nodes[0].metrics().snapshot();
    assert_eq!(a.messages_out, 200);
    assert_eq!(a.messages_in, 50);
    assert_eq!(a.connections_established, 1);
    assert!(a.packets_in > 0 && a.bytes_in > 0);
    for node in &net.nodes {
        assert!(
            node.timers.len() <= 2 * node.connections() + TIMER_SLACK,
            "timer heap holds {} entries",
            node.timers.len()
        );
    }
}

#[test]
fn timer_heap_stays_bounded_under_traffic() {
    let mut net = Net::pair();
    net.connect(0, 1);
    let mut max_heap = 0;
    for round in 0..2_000u32 {
        net.send(0, 1, Lane::Data(0), &round.to_be_bytes()).expect("queued");
        net.pump();
        max_heap = max_heap.max(net.nodes[0].timers.len()).max(net.nodes[1].timers.len());
    }
    assert!(max_heap <= 2 + TIMER_SLACK, "the heap grew to {max_heap} entries for one connection");
    net.pump_until("all delivered", |net| net.messages(1).len() == 2_001);
}

#[test]
fn datagrams_flow_once_connected() {
    let mut net = Net::pair();
    let b = net.names[1].clone();
    assert!(matches!(
        net.nodes[0].send_datagram(Instant::now(), &b, b"early"),
        Err(SendError::NotConnected { .. })
    ));
    net.connect(0, 1);
    net.nodes[0].send_datagram(Instant::now(), &b, b"dgram").expect("connected");
    net.pump_until("datagram at b", |net| {
        net.count(
            1,
            |event| matches!(event, Event::Datagram { payload, .. } if &payload[..] == b"dgram"),
        ) == 1
    });
}

#[test]
fn oversized_message_is_refused_locally_and_an_oversized_frame_closes_the_sender() {
    let small = EndpointSettings {
        frame_bytes_max: 1024,
        peer_queue_bytes_max: 1 << 20,
        ..EndpointSettings::default()
    };
    let mut net = Net::pair_with(EndpointSettings::default(), small.clone());
    // b refuses to send more than its own bound, nothing queued.
    let err = net.send(1, 0, Lane::Control, &[0u8; 2000]).expect_err("too large for b");
    assert_eq!(err, SendError::TooLarge { len: 2000, max: 1023 });
    assert_eq!(net.nodes[1].connections(), 0, "a refused send dials nothing");
    // a may send 2000 bytes, but b's reader refuses the frame and closes the connection.
    net.connect(0, 1);
    net.send(0, 1, Lane::Data(0), &[0u8; 2000]).expect("a's bound is larger");
    net.pump_until("b closes with PROTOCOL", |net| {
        net.count(0, |event| {
            matches!(
                event,
                Event::LinkDown {
                    reason: DownReason::Reset { code: close_code::PROTOCOL, by_peer: true },
                    ..
                }
            )
        }) == 1
    });
    assert_eq!(net.nodes[1].metrics().snapshot().decode_errors, 1);
}

#[test]
fn full_queue_is_reported_and_counted_never_dropped_silently() {
    let settings = EndpointSettings {
        frame_bytes_max: 1024,
        peer_queue_bytes_max: 4096,
        ..EndpointSettings::default()
    };
    let mut net = Net::pair_with(settings, EndpointSettings::default());
    // Not pumped: the connection is still dialling, so everything stays queued.
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..10 {
        match net.send(0, 1, Lane::Data(1), &[7u8; 1000]) {
            Ok(()) => accepted += 1,
            Err(SendError::QueueFull { queued_bytes, max_bytes, .. }) => {
                assert_eq!(max_bytes, 4096);
                assert!(queued_bytes + 1005 > 4096);
                refused += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(accepted, 4, "4 × 1,005 bytes fit 4,096");
    assert_eq!(refused, 6);
    assert_eq!(net.nodes[0].metrics().snapshot().send_queue_overflows, 6);
    net.pump_until("every accepted message delivered", |net| net.messages(1).len() == accepted);
}

#[test]
fn tagged_streams_carry_bytes_and_unknown_tags_are_reset() {
    let mut net = Net::pair();
    net.nodes[1].register_acceptor(b"files");
    net.connect(0, 1);
    let b = net.names[1].clone();
    let stream = net.nodes[0].open_stream(Instant::now(), &b, b"files").expect("open");
    let written =
        net.nodes[0].stream_send(Instant::now(), stream, b"hello stream", true).expect("room");
    assert_eq!(written, 12);
    net.pump_until("stream opened at b", |net| {
        net.count(1, |event| matches!(event, Event::StreamOpened { .. })) == 1
    });
    let Some(Event::StreamOpened { tag, stream: remote, peer }) =
        net.events[1].iter().find(|event| matches!(event, Event::StreamOpened { .. })).cloned()
    else {
        unreachable!("counted above")
    };
    assert_eq!(&tag[..], b"files");
    assert_eq!(peer, net.names[0]);
    let mut buf = [0u8; 64];
    let (read, fin) =
        net.nodes[1].stream_recv(Instant::now(), remote, &mut buf).expect("data buffered");
    assert_eq!(&buf[..read], b"hello stream", "the preamble is not part of the user's bytes");
    assert!(fin);
    assert_eq!(net.nodes[1].metrics().snapshot().streams, 1);

    let unknown = net.nodes[0].open_stream(Instant::now(), &b, b"nobody").expect("open");
    net.nodes[0].stream_send(Instant::now(), unknown, b"x", false).expect("room");
    net.pump_until("unknown tag reset", |net| {
        net.nodes[1].metrics().snapshot().unknown_tag_resets == 1
    });
    net.pump_until("opener sees the reset", |net| {
        let now = Instant::now();
        matches!(net.nodes[0].stream_recv(now, unknown, &mut [0u8; 8]), Err(StreamError::Reset(code)) if code == reset_code::UNKNOWN_TAG)
            || net.count(0, |event| matches!(event, Event::StreamClosed { stream, reset_code: Some(reset_code::UNKNOWN_TAG) } if *stream == unknown)) == 1
    });
}

#[test]
fn streams_stuck_in_their_preamble_are_capped_at_64() {
    let mut net = Net::pair();
    net.nodes[1].register_acceptor(b"t");
    net.connect(0, 1);
    let b = net.names[1].clone();
    // Open 70 streams whose preamble promises a 9-byte tag but carries 2 bytes of it.
    let slot = net.nodes[0].by_peer[&b];
    let mut conn = net.nodes[0].take(slot).expect("connected");
    for index in 0..70u64 {
        let stream_id = 4 + 4 * index;
        conn.q
            .stream_send(stream_id, &[9, b'a', b'b'], false)
            .expect("stream credit for 70 streams");
    }
    net.nodes[0].after_io(slot, conn, Instant::now());
    net.pump_until("6 streams dropped", |net| {
        net.nodes[1].metrics().snapshot().preamble_dropped == 6
    });
    let slot_b = net.nodes[1].by_peer[&net.names[0]];
    let conn_b = net.nodes[1].slots[slot_b as usize].conn.as_ref().expect("still connected");
    assert_eq!(conn_b.preamble_pending, 64);
    assert_eq!(conn_b.tagged.len(), 64);
    assert_eq!(net.count(1, |event| matches!(event, Event::StreamOpened { .. })), 0);
}

#[test]
fn idle_connection_is_reaped_and_the_next_send_redials() {
    let settings = EndpointSettings {
        dist_gc_min_age_ms: 1_000,
        dist_gc_sweep_period_ms: 500,
        ..EndpointSettings::default()
    };
    let mut net = Net::pair_with(settings.clone(), settings);
    net.connect(0, 1);
    // An hour later by the GC's clock; quiche's own timers (real clock) are not due.
    let later = Instant::now() + Duration::from_secs(3600);
    net.nodes[0].handle_timeout(later);
    assert_eq!(net.nodes[0].metrics().snapshot().dist_gc_reap, 1);
    net.pump_until("both sides saw the reap", |net| {
        net.count(0, |event| matches!(event, Event::LinkDown { reason: DownReason::Reaped, .. }))
            == 1
            && net.count(1, |event| {
                matches!(event, Event::LinkDown { reason: DownReason::Reaped, .. })
            }) == 1
    });
    net.send(0, 1, Lane::Data(0), b"again").expect("re-dial");
    net.pump_until("message over the new connection", |net| {
        net.messages(1).iter().any(|(_, payload)| &payload[..] == b"again")
    });
    assert_eq!(net.link_ups(0), 2);
}

#[test]
fn busy_or_exempt_or_streaming_connections_are_not_reaped() {
    let settings = EndpointSettings {
        dist_gc_min_age_ms: 60_000,
        dist_gc_sweep_period_ms: 500,
        ..EndpointSettings::default()
    };
    let mut net = Net::pair_with(settings.clone(), settings);
    net.connect(0, 1);
    // Busy: traffic just now, sweep now + 30 s (< min age).
    net.nodes[0].handle_timeout(Instant::now() + Duration::from_secs(30));
    assert_eq!(net.nodes[0].metrics().snapshot().dist_gc_reap, 0);
    // Exempt (active view): idle for an hour, still kept.
    net.nodes[0].set_gc_exempt([net.names[1].clone()]);
    net.nodes[0].handle_timeout(Instant::now() + Duration::from_secs(3600));
    assert_eq!(net.nodes[0].metrics().snapshot().dist_gc_reap, 0);
    // Not exempt any more, but a user stream is open.
    net.nodes[0].set_gc_exempt([]);
    net.nodes[1].register_acceptor(b"s");
    let b = net.names[1].clone();
    let _stream = net.nodes[0].open_stream(Instant::now(), &b, b"s").expect("open");
    net.nodes[0].handle_timeout(Instant::now() + Duration::from_secs(7200));
    assert_eq!(net.nodes[0].metrics().snapshot().dist_gc_reap, 0);
    assert!(net.nodes[0].is_connected(&b));
}

#[test]
fn simultaneous_dials_end_with_one_connection() {
    let mut net = Net::pair();
    net.send(0, 1, Lane::Data(0), b"from a").expect("dial a→b");
    net.send(1, 0, Lane::Data(0), b"from b").expect("dial b→a");
    net.pump_until("both messages delivered and one connection left on each side", |net| {
        net.messages(0).len() == 1
            && net.messages(1).len() == 1
            && net.nodes[0].connections() == 1
            && net.nodes[1].connections() == 1
    });
    assert_eq!(net.link_ups(0), 1, "the losing dial never became a link");
    assert_eq!(net.link_ups(1), 1);
    let duplicates = net.nodes[0].metrics().snapshot().connections_duplicate
        + net.nodes[1].metrics().snapshot().connections_duplicate;
    assert!(duplicates >= 1, "one dial lost the rule");
    // The survivor is the connection a@host (the lower name) dialled, on both sides.
    let a_slot = net.nodes[0].by_peer[&net.names[1]];
    assert_eq!(
        net.nodes[0].slots[a_slot as usize].conn.as_ref().map(|conn| conn.role),
        Some(conn::Role::Dialer)
    );
}

#[test]
fn restarted_peer_replaces_the_stale_connection() {
    let mut net = Net::pair();
    net.connect(0, 1);
    // b restarts: a new endpoint with the same name, address and identity key, a new
    // incarnation.
    let parts = Parts { auth: Arc::clone(&net.nodes[1].auth), ..Parts::default() };
    net.nodes[1] = endpoint_with("b@host", 1002, EndpointSettings::default(), 99, parts);
    net.events[1].clear();
    net.send(1, 0, Lane::Data(0), b"i am back").expect("dial");
    net.pump_until("a replaced the old connection", |net| {
        net.messages(0).iter().any(|(_, payload)| &payload[..] == b"i am back")
    });
    assert_eq!(
        net.count(0, |event| matches!(event, Event::LinkDown { reason: DownReason::Replaced, .. })),
        1
    );
    assert_eq!(net.link_ups(0), 2);
}

#[test]
fn migration_validates_the_new_path_and_traffic_follows() {
    let mut net = Net::pair();
    net.connect(0, 1);
    let new_local = addr(2001);
    net.routes.insert(new_local, 0);
    let b = net.names[1].clone();
    let a = net.names[0].clone();
    assert!(matches!(
        net.nodes[1].migrate(Instant::now(), &a, addr(2002)),
        Err(MigrateError::NotDialer(_))
    ));
    net.nodes[0].migrate(Instant::now(), &b, new_local).expect("dialer may migrate");
    net.pump_until("migration validated", |net| {
        net.count(0, |event| matches!(event, Event::Migrated { outcome: MigrationOutcome::Ok, .. }))
            == 1
    });
    assert_eq!(net.nodes[0].path_stats(&b).map(|stats| stats.local_addr), Some(new_local));
    net.send(0, 1, Lane::Data(0), b"after").expect("queued");
    net.send(1, 0, Lane::Data(0), b"back").expect("queued");
    net.pump_until("traffic after migration", |net| {
        net.messages(1).len() == 2 && net.messages(0).len() == 1
    });
    assert_eq!(
        net.nodes[1].path_stats(&a).map(|stats| stats.peer_addr),
        Some(new_local),
        "b follows a"
    );
    assert_eq!(net.nodes[0].metrics().snapshot().migrate_ok, 1);
    let stats = net.nodes[0].path_stats(&b).expect("connected");
    assert!(stats.sent_packets > 0 && stats.cwnd_bytes > 0);
}

#[test]
fn migration_to_a_dead_path_times_out() {
    let settings = EndpointSettings { migrate_timeout_ms: 200, ..EndpointSettings::default() };
    let mut net = Net::pair_with(settings, EndpointSettings::default());
    net.connect(0, 1);
    let b = net.names[1].clone();
    // No route for the new address: b's PATH_RESPONSEs go nowhere.
    net.nodes[0].migrate(Instant::now(), &b, addr(2003)).expect("starts");
    net.pump_until("migration outcome", |net| {
        net.count(0, |event| {
            matches!(
                event,
                Event::Migrated {
                    outcome: MigrationOutcome::Timeout | MigrationOutcome::Failed,
                    ..
                }
            )
        }) == 1
    });
    let metrics = net.nodes[0].metrics().snapshot();
    assert_eq!(metrics.migrate_ok, 0);
    assert_eq!(metrics.migrate_timeout + metrics.migrate_failed, 1);
}

#[test]
fn garbage_datagrams_are_counted_without_harm() {
    let mut net = Net::pair();
    net.connect(0, 1);
    let mut rng = Rng::from_seed(5);
    let from = addr(3000);
    let to = net.addr_of(1);
    for len in [0usize, 1, 5, 20, 1200, 1500] {
        let mut garbage: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let outcome = net.nodes[1].handle_datagram(Instant::now(), &mut garbage, from, to);
        assert_ne!(
            outcome,
            DatagramOutcome::Handled,
            "garbage of {len} bytes was taken for a connection"
        );
    }
    // A short header naming an unknown CID of this shard.
    let mut stale = vec![0x40u8; 40];
    stale[1] = 0;
    assert_eq!(
        net.nodes[1].handle_datagram(Instant::now(), &mut stale, from, to),
        DatagramOutcome::Dropped
    );
    assert!(net.nodes[1].metrics().snapshot().datagrams_dropped >= 6);
    net.send(0, 1, Lane::Data(0), b"still fine").expect("queued");
    net.pump_until("the link survived", |net| {
        net.messages(1).iter().any(|(_, payload)| &payload[..] == b"still fine")
    });
}

#[test]
fn foreign_dcid_is_handed_to_its_owner_shard() {
    let material = TlsMaterial::generate_ephemeral("c@host").expect("material");
    let verifier: Arc<dyn PeerVerifier> = Arc::new(AcceptAnyCertificate);
    let quic_config =
        quiche_config(&material, &QuicSettings::default(), Arc::clone(&verifier)).expect("config");
    let metrics = Arc::new(ShardMetrics::default());
    let params = EndpointParams {
        shard: 0,
        shards: 2,
        name: name("c@host"),
        incarnation: 1,
        local_addr: addr(4000),
        quic_config,
        settings: EndpointSettings::default(),
        directory: Arc::new(Directory::new()),
        metrics: Arc::clone(&metrics),
        auth: memory_auth(AuthConfig::default()),
        verifier,
        tls_public_key: material.public_key(),
    };
    let mut shard0 = Endpoint::new(params, Instant::now());
    let mut short = vec![0x40u8; 60];
    short[1] = 1; // DCID byte 0 = shard 1
    assert_eq!(
        shard0.handle_datagram(Instant::now(), &mut short, addr(4001), addr(4000)),
        DatagramOutcome::Foreign(1)
    );
    assert_eq!(metrics.snapshot().foreign_dcid_handoffs, 1);
}

#[test]
fn a_peer_that_stops_reading_costs_a_bounded_queue_and_refusals_are_counted() {
    let settings =
        EndpointSettings { peer_queue_bytes_max: 256 << 10, ..EndpointSettings::default() };
    let mut net = Net::pair_with(settings, EndpointSettings::default());
    net.connect(0, 1);
    // b vanishes: nothing it would send (ACKs, flow-control credit) reaches a any more.
    net.blackhole = true;
    let payload = vec![0u8; 16 << 10];
    let mut accepted = 0usize;
    let mut refused = 0usize;
    for _ in 0..1_000 {
        match net.send(0, 1, Lane::Data(0), &payload) {
            Ok(()) => accepted += 1,
            Err(SendError::QueueFull { max_bytes, queued_bytes, .. }) => {
                assert_eq!(max_bytes, 256 << 10);
                assert!(queued_bytes <= max_bytes);
                refused += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
        net.pump();
    }
    // QUIC takes what flow control allows (1 MiB per stream), the queue what its bound allows.
    assert!(
        accepted * payload.len() <= (1 << 20) + (256 << 10) + payload.len(),
        "accepted {accepted} messages"
    );
    assert!(refused > 0);
    assert_eq!(net.nodes[0].metrics().snapshot().send_queue_overflows, refused as u64);
}
