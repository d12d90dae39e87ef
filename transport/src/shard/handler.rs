//! How code running on a shard sees the transport: a handler per shard, called on the
//! shard's thread with a context that reaches the shard's endpoint directly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use crossbeam::channel::{Sender, TrySendError};
use shoal_protocols::NodeName;

use crate::endpoint::{Endpoint, Event, Handoff, Lane, SendError};
use crate::metrics::Counters;

/// Per-shard application code. Runs on the shard's thread: no locks, no hops.
pub trait ShardHandler: 'static {
    /// An event of this shard's endpoint.
    fn on_event(&mut self, ctx: &mut ShardContext<'_>, event: Event);

    /// Called once per input batch after the shard handled it (a load generator refills its
    /// queues here). Keep it short: the shard's packet I/O waits for it.
    fn on_poll(&mut self, _ctx: &mut ShardContext<'_>) {}
}

/// Builds the handler of each shard (called on that shard's thread with its index).
pub type HandlerFactory = Arc<dyn Fn(usize) -> Box<dyn ShardHandler> + Send + Sync>;

/// A closure run on a shard (the handle's way to reach a shard's endpoint).
pub(crate) type ShardTask = Box<dyn FnOnce(&mut ShardContext<'_>) + Send>;

/// One item of a cross-shard batch.
pub(crate) enum Item {
    /// A datagram whose connection ID belongs to the receiving shard.
    Datagram { data: Vec<u8>, from: SocketAddr, to: SocketAddr },
    /// Work produced by another shard's endpoint.
    Handoff(Handoff),
    /// A message for a peer the receiving shard owns.
    Send { peer: NodeName, addr: SocketAddr, lane: Lane, payload: Bytes },
    /// Code to run on the receiving shard.
    Run(ShardTask),
    /// Move the connection to `peer` to a fresh local port (answer on `reply`).
    Migrate { peer: NodeName, reply: Sender<Result<crate::endpoint::MigrationOutcome, String>> },
    /// Close everything and stop.
    Stop,
}

/// Items that may wait for one target shard whose mailbox is full. Guess: 64 full batches
/// worth of datagrams; a shard this far behind sheds load rather than grow without bound.
pub(crate) const OUTBOUND_ITEMS_MAX: usize = 65_536;

/// Items waiting to be delivered to each shard at the end of the current flush.
#[derive(Default)]
pub(crate) struct Outbound {
    pub(crate) batches: Vec<Vec<Item>>,
}

impl Outbound {
    pub(crate) fn new(shards: usize) -> Self {
        Self { batches: (0..shards).map(|_| Vec::new()).collect() }
    }

    /// Queues `item` for `shard`; gives it back when `OUTBOUND_ITEMS_MAX` items already wait
    /// for that shard (its mailbox has stayed full through many flushes: it is stuck or far
    /// behind). The caller reports or counts the refusal.
    pub(crate) fn push(&mut self, shard: usize, item: Item) -> Result<(), Box<Item>> {
        let batch = &mut self.batches[shard];
        if batch.len() >= OUTBOUND_ITEMS_MAX {
            return Err(Box::new(item));
        }
        batch.push(item);
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batches.iter().all(Vec::is_empty)
    }
}

/// What a handler may do on its shard.
pub struct ShardContext<'a> {
    pub(crate) endpoint: &'a mut Endpoint,
    pub(crate) outbound: &'a mut Outbound,
    pub(crate) now: Instant,
}

impl std::fmt::Debug for ShardContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardContext")
            .field("shard", &self.endpoint.shard())
            .finish_non_exhaustive()
    }
}

impl ShardContext<'_> {
    /// This shard's index.
    pub fn shard(&self) -> usize {
        self.endpoint.shard()
    }

    /// The time of the current input batch.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The shard's endpoint (streams, datagrams, migration, path figures, metrics).
    pub fn endpoint(&mut self) -> &mut Endpoint {
        self.endpoint
    }

    /// Sends `payload` to `peer`, dialling on demand. When another shard owns the peer, the
    /// message travels there in this flush's batch; a refusal there (full queue) comes back
    /// as that shard's `LinkDown`/overflow counters, not as an error here.
    pub fn send(
        &mut self,
        peer: &NodeName,
        addr: SocketAddr,
        lane: Lane,
        payload: &[u8],
    ) -> Result<(), SendError> {
        match self.endpoint.send(self.now, peer, addr, lane, payload) {
            Err(SendError::OtherShard { shard, .. }) => {
                let item = Item::Send {
                    peer: peer.clone(),
                    addr,
                    lane,
                    payload: Bytes::copy_from_slice(payload),
                };
                self.outbound.push(shard, item).map_err(|_| {
                    Counters::add(&self.endpoint.metrics().send_queue_overflows, 1);
                    SendError::OwnerBusy { shard }
                })
            }
            other => other,
        }
    }
}

/// The default handler: forwards every event, tagged with its shard, into a bounded channel
/// that application threads drain. When the application falls behind and the channel is full,
/// events are dropped and counted in `handler_events_dropped` — code that must never lose an
/// event runs as its own [`ShardHandler`] instead.
#[derive(Debug)]
pub struct ChannelHandler {
    events: Sender<(usize, Event)>,
}

impl ChannelHandler {
    /// A handler feeding `events`.
    pub fn new(events: Sender<(usize, Event)>) -> Self {
        Self { events }
    }
}

impl ShardHandler for ChannelHandler {
    fn on_event(&mut self, ctx: &mut ShardContext<'_>, event: Event) {
        match self.events.try_send((ctx.shard(), event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                Counters::add(&ctx.endpoint().metrics().handler_events_dropped, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_refuses_beyond_its_bound_per_target() {
        let mut outbound = Outbound::new(2);
        for _ in 0..OUTBOUND_ITEMS_MAX {
            assert!(outbound.push(1, Item::Stop).is_ok());
        }
        assert!(matches!(outbound.push(1, Item::Stop).map_err(|item| *item), Err(Item::Stop)));
        assert!(outbound.push(0, Item::Stop).is_ok(), "another target has its own room");
    }
}
