//! Crash-safe replacement of a key pair kept as two files (a secret and a public half: the
//! identity's `node.key` + `node.pub`, the TLS `node.key` + `node.crt`).
//!
//! # Guarantee
//!
//! An interruption at any point (crash, power loss, full disk) leaves either the complete old
//! pair or the complete new pair in place once [`recover`] has run, never one half of each, and
//! never a secret readable by others.
//!
//! # Steps
//!
//! | step | what                                                              | if interrupted after it |
//! |------|-------------------------------------------------------------------|-------------------------|
//! | begin | claim `backups/<UTC YYYYMMDDTHHMMSSZ>[-N]/` (0700)                | old pair                |
//! | [`Step::BackupSecret`] | copy the secret file into it (0600, atomic writer) | old pair          |
//! | [`Step::BackupPublic`] | copy the public file into it                     | old pair                |
//! | [`Step::StageSecret`] | write `<secret>.new` (0600), complete and fsynced  | old pair (staged file deleted) |
//! | [`Step::StagePublic`] | write `<public>.new`, complete and fsynced         | new pair (rolled forward) |
//! | [`Step::CommitSecret`] | rename `<secret>.new` over `<secret>`, fsync dir  | new pair (rename finished) |
//! | [`Step::CommitPublic`] | rename `<public>.new` over `<public>`, fsync dir  | new pair                |
//!
//! Every file appears complete or not at all (see [`crate::fsutil::publish`]), and the directory
//! is fsynced after each step, so the files present on disk tell which step was reached.
//!
//! # Recovery ([`recover`], run before every load)
//!
//! | `<secret>.new` | `<public>.new` | action                                                        |
//! |----------------|----------------|---------------------------------------------------------------|
//! | absent         | absent         | nothing                                                       |
//! | present        | absent         | delete it: staging was interrupted, the old pair is intact    |
//! | present        | present        | a valid pair: finish both renames; otherwise delete both      |
//! | absent         | present        | forms a pair with `<secret>`: finish its rename; otherwise delete it (a public file) |
//!
//! A backup directory holding only the secret file is the trace of a rotation interrupted
//! during the backup; the live pair was never touched then. Backups are never deleted by shoal.
//! One process at a time may rotate a directory; recovery assumes no rotation is running.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::fsutil::{
    self, create_new_dir, publish, read_bounded, remove_if_exists, FileError, FileOp, Publish,
};

/// Name of the directory, next to the pair, that holds one subdirectory per rotation.
pub(crate) const BACKUPS_DIR_NAME: &str = "backups";
/// Suffix of a staged file.
const STAGED_SUFFIX: &str = ".new";
/// How many `-N` suffixes are tried when backup directories with the same timestamp exist
/// (several rotations within one second).
const BACKUP_NAME_ATTEMPTS: u32 = 1000;

/// A key pair's two files and how to tell whether they belong together.
#[derive(Clone, Copy)]
pub(crate) struct PairFiles<'a> {
    /// The directory holding both files.
    pub(crate) dir: &'a Path,
    /// File name of the secret half (written 0600).
    pub(crate) secret: &'static str,
    /// File name of the public half.
    pub(crate) public: &'static str,
    /// Mode of the public half.
    pub(crate) public_mode: u32,
    /// Larger files are not read whole (the pair check then fails on the truncated bytes).
    pub(crate) max_bytes: u64,
    /// Whether the contents of a secret file and of a public file are one valid pair.
    pub(crate) is_pair: fn(&[u8], &[u8]) -> bool,
}

impl PairFiles<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn staged(name: &str) -> String {
        format!("{name}{STAGED_SUFFIX}")
    }

    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, FileError> {
        read_bounded(&self.path(name), self.max_bytes)
    }

    /// Renames the staged `name` over `name` and makes it durable.
    fn commit(&self, name: &str) -> Result<(), FileError> {
        let target = self.path(name);
        fs::rename(self.path(&Self::staged(name)), &target)
            .map_err(FileError::on(FileOp::Rename, &target))?;
        fsutil::sync_dir(self.dir)
    }
}

