//! The trust store: the public key pinned for each known peer.
//!
//! # Files
//!
//! `<auth_key_dir>/trusted/` (0700, created when missing) holds one file per pin,
//! `<name>.pub`, where `<name>` is the peer's node name (`name@host`, validated by
//! [`NodeName::parse`]) and the contents are the PEM `PUBLIC KEY` format of `node.pub` (see
//! [`super::keys`]): an operator pins a peer by copying its `node.pub` there under the peer's
//! name. Files are written atomically with mode 0600 (who trusts whom is nobody else's
//! business).
//!
//! # Bounds
//!
//! One file and one map entry (~100 bytes) per pinned peer; the number of pins is bounded only
//! by the filesystem, which is also where an operator prunes them. A name longer than 251 bytes
//! can be pinned in memory but not persisted (file names are limited to 255 bytes): the pin
//! then reports its write error.
//!
//! # Concurrency
//!
//! One store is shared by all shards in an `Arc`. Lookups take a read lock on the in-memory map
//! that is never held during disk I/O; file writes are serialised by a separate mutex, and
//! every write re-checks the map under it, so the file of a peer always ends up matching the
//! in-memory pin whatever the interleaving of [`TrustStore::pin_if_new`], [`TrustStore::store`]
//! and [`TrustStore::delete`].
//!
//! # Pins from handshakes
//!
//! A first-contact pin is one small fsynced file: 6.9 ms on the reference machine (`cargo bench
//! -p shoal-benches --bench auth`, `pin_first_contact_fsync`), far too long to block a shard.
//! [`TrustStore::pin_if_new_deferred`] (what the handshake calls) pins in memory at once and
//! queues the file for the store's writer thread (queue bound [`PERSIST_QUEUE_MAX`]; when it is
//! full the caller writes the file itself, so nothing is dropped). The writer logs and counts
//! failed writes ([`TrustStore::persist_failures`]); [`TrustStore::sync`] waits until every
//! queued pin is on disk, and dropping the store does too.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;

use crossbeam::channel::{self, Sender};

use shoal_protocols::NodeName;

use super::keys::{fingerprint, Fingerprint, KeyError};
use crate::fsutil::{self, publish, read_bounded, remove_if_exists, FileError, FileOp, Publish};
use crate::keyformat::{parse_public_key_pem, public_key_pem, PUBLIC_KEY_FILE_MAX_BYTES};

/// Pins waiting for the writer thread at most; beyond, the caller writes its pin itself (guess:
/// a burst of first contacts when a node joins a large cluster is a few hundred peers).
pub const PERSIST_QUEUE_MAX: usize = 1_024;

/// Extension of a pin file.
const PIN_SUFFIX: &str = ".pub";

/// A file of the trust directory that [`TrustStore::open`] did not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedPin {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// What [`TrustStore::pin_if_new`] did.
#[derive(Debug)]
pub enum PinOutcome {
    /// The same key was pinned already; nothing changed.
    Known,
    /// No key was pinned: this one is now, in memory. `persist_error` is the error of writing
    /// its file, if that failed: the pin then lasts until the process ends.
    Pinned {
        /// Why the pin could not be written to disk, if it could not.
        persist_error: Option<KeyError>,
    },
}

/// Another key is pinned for the peer: the peer presented a key that is not the one it was
/// first seen (or configured) with. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "another key is pinned for this peer ({}): if the peer rotated its key, replace the pin",
    fingerprint(.pinned)
)]
pub struct PinConflict {
    /// The key that is pinned.
    pub pinned: [u8; 32],
}

/// One pin, as listed by [`TrustStore::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinInfo {
    /// The peer.
    pub name: NodeName,
    /// Its pinned raw Ed25519 public key.
    pub public_key: [u8; 32],
    /// The key's fingerprint.
    pub fingerprint: Fingerprint,
}

