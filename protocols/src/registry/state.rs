//! The registry state machine: registration API, delta and anti-entropy handling, suspicion
//! and refutation.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;

use super::crdt::{OwnerRecord, Store};
use super::error::{validate_service_name, RegisterError, UnregisterError};
use super::events::{DownReason, Event, InEvent, OutEvent, Timer};
use super::message::{
    Delta, EntryUpdate, Message, OwnerDigest, OwnerState, OwnerStatus, OwnerSync, UnregisterReason,
    Value,
};
use super::Config;
use crate::hlc::Clock;
use crate::outbox::Sink;
use crate::peer::PeerId;
use crate::rng::Rng;
use crate::time::Now;
use crate::wire::{Limits, Wire};

/// Counters for metrics and tests. Monotonic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Broadcast deltas decoded and merged.
    pub deltas_applied: u64,
    /// Broadcast payloads that failed to decode (ignored).
    pub decode_errors: u64,
    /// Remote entries refused because their stamp was beyond `skew_max_ms`.
    pub skew_rejected: u64,
    /// `Suspect` broadcasts this node started.
    pub suspicions_sent: u64,
    /// Refutations (incarnation bumps) this node broadcast.
    pub refutations_sent: u64,
    /// Owners this node declared dead when their suspicion timer fired.
    pub deaths_declared: u64,
    /// `Digest` messages sent (anti-entropy rounds started, including on `PeerUp`).
    pub digests_sent: u64,
    /// `Sync` messages sent.
    pub syncs_sent: u64,
    /// `Sync` messages received and merged.
    pub syncs_received: u64,
    /// Tombstones removed after `tombstone_ttl_ms`.
    pub tombstones_collected: u64,
    /// Remote entries or owners refused by a bound: metadata over `meta_size_max`, an owner
    /// already at `entries_per_owner_max`, or a new owner beyond `owners_max`.
    pub entries_refused: u64,
    /// Remote statuses refused: an incarnation beyond the local wall clock plus
    /// `skew_max_ms` (incarnations start at a wall time), or a non-alive status about an
    /// owner we hold nothing of.
    pub statuses_refused: u64,
}

/// One node's replica of the service registry.
///
/// Outputs per call: `register`/`unregister` push at most 2; `handle` pushes at most one event
/// per affected entry plus one message per `sync_entries_per_message_max` entries sent, so a
/// driver draining after every call needs an outbox of roughly twice the largest registry it
/// expects (the default 65,536 covers the default bounds).
#[derive(Debug)]
pub struct State<P> {
    pub(super) local: P,
    pub(super) incarnation: u64,
    /// Shared by every node built from one configuration (see `node::SharedConfig`).
    pub(super) config: Arc<Config>,
    pub(super) limits: Limits,
    pub(super) rng: Rng,
    pub(super) clock: Clock,
    pub(super) store: Store<P>,
    pub(super) neighbours: BTreeSet<P>,
    pub(super) local_registered: usize,
    /// First owner of the next digest window (only used when there are more owners than
    /// `digest_owners_max`).
    pub(super) digest_cursor: Option<P>,
    pub(super) stats: Stats,
}

impl<P: PeerId> State<P> {
    /// Where the owner records live (a prefetch hint for the simulator: every digest, sent or
    /// received, walks them).
    pub(crate) fn heap(&self) -> *const u8 {
        self.store.records().heap()
    }
}

impl<P: PeerId + Wire> State<P> {
    /// A replica for node `local`, alive at `incarnation` (the node passes its start wall time
    /// in ms, so a restarted node outranks its previous life), with decoding bounds
    /// `Limits::default()`.
    ///
    /// # Panics
    /// If `config` fails [`Config::validate`] (the driver validates it at startup).
    pub fn new(local: P, incarnation: u64, config: impl Into<Arc<Config>>, rng: Rng) -> Self {
        let config = config.into();
        if let Err(e) = config.validate() {
            panic!("{e}");
        }
        let mut store = Store::default();
        store.merge_status(&local, OwnerStatus::alive(incarnation));
        Self {
            local,
            incarnation,
            clock: Clock::new(config.skew_max_ms),
            config,
            limits: Limits::default(),
            rng,
            store,
            neighbours: BTreeSet::new(),
            local_registered: 0,
            digest_cursor: None,
            stats: Stats::default(),
        }
    }

