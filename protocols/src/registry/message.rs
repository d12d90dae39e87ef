//! Registry data types that travel on the wire, and their encoding.
//!
//! Every registry frame starts with a message-type byte in `0x20..=0x2F`, so one dispatcher can
//! route broadcast deltas (Plumtree payloads tagged `Tag::REGISTRY`) and direct anti-entropy
//! messages alike:
//!
//! | code | frame | path |
//! |------|-------|------|
//! | `0x20` | [`Delta::Update`]: an owner's registrations / tombstones | Plumtree broadcast |
//! | `0x21` | [`Delta::Suspect`]: an owner is suspected at an incarnation | Plumtree broadcast |
//! | `0x22` | [`Delta::Alive`]: an owner refutes, with its live entries | Plumtree broadcast |
//! | `0x28` | [`Message::Digest`]: per-owner summaries, starts a push-pull round | direct |
//! | `0x29` | [`Message::Sync`]: owner statuses and entries | direct |
//! | `0x2A` | [`Message::SyncRequest`]: "push me these owners" | direct |
//!
//! Codes `0x23..=0x27` and `0x2B..=0x2F` are reserved. Integers are big-endian; strings carry a
//! u8 length, byte strings and lists a u32 length that is checked against [`Limits`] and the
//! remaining input before anything is allocated.

use bytes::Bytes;

use crate::hlc::Hlc;
use crate::wire::{
    decode_list, decode_option, encode_list, encode_option, list_size_hint, option_size_hint,
    DecodeError, Limits, Reader, Wire, Writer,
};

/// Longest service name, in bytes.
pub const SERVICE_NAME_LEN_MAX: usize = 255;

/// Type byte of [`Delta::Update`].
pub const CODE_DELTA_UPDATE: u8 = 0x20;
/// Type byte of [`Delta::Suspect`].
pub const CODE_DELTA_SUSPECT: u8 = 0x21;
/// Type byte of [`Delta::Alive`].
pub const CODE_DELTA_ALIVE: u8 = 0x22;
/// Type byte of [`Message::Digest`].
pub const CODE_DIGEST: u8 = 0x28;
/// Type byte of [`Message::Sync`].
pub const CODE_SYNC: u8 = 0x29;
/// Type byte of [`Message::SyncRequest`].
pub const CODE_SYNC_REQUEST: u8 = 0x2A;

/// Liveness of an owner as this replica believes it. Ordered `Alive < Suspect < Dead`: at equal
/// incarnation the later state wins a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerState {
    /// Believed alive; its entries are visible.
    Alive,
    /// Suspected after a failed link; entries still visible until the suspicion times out.
    Suspect,
    /// Declared dead; its entries are kept but invisible until it refutes.
    Dead,
}

impl OwnerState {
    fn to_wire(self) -> u8 {
        match self {
            Self::Alive => 0,
            Self::Suspect => 1,
            Self::Dead => 2,
        }
    }

    fn from_wire(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            0 => Ok(Self::Alive),
            1 => Ok(Self::Suspect),
            2 => Ok(Self::Dead),
            tag => Err(DecodeError::UnknownTag { what: "owner state", tag }),
        }
    }
}

/// An owner's liveness record. Ordered by incarnation, then state (SWIM's merge rule): the
/// larger one wins a merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OwnerStatus {
    /// Bumped only by the owner itself, when it refutes a suspicion or restarts.
    pub incarnation: u64,
    /// Liveness at that incarnation.
    pub state: OwnerState,
}

impl OwnerStatus {
    /// Encoded size: u64 incarnation + u8 state.
    pub const ENCODED_SIZE: usize = 9;

    /// An `Alive` status at `incarnation`.
    pub fn alive(incarnation: u64) -> Self {
        Self { incarnation, state: OwnerState::Alive }
    }
}

impl Wire for OwnerStatus {
    const ENCODED_SIZE_MIN: usize = Self::ENCODED_SIZE;

    fn encode(&self, w: &mut Writer) {
        w.u64(self.incarnation);
        w.u8(self.state.to_wire());
    }

    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        Ok(Self { incarnation: r.u64()?, state: OwnerState::from_wire(r.u8()?)? })
    }
}

/// Why a registration ended (the reason stored in its tombstone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UnregisterReason {
    /// The application unregistered the service explicitly.
    Unregistered,
    /// The application dropped the registration handle (e.g. the owning task ended).
    HandleDropped,
}

/// The value of one registry key: the last write of its owner.
///
/// Values are totally ordered; a merge keeps the larger. The order is the HLC stamp first (the
/// owner's last write wins), then, only to keep merges deterministic should two different
/// values ever carry the same stamp, `Registered < Tombstone(Unregistered) <
/// Tombstone(HandleDropped)` and finally the metadata bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// The service is registered with this metadata.
    Registered {
        /// Opaque application metadata, at most `meta_size_max` bytes.
        meta: Bytes,
        /// Owner's HLC stamp of the registration.
        stamp: Hlc,
    },
    /// The registration ended; kept for `tombstone_ttl_ms` so older writes cannot resurrect it.
    Tombstone {
        /// Owner's HLC stamp of the removal.
        stamp: Hlc,
        /// Why it ended.
        reason: UnregisterReason,
    },
}