/// The pinned keys of known peers, in memory and on disk (module doc). `Send + Sync`.
#[derive(Debug)]
pub struct TrustStore {
    inner: Arc<Inner>,
    /// The writer thread of deferred pins (stores with a directory only).
    writer: Option<Writer>,
}

/// The state the writer thread shares with the store.
#[derive(Debug)]
struct Inner {
    /// `None`: pins in memory only ([`TrustStore::in_memory`]).
    dir: Option<PathBuf>,
    pins: RwLock<HashMap<NodeName, [u8; 32]>>,
    /// Held while writing or removing a pin file, never while waiting for `pins`' write lock
    /// from a path that holds `pins` (lock order: `writes`, then `pins`).
    writes: Mutex<()>,
    /// Deferred pins whose file could not be written.
    persist_failures: AtomicU64,
}

/// Work for the writer thread.
enum Job {
    /// Write the file of this pin (if it is still the pin).
    Pin(NodeName, [u8; 32]),
    /// Answer once every job queued before this one is done.
    Sync(Sender<()>),
}

/// The writer thread and its queue; dropping it drains the queue and joins the thread.
#[derive(Debug)]
struct Writer {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it wrote what was queued.
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            // A panicked writer has already lost its pins; nothing more to do here.
            let _ = thread.join();
        }
    }
}