    /// Replaces the decoding bounds used for broadcast payloads.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// This node's identity.
    pub fn local(&self) -> &P {
        &self.local
    }

    /// This node's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Arms the first anti-entropy timer. The node calls it once, after construction.
    pub fn start(&mut self, _now: Now, out: &mut impl Sink<OutEvent<P>>) {
        self.arm_anti_entropy(out);
    }

    /// Registers `(name, local node, reg_id)` with `meta`: stamps it with the HLC, broadcasts
    /// the delta and emits [`Event::Registered`]. Pushes exactly 2 outputs.
    ///
    /// # Errors
    /// See [`RegisterError`]; on error nothing changed and nothing was pushed.
    pub fn register(
        &mut self,
        now: Now,
        name: &str,
        reg_id: u64,
        meta: Bytes,
        out: &mut impl Sink<OutEvent<P>>,
    ) -> Result<(), RegisterError> {
        validate_service_name(name)?;
        if meta.len() > self.config.meta_size_max {
            return Err(RegisterError::MetaTooLarge {
                len: meta.len(),
                len_max: self.config.meta_size_max,
            });
        }
        if self.is_local_registered(name, reg_id) {
            return Err(RegisterError::Duplicate { name: name.to_owned(), reg_id });
        }
        if self.local_registered >= self.config.services_local_max {
            return Err(RegisterError::TooManyServices {
                count_max: self.config.services_local_max,
            });
        }
        let stamp = self.clock.now(now.wall_ms);
        let value = Value::Registered { meta, stamp };
        let changed = self.store.merge_entry(&self.local, name, reg_id, value.clone(), now.mono_ms);
        assert!(changed.is_some(), "a fresh local stamp beats every stored value of our keys");
        self.local_registered += 1;
        self.broadcast_update(vec![EntryUpdate { name: name.to_owned(), reg_id, value }], out);
        out.push(OutEvent::EmitEvent(Event::Registered {
            name: name.to_owned(),
            node: self.local.clone(),
            reg_id,
        }));
        Ok(())
    }

    /// Ends the live registration `(name, local node, reg_id)`: writes a tombstone, broadcasts
    /// it and emits [`Event::Unregistered`] (reason `Unregistered`) or [`Event::Down`] with
    /// [`DownReason::HandleDropped`]. Pushes exactly 2 outputs.
    ///
    /// # Errors
    /// See [`UnregisterError`]; on error nothing changed and nothing was pushed.
    pub fn unregister(
        &mut self,
        now: Now,
        name: &str,
        reg_id: u64,
        reason: UnregisterReason,
        out: &mut impl Sink<OutEvent<P>>,
    ) -> Result<(), UnregisterError> {
        validate_service_name(name)?;
        if !self.is_local_registered(name, reg_id) {
            return Err(UnregisterError::NotRegistered { name: name.to_owned(), reg_id });
        }
        let stamp = self.clock.now(now.wall_ms);
        let value = Value::Tombstone { stamp, reason };
        let changed = self.store.merge_entry(&self.local, name, reg_id, value.clone(), now.mono_ms);
        assert!(changed.is_some(), "a fresh local stamp beats every stored value of our keys");
        self.local_registered -= 1;
        self.broadcast_update(vec![EntryUpdate { name: name.to_owned(), reg_id, value }], out);
        out.push(OutEvent::EmitEvent(removal_event(
            name.to_owned(),
            self.local.clone(),
            reg_id,
            reason,
        )));
        Ok(())
    }

    /// Processes one input.
    pub fn handle(&mut self, now: Now, event: InEvent<P>, out: &mut impl Sink<OutEvent<P>>) {
        match event {
            InEvent::Delivered { payload } => self.on_delivered(now, &payload, out),
            InEvent::Message { from, message } => match message {
                Message::Digest { range_start, range_end, owners } => {
                    self.handle_digest(from, range_start, range_end, owners, out);
                }
                Message::Sync { owners } => self.handle_sync(now, owners, out),
                Message::SyncRequest { owners } => self.handle_sync_request(from, owners, out),
            },
            InEvent::PeerUp(peer) => self.on_peer_up(peer, out),
            InEvent::PeerDown { peer, failed } => self.on_peer_down(peer, failed, out),
            InEvent::TimerExpired(Timer::AntiEntropy) => self.on_anti_entropy(now, out),
            InEvent::TimerExpired(Timer::Suspicion { node, incarnation }) => {
                self.on_suspicion_timeout(node, incarnation, out);
            }
        }
    }