/// What [`recover`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// No staged file: no rotation was interrupted.
    Nothing,
    /// Staged files that did not form a complete pair were deleted: the old pair stays.
    DiscardedStaged,
    /// A complete staged pair was renamed into place: the new pair is in use.
    RolledForward,
    /// The secret had been renamed already; the public half's rename was finished.
    FinishedRename,
    /// A staged public file that belongs to no secret was deleted.
    DiscardedStalePublic,
}

/// Brings an interrupted rotation of `files` to the old or the new pair (module doc: table).
pub(crate) fn recover(files: &PairFiles<'_>) -> Result<Recovered, FileError> {
    let staged_secret_name = PairFiles::staged(files.secret);
    let staged_public_name = PairFiles::staged(files.public);
    let staged_secret = files.read(&staged_secret_name)?;
    let staged_public = files.read(&staged_public_name)?;
    let recovered = match (staged_secret, staged_public) {
        (None, None) => return Ok(Recovered::Nothing),
        (Some(_), None) => {
            remove_if_exists(&files.path(&staged_secret_name))?;
            Recovered::DiscardedStaged
        }
        (Some(secret), Some(public)) => {
            if (files.is_pair)(&secret, &public) {
                files.commit(files.secret)?;
                files.commit(files.public)?;
                Recovered::RolledForward
            } else {
                remove_if_exists(&files.path(&staged_secret_name))?;
                remove_if_exists(&files.path(&staged_public_name))?;
                Recovered::DiscardedStaged
            }
        }
        (None, Some(public)) => {
            let secret = files.read(files.secret)?;
            if secret.is_some_and(|secret| (files.is_pair)(&secret, &public)) {
                files.commit(files.public)?;
                Recovered::FinishedRename
            } else {
                remove_if_exists(&files.path(&staged_public_name))?;
                Recovered::DiscardedStalePublic
            }
        }
    };
    fsutil::sync_dir(files.dir)?;
    log::warn!(
        "{}: recovered an interrupted key rotation of {} and {}: {recovered:?}",
        files.dir.display(),
        files.secret,
        files.public
    );
    Ok(recovered)
}

/// The steps of a rotation after [`Rotation::begin`], in order (module doc: table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Copy the secret file into the backup directory.
    BackupSecret,
    /// Copy the public file into the backup directory.
    BackupPublic,
    /// Write the new secret as `<secret>.new`.
    StageSecret,
    /// Write the new public half as `<public>.new`.
    StagePublic,
    /// Rename `<secret>.new` over `<secret>`.
    CommitSecret,
    /// Rename `<public>.new` over `<public>`.
    CommitPublic,
}

impl Step {
    /// Every step, in the order a rotation performs them.
    pub(crate) const ALL: [Self; 6] = [
        Self::BackupSecret,
        Self::BackupPublic,
        Self::StageSecret,
        Self::StagePublic,
        Self::CommitSecret,
        Self::CommitPublic,
    ];
}

/// A rotation in progress. Split into steps so that tests can stop after any of them.
pub(crate) struct Rotation<'a> {
    files: PairFiles<'a>,
    new_secret: Vec<u8>,
    new_public: Vec<u8>,
    backup_dir: PathBuf,
}