impl TrustStore {
    /// Loads every pin in `dir` (created 0700 when missing). Files that are not
    /// `<valid name>.pub` or do not hold a valid key are skipped with a `log::warn!` naming the
    /// file and the reason, and returned in the list. A pin file that exists but cannot be read
    /// is an error ([`KeyError::Read`]), not a skip: starting without it would let the next
    /// handshake pin whatever key that peer presents.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(Self, Vec<SkippedPin>), KeyError> {
        let dir = dir.into();
        fsutil::create_dir(&dir)?;
        let mut pins = HashMap::new();
        let mut skipped = Vec::new();
        for entry in fs::read_dir(&dir).map_err(FileError::on(FileOp::Read, &dir))? {
            let path = entry.map_err(FileError::on(FileOp::Read, &dir))?.path();
            match load_pin(&path)? {
                Ok((name, key)) => {
                    pins.insert(name, key);
                }
                Err(reason) => {
                    log::warn!("trust store: skipping {}: {reason}", path.display());
                    skipped.push(SkippedPin { path, reason });
                }
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        let inner = Arc::new(Inner {
            dir: Some(dir),
            pins: RwLock::new(pins),
            writes: Mutex::new(()),
            persist_failures: AtomicU64::new(0),
        });
        let writer = Writer::spawn(&inner)?;
        Ok((Self { inner, writer: Some(writer) }, skipped))
    }

    /// A store without files: pins live in memory for this run only (a node started without
    /// `auth_key_dir`: tests, benchmarks). Every operation behaves as with files, minus I/O.
    pub fn in_memory() -> Self {
        let inner = Arc::new(Inner {
            dir: None,
            pins: RwLock::new(HashMap::new()),
            writes: Mutex::new(()),
            persist_failures: AtomicU64::new(0),
        });
        Self { inner, writer: None }
    }

    /// The directory of the pin files (`None` for an in-memory store).
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    /// The key pinned for `peer`.
    pub fn get(&self, peer: &NodeName) -> Option<[u8; 32]> {
        self.inner.get(peer)
    }

    /// Trust on first use. The same key pinned → `Ok(PinOutcome::Known)`. No pin → the key is
    /// pinned in memory, then its file written: `Ok(PinOutcome::Pinned { persist_error })`,
    /// where a failed write keeps the in-memory pin and reports the error instead of refusing
    /// the peer. Another key pinned → `Err(PinConflict)`, nothing changes. Among concurrent
    /// calls for one peer, the first to reach the map wins; the others see `Known` or a
    /// conflict.
    pub fn pin_if_new(&self, peer: &NodeName, key: &[u8; 32]) -> Result<PinOutcome, PinConflict> {
        if let Some(known) = self.insert_if_new(peer, key)? {
            return Ok(known);
        }
        Ok(PinOutcome::Pinned { persist_error: self.inner.persist(peer, key) })
    }

    /// [`Self::pin_if_new`] for the handshake path: the file is written by the store's writer
    /// thread (module doc, "Pins from handshakes"), so a new pin reports no error here (the
    /// writer logs and counts it). When the writer's queue is full the file is written now.
    pub fn pin_if_new_deferred(
        &self,
        peer: &NodeName,
        key: &[u8; 32],
    ) -> Result<PinOutcome, PinConflict> {
        if let Some(known) = self.insert_if_new(peer, key)? {
            return Ok(known);
        }
        let queued =
            self.jobs().is_some_and(|jobs| jobs.try_send(Job::Pin(peer.clone(), *key)).is_ok());
        let persist_error = if queued { None } else { self.inner.persist(peer, key) };
        Ok(PinOutcome::Pinned { persist_error })
    }

    /// The writer thread's queue (`None` for an in-memory store or after shutdown began).
    fn jobs(&self) -> Option<&Sender<Job>> {
        self.writer.as_ref()?.jobs.as_ref()
    }

    /// Waits until every pin queued by [`Self::pin_if_new_deferred`] so far is on disk (or
    /// failed, see [`Self::persist_failures`]). Returns at once for an in-memory store.
    pub fn sync(&self) {
        let Some(jobs) = self.jobs() else { return };
        let (done, wait) = channel::bounded(1);
        if jobs.send(Job::Sync(done)).is_ok() {
            // An error means the writer is gone, and with it the queue: nothing to wait for.
            let _ = wait.recv();
        }
    }

    /// Deferred pins whose file could not be written (each was logged); they stay in memory
    /// until the process ends.
    pub fn persist_failures(&self) -> u64 {
        self.inner.persist_failures.load(Ordering::Relaxed)
    }

    /// Pins `key` in memory if `peer` has no pin: `Ok(None)`; `Ok(Some(Known))` for the same
    /// key; a conflict for another.
    fn insert_if_new(
        &self,
        peer: &NodeName,
        key: &[u8; 32],
    ) -> Result<Option<PinOutcome>, PinConflict> {
        let mut pins = self.inner.write_pins();
        match pins.get(peer) {
            Some(pinned) if pinned == key => Ok(Some(PinOutcome::Known)),
            Some(pinned) => Err(PinConflict { pinned: *pinned }),
            None => {
                pins.insert(peer.clone(), *key);
                Ok(None)
            }
        }
    }

    /// Operator: pins `key` for `peer`, replacing any pin. The file is written first, then the
    /// memory: on error nothing changed.
    pub fn store(&self, peer: &NodeName, key: &[u8; 32]) -> Result<(), KeyError> {
        let _writes = self.inner.lock_writes();
        self.inner.write_file(peer, key)?;
        self.inner.write_pins().insert(peer.clone(), *key);
        Ok(())
    }

    /// Operator: removes the pin of `peer`, file and memory; `Ok(false)` when there was none.
    /// [`KeyError::Remove`]: nothing changed. [`KeyError::Write`] (syncing the directory): the
    /// pin is gone, but after a crash its file may be back.
    pub fn delete(&self, peer: &NodeName) -> Result<bool, KeyError> {
        let _writes = self.inner.lock_writes();
        let Some(dir) = &self.inner.dir else {
            return Ok(self.inner.write_pins().remove(peer).is_some());
        };
        let removed_file = remove_if_exists(&dir.join(file_name(peer)))?;
        let removed_pin = self.inner.write_pins().remove(peer).is_some();
        fsutil::sync_dir(dir)?;
        Ok(removed_file || removed_pin)
    }

    /// Every pin, sorted by name.
    pub fn list(&self) -> Vec<PinInfo> {
        let mut pins: Vec<PinInfo> = self
            .inner
            .read_pins()
            .iter()
            .map(|(name, key)| PinInfo {
                name: name.clone(),
                public_key: *key,
                fingerprint: fingerprint(key),
            })
            .collect();
        pins.sort_by(|a, b| a.name.cmp(&b.name));
        pins
    }

    /// The number of pins.
    pub fn len(&self) -> usize {
        self.inner.read_pins().len()
    }

    /// Whether no peer is pinned.
    pub fn is_empty(&self) -> bool {
        self.inner.read_pins().is_empty()
    }
}

impl Inner {
    fn get(&self, peer: &NodeName) -> Option<[u8; 32]> {
        self.read_pins().get(peer).copied()
    }

