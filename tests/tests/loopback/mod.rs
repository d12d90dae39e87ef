//! Shared helpers of the loopback tests (`transport_loopback.rs`, `auth_loopback.rs`): a node
//! is a `Transport` with its events in a channel; waits are for events, with generous
//! deadlines.

// Each test file compiles this module into its own crate and uses a different subset of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam::channel::Receiver;
use shoal_protocols::NodeName;
use shoal_transport::config::TransportConfig;
use shoal_transport::endpoint::{Event, Lane};
use shoal_transport::shard::{Seams, Transport};

pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("valid test name")
}

pub(crate) fn config(node: &str, shards: usize) -> TransportConfig {
    let mut config = TransportConfig::new(name(node), "127.0.0.1:0".parse().expect("literal"));
    config.shards = shards;
    // Tests share the machine's two cores with the test runner: let the kernel place shards.
    config.pin_shards = false;
    config.quic_cert_dir = None;
    config.auth.auth_key_dir = None;
    config.socket_rcvbuf_bytes = 1 << 20;
    config.socket_sndbuf_bytes = 1 << 20;
    config
}

pub(crate) struct Node {
    pub(crate) name: NodeName,
    pub(crate) transport: Transport,
    pub(crate) events: Receiver<(usize, Event)>,
    pub(crate) seen: Vec<(usize, Event)>,
}

impl Node {
    pub(crate) fn start(config: TransportConfig) -> Self {
        Self::start_with(config, Seams::default())
    }

    /// Starts with replaced parts (an authentication state built by the test).
    pub(crate) fn start_with(config: TransportConfig, seams: Seams) -> Self {
        let name = config.name.clone();
        let (transport, events) = Transport::start_with_channel_and_seams(config, 1 << 16, seams)
            .expect("transport starts");
        Self { name, transport, events, seen: Vec::new() }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    pub(crate) fn send(&self, to: &Self, lane: Lane, payload: &[u8]) {
        self.transport
            .handle()
            .send(&to.name, to.addr(), lane, Bytes::copy_from_slice(payload))
            .expect("queued to a shard");
    }

    /// Collects events until `done` holds for the events seen so far.
    pub(crate) fn wait(&mut self, what: &str, done: impl Fn(&[(usize, Event)]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: timed out waiting for {what}; saw {:?}",
                self.name,
                self.seen
            );
            if let Ok(event) = self.events.recv_timeout(left) {
                self.seen.push(event);
            }
        }
    }

    pub(crate) fn messages(&self) -> Vec<Bytes> {
        messages(&self.seen)
    }
}

pub(crate) fn messages(events: &[(usize, Event)]) -> Vec<Bytes> {
    events
        .iter()
        .filter_map(|(_, event)| match event {
            Event::Message { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn count(events: &[(usize, Event)], pred: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|(_, event)| pred(event)).count()
}