impl<'a> Rotation<'a> {
    /// Claims a fresh backup directory `backups/<timestamp of now>[-N]` (0700) for a rotation
    /// of `files` to the pair `new_secret` + `new_public` (file contents). The current pair
    /// must be valid (callers load it first, which also runs [`recover`]).
    pub(crate) fn begin(
        files: PairFiles<'a>,
        new_secret: Vec<u8>,
        new_public: Vec<u8>,
        now: SystemTime,
    ) -> Result<Self, FileError> {
        let backups = files.path(BACKUPS_DIR_NAME);
        fsutil::create_dir(&backups)?;
        let stamp = fsutil::utc_timestamp(now);
        let mut attempt = 0;
        let backup_dir = loop {
            let name = if attempt == 0 { stamp.clone() } else { format!("{stamp}-{attempt}") };
            let candidate = backups.join(name);
            match create_new_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && attempt + 1 < BACKUP_NAME_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => {
                    return Err(FileError { op: FileOp::CreateDir, path: candidate, source: e })
                }
            }
        };
        Ok(Self { files, new_secret, new_public, backup_dir })
    }

    /// Performs one step. Steps must be performed once each, in the order of [`Step::ALL`].
    pub(crate) fn perform(&self, step: Step) -> Result<(), FileError> {
        let files = &self.files;
        match step {
            Step::BackupSecret => self.backup(files.secret, fsutil::SECRET_MODE),
            Step::BackupPublic => self.backup(files.public, files.public_mode),
            Step::StageSecret => self.stage(files.secret, &self.new_secret, fsutil::SECRET_MODE),
            Step::StagePublic => self.stage(files.public, &self.new_public, files.public_mode),
            Step::CommitSecret => files.commit(files.secret),
            Step::CommitPublic => files.commit(files.public),
        }
    }

    /// Performs every step; returns the backup directory holding the old pair.
    pub(crate) fn run(self) -> Result<PathBuf, FileError> {
        for step in Step::ALL {
            self.perform(step)?;
        }
        Ok(self.backup_dir)
    }

    /// Copies the current file `name` into the backup directory, byte for byte.
    fn backup(&self, name: &str, mode: u32) -> Result<(), FileError> {
        let path = self.files.path(name);
        let contents = self.files.read(name)?.ok_or_else(|| FileError {
            op: FileOp::Read,
            path,
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        publish(&self.backup_dir, name, &contents, mode, Publish::NoClobber)?;
        Ok(())
    }

    /// Writes `<name>.new`, replacing a leftover (recovery removed any meaningful one).
    fn stage(&self, name: &str, contents: &[u8], mode: u32) -> Result<(), FileError> {
        publish(self.files.dir, &PairFiles::staged(name), contents, mode, Publish::Replace)?;
        Ok(())
    }
}

/// The cut-point harness shared by the identity and TLS rotation tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{PairFiles, Rotation, Step};

    /// Number of places a rotation can be cut: before `begin`, after it, after each step.
    pub(crate) const CUT_POINTS: usize = Step::ALL.len() + 2;

    /// The cut point right after `step`.
    fn cut_after(step: Step) -> usize {
        2 + Step::ALL.iter().position(|s| *s == step).expect("Step::ALL lists every step")
    }

    /// Whether a rotation cut at `cut` is completed by recovery (the staged pair is complete
    /// from [`Step::StagePublic`] on) rather than undone.
    pub(crate) fn rolls_forward(cut: usize) -> bool {
        cut >= cut_after(Step::StagePublic)
    }

    /// Whether the backup holds the complete old pair after a cut at `cut`.
    pub(crate) fn backup_complete(cut: usize) -> bool {
        cut >= cut_after(Step::BackupPublic)
    }

    /// Runs a rotation of `files` to `new_secret` + `new_public` and stops after `cut` points
    /// (0: nothing done; 1: backup directory claimed; 1 + i: `Step::ALL[i]` done), as a crash
    /// would. Returns the backup directory, if claimed.
    pub(crate) fn rotate_until(
        files: PairFiles<'_>,
        new_secret: &[u8],
        new_public: &[u8],
        cut: usize,
    ) -> Option<std::path::PathBuf> {
        if cut == 0 {
            return None;
        }
        let now = std::time::SystemTime::now();
        let rotation =
            Rotation::begin(files, new_secret.to_vec(), new_public.to_vec(), now).expect("begin");
        for step in Step::ALL.into_iter().take(cut - 1) {
            rotation.perform(step).expect("step");
        }
        Some(rotation.backup_dir)
    }
}