    fn is_local_registered(&self, name: &str, reg_id: u64) -> bool {
        self.store.record(&self.local).is_some_and(|r| {
            r.entries.get(&(name.to_owned(), reg_id)).is_some_and(|s| s.value.is_registered())
        })
    }

    // ---- broadcasts -------------------------------------------------------------------

    fn on_delivered(&mut self, now: Now, payload: &[u8], out: &mut impl Sink<OutEvent<P>>) {
        let Ok(delta) = Delta::<P>::decode(payload, &self.limits) else {
            self.stats.decode_errors += 1;
            return;
        };
        self.stats.deltas_applied += 1;
        match delta {
            Delta::Update { owner, incarnation, entries }
            | Delta::Alive { node: owner, incarnation, entries } => {
                let with_entries = !entries.is_empty();
                let status = OwnerStatus::alive(incarnation);
                self.apply_remote_status(now, &owner, status, with_entries, out);
                for entry in entries {
                    self.apply_entry(now, &owner, entry, out);
                }
            }
            Delta::Suspect { node, incarnation } => {
                let status = OwnerStatus { incarnation, state: OwnerState::Suspect };
                self.apply_remote_status(now, &node, status, false, out);
            }
        }
    }

    fn broadcast_update(&mut self, entries: Vec<EntryUpdate>, out: &mut impl Sink<OutEvent<P>>) {
        for entries in self.chunk_owner(self.incarnation, entries) {
            let delta =
                Delta::Update { owner: self.local.clone(), incarnation: self.incarnation, entries };
            out.push(OutEvent::Broadcast(delta.encode()));
        }
    }

    // ---- merging ----------------------------------------------------------------------

    /// Checks a status that came from the network, then merges it. Refused (and counted):
    /// an incarnation beyond our wall clock plus `skew_max_ms` — incarnations start at a wall
    /// time, so only a hostile or broken peer sends one, and accepting `u64::MAX` would leave
    /// the owner unable to ever refute; a bare suspect or dead verdict (no entries with it)
    /// about an owner we hold nothing of (it hides nothing, and would let a peer make us store
    /// records without bound); a new owner beyond `owners_max`.
    fn apply_remote_status(
        &mut self,
        now: Now,
        owner: &P,
        status: OwnerStatus,
        with_entries: bool,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        if status.incarnation > now.wall_ms.saturating_add(self.config.skew_max_ms) {
            self.stats.statuses_refused += 1;
            return;
        }
        if *owner != self.local && self.store.record(owner).is_none() {
            if status.state != OwnerState::Alive && !with_entries {
                self.stats.statuses_refused += 1;
                return;
            }
            if self.store.records().len() >= self.config.owners_max {
                self.stats.entries_refused += 1;
                return;
            }
        }
        self.apply_status(owner, status, out);
    }

    /// Merges a status for `owner` and emits the resulting visibility changes. A status about
    /// this node is never stored: if it outranks our own, we refute.
    fn apply_status(&mut self, owner: &P, status: OwnerStatus, out: &mut impl Sink<OutEvent<P>>) {
        if *owner == self.local {
            if status > OwnerStatus::alive(self.incarnation) {
                self.refute(status.incarnation, out);
            }
            return;
        }
        let Some(before) = self.store.merge_status(owner, status) else { return };
        let was_dead = before.is_some_and(|s| s.state == OwnerState::Dead);
        let is_dead = status.state == OwnerState::Dead;
        if was_dead != is_dead {
            // Invariant: merge_status just stored a record for `owner`.
            let record = self.store.record(owner).expect("record exists after merge_status");
            for ((name, reg_id), _) in record.registered() {
                let event = if is_dead {
                    Event::Down {
                        name: name.clone(),
                        node: owner.clone(),
                        reg_id: *reg_id,
                        reason: DownReason::NodeDown,
                    }
                } else {
                    Event::Registered { name: name.clone(), node: owner.clone(), reg_id: *reg_id }
                };
                out.push(OutEvent::EmitEvent(event));
            }
        }
        // A suspicion only matters if it may hide something: without registered entries no
        // timer is armed (so statuses cannot make us arm timers without bound).
        let hides_entries = self.store.record(owner).is_some_and(|r| r.has_registered());
        if status.state == OwnerState::Suspect && hides_entries {
            out.push(OutEvent::ScheduleTimer {
                after_ms: self.config.suspicion_timeout_ms,
                timer: Timer::Suspicion { node: owner.clone(), incarnation: status.incarnation },
            });
        }
    }