impl Value {
    /// The owner's stamp of this write.
    pub fn stamp(&self) -> Hlc {
        match self {
            Self::Registered { stamp, .. } | Self::Tombstone { stamp, .. } => *stamp,
        }
    }

    /// True for [`Value::Registered`].
    pub fn is_registered(&self) -> bool {
        matches!(self, Self::Registered { .. })
    }

    fn rank(&self) -> (Hlc, u8, &[u8]) {
        match self {
            Self::Registered { meta, stamp } => (*stamp, 0, meta),
            Self::Tombstone { stamp, reason: UnregisterReason::Unregistered } => (*stamp, 1, &[]),
            Self::Tombstone { stamp, reason: UnregisterReason::HandleDropped } => (*stamp, 2, &[]),
        }
    }

    /// Encoded size in bytes.
    pub fn encoded_size(&self) -> usize {
        match self {
            Self::Registered { meta, .. } => 1 + Hlc::ENCODED_SIZE + 4 + meta.len(),
            Self::Tombstone { .. } => 1 + Hlc::ENCODED_SIZE,
        }
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Wire for Value {
    // tag + stamp (a tombstone).
    const ENCODED_SIZE_MIN: usize = 1 + Hlc::ENCODED_SIZE;

    /// Tag `0` registered (stamp, u32-prefixed meta), `1` tombstone unregistered (stamp), `2`
    /// tombstone handle dropped (stamp).
    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Registered { meta, stamp } => {
                w.u8(0);
                stamp.encode(w);
                w.bytes(meta);
            }
            Self::Tombstone { stamp, reason } => {
                w.u8(match reason {
                    UnregisterReason::Unregistered => 1,
                    UnregisterReason::HandleDropped => 2,
                });
                stamp.encode(w);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        let tag = r.u8()?;
        let stamp = Hlc::decode(r, limits)?;
        match tag {
            0 => {
                let meta = r.bytes("service metadata", limits.payload_size_max)?;
                Ok(Self::Registered { meta: Bytes::copy_from_slice(meta), stamp })
            }
            1 => Ok(Self::Tombstone { stamp, reason: UnregisterReason::Unregistered }),
            2 => Ok(Self::Tombstone { stamp, reason: UnregisterReason::HandleDropped }),
            tag => Err(DecodeError::UnknownTag { what: "registry value", tag }),
        }
    }

    fn encoded_size_hint(&self) -> usize {
        self.encoded_size()
    }
}

/// One key of an owner with its value, as carried in deltas and syncs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EntryUpdate {
    /// Service name, 1..=255 bytes of UTF-8.
    pub name: String,
    /// Registration id, unique per (owner, name) among live registrations.
    pub reg_id: u64,
    /// The owner's write.
    pub value: Value,
}

impl EntryUpdate {
    /// Encoded size in bytes.
    pub fn encoded_size(&self) -> usize {
        1 + self.name.len() + 8 + self.value.encoded_size()
    }
}

impl Wire for EntryUpdate {
    // name (length byte + 1 byte) + reg_id + smallest value.
    const ENCODED_SIZE_MIN: usize = 2 + 8 + Value::ENCODED_SIZE_MIN;

    fn encode(&self, w: &mut Writer) {
        w.short_str(&self.name);
        w.u64(self.reg_id);
        self.value.encode(w);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        let name = r.short_str("service name")?;
        if name.is_empty() {
            return Err(DecodeError::Invalid {
                what: "service name",
                reason: "empty (names are 1..=255 bytes)".to_owned(),
            });
        }
        let name = name.to_owned();
        let reg_id = r.u64()?;
        let value = Value::decode(r, limits)?;
        Ok(Self { name, reg_id, value })
    }

    fn encoded_size_hint(&self) -> usize {
        self.encoded_size()
    }
}

/// Summary of what a replica holds about one owner, compared during anti-entropy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OwnerDigest {
    /// The owner's incarnation.
    pub incarnation: u64,
    /// The owner's liveness at that incarnation.
    pub state: OwnerState,
    /// Largest stamp among the owner's entries (registered and tombstones); [`Hlc::ZERO`] when
    /// there are none.
    pub entries_max_stamp: Hlc,
    /// Number of the owner's entries held (registered and tombstones).
    pub entries_count: u32,
    /// FNV-1a hash of every entry's key, kind and stamp, in key order. The largest stamp and
    /// the count alone miss replicas that differ in an older entry (A holds k1@3, B k1@5, both
    /// hold k2@10): those never healed.
    pub entries_hash: u64,
}

