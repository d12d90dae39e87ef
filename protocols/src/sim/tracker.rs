//! Per-broadcast bookkeeping: who delivered, at which hop and when, and how many payload
//! copies were sent (Plumtree paper §2.3 metrics).

use std::collections::BTreeMap;

use super::network::NodeIndex;
use crate::plumtree::MessageId;

/// One tracked broadcast.
#[derive(Clone, Debug)]
struct Track {
    sent_us: u64,
    delivered: Vec<u64>,
    delivered_count: u64,
    payload_msgs: u64,
    max_round: u16,
    last_delivery_us: u64,
}

/// Results of one broadcast, measured against the nodes alive at measurement time.
#[derive(Clone, Debug, PartialEq)]
pub struct BroadcastResult {
    /// Fraction of live nodes that delivered it (the sender included).
    pub reliability: f64,
    /// Relative message redundancy m/(n−1) − 1 (payload copies only); `None` if n < 2.
    pub rmr: Option<f64>,
    /// Last delivery hop: the largest round at which a node delivered it.
    pub ldh: u16,
    /// Live nodes that did not deliver it.
    pub missed: u64,
    /// Time from the broadcast to its last delivery, in ms.
    pub last_delivery_ms: f64,
    /// Payload copies received by live nodes.
    pub payload_msgs: u64,
    /// Nodes (alive or not) that delivered it.
    pub delivered: u64,
}

/// Tracks application broadcasts sent through [`super::Network::broadcast`].
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    tracks: BTreeMap<MessageId, Track>,
    deliveries: u64,
}

impl Tracker {
    pub(crate) fn start(&mut self, id: MessageId, _sender: NodeIndex, now_us: u64, nodes: usize) {
        let words = nodes.div_ceil(64);
        self.tracks.insert(
            id,
            Track {
                sent_us: now_us,
                delivered: vec![0; words],
                delivered_count: 0,
                payload_msgs: 0,
                max_round: 0,
                last_delivery_us: now_us,
            },
        );
    }

    pub(crate) fn delivered(&mut self, id: MessageId, node: NodeIndex, round: u16, now_us: u64) {
        let Some(t) = self.tracks.get_mut(&id) else { return };
        let (word, bit) = (node as usize / 64, node as usize % 64);
        if word >= t.delivered.len() {
            return; // Node added after the broadcast started: not part of its audience.
        }
        if t.delivered[word] & (1 << bit) != 0 {
            // Plumtree delivers each id once per node; a second delivery is a protocol bug.
            panic!("node {node} delivered broadcast {id:?} twice");
        }
        t.delivered[word] |= 1 << bit;
        t.delivered_count += 1;
        t.max_round = t.max_round.max(round);
        t.last_delivery_us = t.last_delivery_us.max(now_us);
        if round > 0 {
            self.deliveries += 1;
        }
    }

    pub(crate) fn payload_received(&mut self, id: MessageId) {
        if let Some(t) = self.tracks.get_mut(&id) {
            t.payload_msgs += 1;
        }
    }

    /// Remote deliveries of tracked broadcasts so far (the sender's own excluded).
    pub fn remote_deliveries(&self) -> u64 {
        self.deliveries
    }

    /// Measures broadcast `id` against the live set `alive`.
    pub fn result(&self, id: MessageId, alive: &[bool]) -> BroadcastResult {
        let t = &self.tracks[&id];
        let mut live = 0u64;
        let mut live_delivered = 0u64;
        for (i, a) in alive.iter().enumerate() {
            if !*a {
                continue;
            }
            live += 1;
            let delivered = t.delivered.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
            if delivered {
                live_delivered += 1;
            }
        }
        let n = t.delivered_count;
        let rmr = (n >= 2).then(|| t.payload_msgs as f64 / (n - 1) as f64 - 1.0);
        BroadcastResult {
            reliability: if live == 0 { 0.0 } else { live_delivered as f64 / live as f64 },
            rmr,
            ldh: t.max_round,
            missed: live - live_delivered,
            last_delivery_ms: (t.last_delivery_us - t.sent_us) as f64 / 1000.0,
            payload_msgs: t.payload_msgs,
            delivered: n,
        }
    }

    /// Forgets a broadcast (frees its delivery bitmap).
    pub fn forget(&mut self, id: MessageId) {
        self.tracks.remove(&id);
    }
}