    /// Merges one remote entry of `owner` and emits the resulting visibility change.
    fn apply_entry(
        &mut self,
        now: Now,
        owner: &P,
        entry: EntryUpdate,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        let EntryUpdate { name, reg_id, value } = entry;
        let key = (name, reg_id);
        let held = self.store.record(owner).and_then(|r| r.entries.get(&key)).map(|s| &s.value);
        if held.is_some_and(|held| value <= *held) {
            return; // Nothing new: idempotent re-merge, no clock update needed.
        }
        let held_is_none = held.is_none();
        let held_registered = held.is_some_and(Value::is_registered);
        if *owner != self.local && !self.admit_remote_entry(owner, held_is_none, &value) {
            self.stats.entries_refused += 1;
            return;
        }
        if let Err(_skew) = self.clock.update(now.wall_ms, value.stamp()) {
            self.stats.skew_rejected += 1;
            return;
        }
        let (name, reg_id) = key;
        if *owner == self.local {
            match (held_is_none, value.is_registered(), held_registered) {
                // A tombstone of a key we do not hold says what we already know; storing it
                // would only make it bounce between replicas' collections.
                (true, false, _) => {}
                // A newer tombstone over our tombstone: harmless, keep it for convergence.
                (false, false, false) => {
                    self.store.merge_entry(owner, &name, reg_id, value, now.mono_ms);
                }
                _ => self.reclaim(now, name, reg_id, out),
            }
            return;
        }
        if held_is_none
            && !value.is_registered()
            && value.stamp().wall_ms.saturating_add(self.config.tombstone_ttl_ms) <= now.wall_ms
        {
            // A tombstone older than the TTL for a key we never held: it has been (or is about
            // to be) collected everywhere; storing it again would make it bounce forever.
            return;
        }
        let owner_dead =
            self.store.record(owner).is_some_and(|r| r.status.state == OwnerState::Dead);
        let is_registered = value.is_registered();
        let tombstone_reason = match &value {
            Value::Tombstone { reason, .. } => Some(*reason),
            Value::Registered { .. } => None,
        };
        let Some(before) = self.store.merge_entry(owner, &name, reg_id, value, now.mono_ms) else {
            return;
        };
        let was_registered = before.as_ref().is_some_and(Value::is_registered);
        if owner_dead || was_registered == is_registered {
            return; // Visibility unchanged (hidden owner, or a newer write of the same kind).
        }
        let event = match tombstone_reason {
            None => Event::Registered { name, node: owner.clone(), reg_id },
            Some(reason) => removal_event(name, owner.clone(), reg_id, reason),
        };
        out.push(OutEvent::EmitEvent(event));
    }

    /// Bounds on what a remote write may make us store: metadata within `meta_size_max`, at
    /// most `entries_per_owner_max` keys per owner, at most `owners_max` owners.
    fn admit_remote_entry(&self, owner: &P, new_key: bool, value: &Value) -> bool {
        if let Value::Registered { meta, .. } = value {
            if meta.len() > self.config.meta_size_max {
                return false;
            }
        }
        if !new_key {
            return true;
        }
        match self.store.record(owner) {
            Some(record) => record.entries.len() < self.config.entries_per_owner_max(),
            None => self.store.records().len() < self.config.owners_max,
        }
    }