impl OwnerDigest {
    /// Encoded size: status (9) + stamp (12) + count (4) + hash (8).
    pub const ENCODED_SIZE: usize = OwnerStatus::ENCODED_SIZE + Hlc::ENCODED_SIZE + 4 + 8;

    /// The status part.
    pub fn status(&self) -> OwnerStatus {
        OwnerStatus { incarnation: self.incarnation, state: self.state }
    }

    /// True when both digests summarise the same entries (same largest stamp, count and hash).
    pub fn same_entries(&self, other: &Self) -> bool {
        self.entries_max_stamp == other.entries_max_stamp
            && self.entries_count == other.entries_count
            && self.entries_hash == other.entries_hash
    }
}

impl Wire for OwnerDigest {
    const ENCODED_SIZE_MIN: usize = Self::ENCODED_SIZE;

    fn encode(&self, w: &mut Writer) {
        self.status().encode(w);
        self.entries_max_stamp.encode(w);
        w.u32(self.entries_count);
        w.u64(self.entries_hash);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        let status = OwnerStatus::decode(r, limits)?;
        Ok(Self {
            incarnation: status.incarnation,
            state: status.state,
            entries_max_stamp: Hlc::decode(r, limits)?,
            entries_count: r.u32()?,
            entries_hash: r.u64()?,
        })
    }
}

/// One owner's status and (a chunk of) its entries, as carried by [`Message::Sync`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerSync<P> {
    /// The owner.
    pub owner: P,
    /// The sender's view of its liveness.
    pub status: OwnerStatus,
    /// Entries (registered and tombstones); an owner may be split over several messages.
    pub entries: Vec<EntryUpdate>,
}

impl<P: Wire> Wire for OwnerSync<P> {
    const ENCODED_SIZE_MIN: usize = P::ENCODED_SIZE_MIN + OwnerStatus::ENCODED_SIZE + 4;

    fn encode(&self, w: &mut Writer) {
        self.owner.encode(w);
        self.status.encode(w);
        encode_list(w, &self.entries);
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        Ok(Self {
            owner: P::decode(r, limits)?,
            status: OwnerStatus::decode(r, limits)?,
            entries: decode_list(r, limits, "registry entries")?,
        })
    }

    fn encoded_size_hint(&self) -> usize {
        self.owner.encoded_size_hint() + OwnerStatus::ENCODED_SIZE + list_size_hint(&self.entries)
    }
}

/// A direct (point-to-point) anti-entropy message between neighbours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<P> {
    /// `0x28`. Starts a push-pull round: the sender's summary of every owner in
    /// `[range_start, range_end]` (`None` = unbounded). The receiver answers with a `Sync` of
    /// the owners it knows better (or that are missing from the digest inside the range) and a
    /// `SyncRequest` for the owners the sender knows better.
    Digest {
        /// First owner covered (inclusive); `None` from the smallest.
        range_start: Option<P>,
        /// Last owner covered (inclusive); `None` to the largest.
        range_end: Option<P>,
        /// Summaries, in ascending owner order, at most `digest_owners_max`.
        owners: Vec<(P, OwnerDigest)>,
    },
    /// `0x29`. Owner statuses and entries to merge (LWW per key, SWIM order per owner).
    Sync {
        /// At most `sync_entries_per_message_max` owner headers plus entries.
        owners: Vec<OwnerSync<P>>,
    },
    /// `0x2A`. Asks the receiver to send a `Sync` with its records of these owners (the pull
    /// half of the round; never answered with another request).
    SyncRequest {
        /// Owners wanted.
        owners: Vec<P>,
    },
}

impl<P> Message<P> {
    /// Every [`Message::kind`], by [`Message::kind_index`].
    pub const KINDS: [&'static str; 3] =
        ["registry_digest", "registry_sync", "registry_sync_request"];

    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Position of [`Message::kind`] in [`Message::KINDS`] (counters indexed by kind).
    pub fn kind_index(&self) -> usize {
        match self {
            Self::Digest { .. } => 0,
            Self::Sync { .. } => 1,
            Self::SyncRequest { .. } => 2,
        }
    }
}

impl<P: Wire> Wire for Message<P> {
    // type byte + the smallest body (a `SyncRequest` or `Sync` with an empty list).
    const ENCODED_SIZE_MIN: usize = 1 + 4;