    /// Writes the file of a pin made in memory, unless an operator's store or delete came in
    /// between (theirs is newer and already wrote or removed the file). The error, if any.
    fn persist(&self, peer: &NodeName, key: &[u8; 32]) -> Option<KeyError> {
        let _writes = self.lock_writes();
        if self.get(peer) != Some(*key) {
            return None;
        }
        let error = self.write_file(peer, key).err();
        if let Some(error) = &error {
            log::warn!("trust store: {peer} pinned in memory only: {error}");
        }
        error
    }

    /// Writes the pin file of `peer` (nothing for an in-memory store). Called with `writes`
    /// held.
    fn write_file(&self, peer: &NodeName, key: &[u8; 32]) -> Result<(), KeyError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let pem = public_key_pem(key);
        let name = file_name(peer);
        publish(dir, &name, pem.as_bytes(), fsutil::SECRET_MODE, Publish::Replace)?;
        Ok(())
    }

    // The map and the unit mutex stay consistent even if a holder panicked (every change is a
    // single insert or remove), so a poisoned lock is used as it is.
    fn read_pins(&self) -> RwLockReadGuard<'_, HashMap<NodeName, [u8; 32]>> {
        self.pins.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_pins(&self) -> RwLockWriteGuard<'_, HashMap<NodeName, [u8; 32]>> {
        self.pins.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Writer {
    /// Starts the writer thread of `inner`'s deferred pins.
    fn spawn(inner: &Arc<Inner>) -> Result<Self, KeyError> {
        let (jobs, queue) = channel::bounded::<Job>(PERSIST_QUEUE_MAX);
        let dir = inner.dir.clone().unwrap_or_default();
        let inner = Arc::clone(inner);
        let thread = std::thread::Builder::new()
            .name("shoal-pins".to_owned())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Pin(peer, key) => {
                            if inner.persist(&peer, &key).is_some() {
                                inner.persist_failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Job::Sync(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|source| KeyError::Write { path: dir, source })?;
        Ok(Self { jobs: Some(jobs), thread: Some(thread) })
    }
}

/// The pin file name of `peer`. Node names hold only `[A-Za-z0-9_.-@]`, never start with `.`
/// and always contain `@`: safe as a file name, never hidden, never `.` or `..`.
fn file_name(peer: &NodeName) -> String {
    format!("{peer}{PIN_SUFFIX}")
}

/// The pin in `path`; `Ok(Err(reason))` for a file to skip, `Err` for one that cannot be read.
fn load_pin(path: &Path) -> Result<Result<(NodeName, [u8; 32]), String>, KeyError> {
    let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Err("file name is not UTF-8".to_owned()));
    };
    let Some(stem) = file_name.strip_suffix(PIN_SUFFIX) else {
        return Ok(Err(format!("not a pin: the name does not end in {PIN_SUFFIX}")));
    };
    let name = match NodeName::parse(stem) {
        Ok(name) => name,
        Err(e) => return Ok(Err(format!("{stem:?} is not a node name: {e}"))),
    };
    if !path.is_file() {
        return Ok(Err("not a regular file".to_owned()));
    }
    let Some(bytes) = read_bounded(path, PUBLIC_KEY_FILE_MAX_BYTES)? else {
        return Ok(Err("removed while loading".to_owned()));
    };
    Ok(parse_public_key_pem(&bytes).map(|key| (name, key)))
}