    /// Someone holds a write of one of *our* keys that beats ours and would change its
    /// liveness: a leftover from a previous life of this node (or a write brought back after
    /// our tombstone was collected). We are the single writer: re-assert our current value
    /// (a tombstone if we hold nothing) with a stamp beyond it (the clock was already moved
    /// past the foreign stamp).
    fn reclaim(&mut self, now: Now, name: String, reg_id: u64, out: &mut impl Sink<OutEvent<P>>) {
        let held = self
            .store
            .record(&self.local)
            .and_then(|r| r.entries.get(&(name.clone(), reg_id)))
            .map(|s| s.value.clone());
        let stamp = self.clock.now(now.wall_ms);
        let value = match held {
            Some(Value::Registered { meta, .. }) => Value::Registered { meta, stamp },
            Some(Value::Tombstone { reason, .. }) => Value::Tombstone { stamp, reason },
            None => Value::Tombstone { stamp, reason: UnregisterReason::HandleDropped },
        };
        let changed =
            self.store.merge_entry(&self.local, &name, reg_id, value.clone(), now.mono_ms);
        assert!(changed.is_some(), "a fresh local stamp beats every stored value of our keys");
        self.broadcast_update(vec![EntryUpdate { name, reg_id, value }], out);
    }

    /// Someone believes this node is suspect/dead (or knows a later life): bump the
    /// incarnation beyond theirs and broadcast `Alive` with every live entry.
    fn refute(&mut self, incarnation_seen: u64, out: &mut impl Sink<OutEvent<P>>) {
        // Incarnations start at a wall time in ms; u64::MAX is unreachable, saturate anyway.
        self.incarnation = self.incarnation.max(incarnation_seen).saturating_add(1);
        self.store.merge_status(&self.local, OwnerStatus::alive(self.incarnation));
        self.stats.refutations_sent += 1;
        let entries: Vec<EntryUpdate> = self
            .store
            .record(&self.local)
            .map(|r| {
                r.registered()
                    .map(|((name, reg_id), s)| EntryUpdate {
                        name: name.clone(),
                        reg_id: *reg_id,
                        value: s.value.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        for entries in self.chunk_owner(self.incarnation, entries) {
            let delta =
                Delta::Alive { node: self.local.clone(), incarnation: self.incarnation, entries };
            out.push(OutEvent::Broadcast(delta.encode()));
        }
    }

    // ---- failure detection ------------------------------------------------------------

    fn on_peer_up(&mut self, peer: P, out: &mut impl Sink<OutEvent<P>>) {
        if peer == self.local {
            return;
        }
        self.neighbours.insert(peer.clone());
        self.send_digest(peer, out);
    }

    fn on_peer_down(&mut self, peer: P, failed: bool, out: &mut impl Sink<OutEvent<P>>) {
        self.neighbours.remove(&peer);
        if !failed || peer == self.local {
            return; // Leaving an active view says nothing about the peer's services.
        }
        let Some(record) = self.store.record(&peer) else { return };
        if record.status.state != OwnerState::Alive || !record.has_registered() {
            return; // Already suspected/dead at this incarnation, or nothing to protect.
        }
        let incarnation = record.status.incarnation;
        self.stats.suspicions_sent += 1;
        let suspect = Delta::Suspect { node: peer.clone(), incarnation };
        out.push(OutEvent::Broadcast(suspect.encode()));
        self.apply_status(&peer, OwnerStatus { incarnation, state: OwnerState::Suspect }, out);
    }

    fn on_suspicion_timeout(
        &mut self,
        node: P,
        incarnation: u64,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        let suspected = OwnerStatus { incarnation, state: OwnerState::Suspect };
        if self.store.record(&node).map(|r| r.status) != Some(suspected) {
            return; // Refuted, or already dead.
        }
        self.stats.deaths_declared += 1;
        self.apply_status(&node, OwnerStatus { incarnation, state: OwnerState::Dead }, out);
    }

    // ---- anti-entropy -----------------------------------------------------------------

    fn arm_anti_entropy(&mut self, out: &mut impl Sink<OutEvent<P>>) {
        let period = self.config.anti_entropy_period_ms;
        let after_ms = period - period / 4 + self.rng.below(period / 2 + 1);
        out.push(OutEvent::ScheduleTimer { after_ms, timer: Timer::AntiEntropy });
    }

    fn on_anti_entropy(&mut self, now: Now, out: &mut impl Sink<OutEvent<P>>) {
        self.stats.tombstones_collected +=
            self.store.collect_tombstones(now.mono_ms, self.config.tombstone_ttl_ms);
        if let Some(peer) = self.rng.choose_from(self.neighbours.iter()).cloned() {
            self.send_digest(peer, out);
        }
        self.arm_anti_entropy(out);
    }

    /// Builds the digest of the next window of owners (all of them when they fit).
    ///
    /// Only owners with entries (registrations or tombstones) are summarised: an owner status
    /// matters only through the entries it hides or reveals, and leaving entry-less owners out
    /// keeps the digest and every replica O(owners with services), not O(cluster size).
    pub(super) fn digest(&mut self) -> Message<P> {
        let relevant: Vec<(&P, &OwnerRecord)> =
            self.store.records().iter().filter(|(_, r)| !r.entries.is_empty()).collect();
        let max = self.config.digest_owners_max;
        if relevant.len() <= max {
            let owners = relevant.iter().map(|(p, r)| ((*p).clone(), r.digest())).collect();
            self.digest_cursor = None;
            return Message::Digest { range_start: None, range_end: None, owners };
        }
        let start_index = match &self.digest_cursor {
            Some(cursor) => relevant.partition_point(|(p, _)| *p < cursor),
            None => 0,
        };
        let start_index = if start_index >= relevant.len() { 0 } else { start_index };
        let window = &relevant[start_index..(start_index + max).min(relevant.len())];
        let owners: Vec<(P, OwnerDigest)> =
            window.iter().map(|(p, r)| ((*p).clone(), r.digest())).collect();
        let range_start = (start_index > 0).then(|| relevant[start_index].0.clone());
        let end_index = start_index + window.len();
        let (range_end, next) = if end_index < relevant.len() {
            (Some(relevant[end_index - 1].0.clone()), Some(relevant[end_index].0.clone()))
        } else {
            (None, None)
        };
        self.digest_cursor = next;
        Message::Digest { range_start, range_end, owners }
    }

    fn send_digest(&mut self, to: P, out: &mut impl Sink<OutEvent<P>>) {
        let message = self.digest();
        self.stats.digests_sent += 1;
        out.push(OutEvent::SendMessage { to, message });
    }

    fn handle_digest(
        &mut self,
        from: P,
        range_start: Option<P>,
        range_end: Option<P>,
        owners: Vec<(P, OwnerDigest)>,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        let mut push: Vec<OwnerSync<P>> = Vec::new();
        let mut pull: Vec<P> = Vec::new();
        let mut seen: BTreeSet<&P> = BTreeSet::new();
        for (owner, theirs) in owners.iter().take(self.config.digest_owners_max) {
            if !seen.insert(owner) {
                continue; // Named twice by an untrusted digest: answer once.
            }
            let Some(record) = self.store.record(owner) else {
                pull.push(owner.clone());
                continue;
            };
            let mine = record.digest();
            if mine.same_entries(theirs) {
                if mine.status() > theirs.status() {
                    push.push(OwnerSync {
                        owner: owner.clone(),
                        status: record.status,
                        entries: Vec::new(),
                    });
                } else if theirs.status() > mine.status() {
                    pull.push(owner.clone());
                }
            } else {
                // Summaries cannot tell which side is missing what: exchange both ways.
                push.push(OwnerSync {
                    owner: owner.clone(),
                    status: record.status,
                    entries: record.updates(),
                });
                pull.push(owner.clone());
            }
        }
        let in_range = |p: &P| {
            range_start.as_ref().is_none_or(|s| p >= s) && range_end.as_ref().is_none_or(|e| p <= e)
        };
        for (owner, record) in self.store.records() {
            if !seen.contains(owner) && in_range(owner) && !record.entries.is_empty() {
                push.push(OwnerSync {
                    owner: owner.clone(),
                    status: record.status,
                    entries: record.updates(),
                });
            }
        }
        push.sort_by(|a, b| a.owner.cmp(&b.owner));
        self.send_syncs(&from, push, out);
        if !pull.is_empty() {
            out.push(OutEvent::SendMessage {
                to: from,
                message: Message::SyncRequest { owners: pull },
            });
        }
    }

    fn handle_sync_request(
        &mut self,
        from: P,
        mut owners: Vec<P>,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        // Each owner is sent once however often the (untrusted) request names it.
        owners.sort();
        owners.dedup();
        let push: Vec<OwnerSync<P>> = owners
            .iter()
            .take(self.config.digest_owners_max)
            .filter_map(|owner| {
                self.store.record(owner).map(|record| OwnerSync {
                    owner: owner.clone(),
                    status: record.status,
                    entries: record.updates(),
                })
            })
            .collect();
        self.send_syncs(&from, push, out);
    }

    fn handle_sync(
        &mut self,
        now: Now,
        owners: Vec<OwnerSync<P>>,
        out: &mut impl Sink<OutEvent<P>>,
    ) {
        self.stats.syncs_received += 1;
        for OwnerSync { owner, status, entries } in owners {
            self.apply_remote_status(now, &owner, status, !entries.is_empty(), out);
            for entry in entries {
                self.apply_entry(now, &owner, entry, out);
            }
        }
    }

    fn send_syncs(&mut self, to: &P, records: Vec<OwnerSync<P>>, out: &mut impl Sink<OutEvent<P>>) {
        for owners in self.chunk_syncs(records) {
            self.stats.syncs_sent += 1;
            out.push(OutEvent::SendMessage { to: to.clone(), message: Message::Sync { owners } });
        }
    }

    // ---- message bounds ---------------------------------------------------------------

    /// Splits owner records into messages of at most `sync_entries_per_message_max` items
    /// (one per owner header, one per entry) and about `message_size_max` bytes. An owner may
    /// span several messages (each chunk repeats its status); a single entry is never split,
    /// and every chunk of an owner carries at least one entry.
    pub(super) fn chunk_syncs(&self, records: Vec<OwnerSync<P>>) -> Vec<Vec<OwnerSync<P>>> {
        let items_max = self.config.sync_entries_per_message_max;
        let size_max = self.config.message_size_max;
        let mut messages = Vec::new();
        let mut current: Vec<OwnerSync<P>> = Vec::new();
        let (mut items, mut size) = (0usize, 5usize); // type byte + list length
        for OwnerSync { owner, status, entries } in records {
            let header = owner.encoded_size_hint() + OwnerStatus::ENCODED_SIZE + 4;
            let mut entries = entries.into_iter().peekable();
            loop {
                let first = entries.peek().map_or(0, EntryUpdate::encoded_size);
                let needed_items = if entries.peek().is_some() { 2 } else { 1 };
                if !current.is_empty()
                    && (items + needed_items > items_max || size + header + first > size_max)
                {
                    messages.push(std::mem::take(&mut current));
                    (items, size) = (0, 5);
                }
                let mut chunk = OwnerSync { owner: owner.clone(), status, entries: Vec::new() };
                items += 1;
                size += header;
                while let Some(entry) = entries.peek() {
                    let entry_size = entry.encoded_size();
                    if items + 1 > items_max
                        || (size + entry_size > size_max && !chunk.entries.is_empty())
                    {
                        break;
                    }
                    items += 1;
                    size += entry_size;
                    // Invariant: peek() just returned Some.
                    chunk.entries.push(entries.next().expect("peeked entry"));
                }
                current.push(chunk);
                if entries.peek().is_none() {
                    break;
                }
                messages.push(std::mem::take(&mut current));
                (items, size) = (0, 5);
            }
        }
        if !current.is_empty() {
            messages.push(current);
        }
        messages
    }

    /// Splits one owner's entries into broadcast-sized chunks (at least one, possibly empty).
    fn chunk_owner(&self, incarnation: u64, entries: Vec<EntryUpdate>) -> Vec<Vec<EntryUpdate>> {
        let record = OwnerSync {
            owner: self.local.clone(),
            status: OwnerStatus::alive(incarnation),
            entries,
        };
        self.chunk_syncs(vec![record])
            .into_iter()
            .flat_map(|message| message.into_iter().map(|chunk| chunk.entries))
            .collect()
    }
}

fn removal_event<P>(name: String, node: P, reg_id: u64, reason: UnregisterReason) -> Event<P> {
    match reason {
        UnregisterReason::Unregistered => Event::Unregistered { name, node, reg_id },
        UnregisterReason::HandleDropped => {
            Event::Down { name, node, reg_id, reason: DownReason::HandleDropped }
        }
    }
}