    fn encode(&self, w: &mut Writer) {
        match self {
            Self::Digest { range_start, range_end, owners } => {
                w.u8(CODE_DIGEST);
                encode_option(w, range_start);
                encode_option(w, range_end);
                w.len_u32(owners.len());
                for (owner, digest) in owners {
                    owner.encode(w);
                    digest.encode(w);
                }
            }
            Self::Sync { owners } => {
                w.u8(CODE_SYNC);
                encode_list(w, owners);
            }
            Self::SyncRequest { owners } => {
                w.u8(CODE_SYNC_REQUEST);
                encode_list(w, owners);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, DecodeError> {
        match r.u8()? {
            CODE_DIGEST => {
                let range_start = decode_option(r, limits, "bool")?;
                let range_end = decode_option(r, limits, "bool")?;
                let len = r.list_len(
                    "registry digest",
                    limits.list_len_max,
                    P::ENCODED_SIZE_MIN + OwnerDigest::ENCODED_SIZE,
                )?;
                let mut owners = Vec::with_capacity(len);
                for _ in 0..len {
                    owners.push((P::decode(r, limits)?, OwnerDigest::decode(r, limits)?));
                }
                Ok(Self::Digest { range_start, range_end, owners })
            }
            CODE_SYNC => Ok(Self::Sync { owners: decode_list(r, limits, "registry sync")? }),
            CODE_SYNC_REQUEST => {
                Ok(Self::SyncRequest { owners: decode_list(r, limits, "registry sync request")? })
            }
            tag => Err(DecodeError::UnknownTag { what: "registry message", tag }),
        }
    }

    fn encoded_size_hint(&self) -> usize {
        1 + match self {
            Self::Digest { range_start, range_end, owners } => {
                option_size_hint(range_start)
                    + option_size_hint(range_end)
                    + 4
                    + owners
                        .iter()
                        .map(|(owner, _)| owner.encoded_size_hint() + OwnerDigest::ENCODED_SIZE)
                        .sum::<usize>()
            }
            Self::Sync { owners } => list_size_hint(owners),
            Self::SyncRequest { owners } => list_size_hint(owners),
        }
    }
}

/// A registry broadcast, carried as a Plumtree payload tagged `Tag::REGISTRY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta<P> {
    /// `0x20`. New writes of `owner` (registrations and tombstones). Also tells receivers the
    /// owner is alive at `incarnation` (which never overrides a suspicion or death at the same
    /// incarnation).
    Update {
        /// The single writer of these keys.
        owner: P,
        /// The owner's incarnation when it wrote them.
        incarnation: u64,
        /// The writes.
        entries: Vec<EntryUpdate>,
    },
    /// `0x21`. `node` is suspected at `incarnation` after a failed link.
    Suspect {
        /// The suspected owner.
        node: P,
        /// Its incarnation as known by the suspecter.
        incarnation: u64,
    },
    /// `0x22`. `node` refutes: it is alive at the (bumped) `incarnation`; carries (a chunk of)
    /// its live entries so replicas that dropped them re-learn them.
    Alive {
        /// The refuting owner (always the broadcaster).
        node: P,
        /// Its new incarnation.
        incarnation: u64,
        /// Live entries; a large registry is split over several `Alive` deltas.
        entries: Vec<EntryUpdate>,
    },
}

impl<P: Wire> Delta<P> {
    /// Encodes the delta as a self-contained payload starting with its type byte.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::new();
        match self {
            Self::Update { owner, incarnation, entries } => {
                w.u8(CODE_DELTA_UPDATE);
                owner.encode(&mut w);
                w.u64(*incarnation);
                encode_list(&mut w, entries);
            }
            Self::Suspect { node, incarnation } => {
                w.u8(CODE_DELTA_SUSPECT);
                node.encode(&mut w);
                w.u64(*incarnation);
            }
            Self::Alive { node, incarnation, entries } => {
                w.u8(CODE_DELTA_ALIVE);
                node.encode(&mut w);
                w.u64(*incarnation);
                encode_list(&mut w, entries);
            }
        }
        w.finish()
    }

    /// Decodes a payload produced by [`Delta::encode`]; every byte must be consumed.
    ///
    /// # Errors
    /// Any [`DecodeError`]; decoding has no side effects.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        if bytes.len() > limits.frame_size_max {
            return Err(DecodeError::FrameTooLarge {
                len: bytes.len(),
                len_max: limits.frame_size_max,
            });
        }
        let mut r = Reader::new(bytes);
        let delta = match r.u8()? {
            CODE_DELTA_UPDATE => Self::Update {
                owner: P::decode(&mut r, limits)?,
                incarnation: r.u64()?,
                entries: decode_list(&mut r, limits, "registry entries")?,
            },
            CODE_DELTA_SUSPECT => {
                Self::Suspect { node: P::decode(&mut r, limits)?, incarnation: r.u64()? }
            }
            CODE_DELTA_ALIVE => Self::Alive {
                node: P::decode(&mut r, limits)?,
                incarnation: r.u64()?,
                entries: decode_list(&mut r, limits, "registry entries")?,
            },
            tag => return Err(DecodeError::UnknownTag { what: "registry delta", tag }),
        };
        r.finish()?;
        Ok(delta)
    }
}
