//! File helpers shared by everything that keeps key material on disk (the TLS material in
//! [`crate::tls`], the identity keys and pins in [`crate::auth`]).
//!
//! # How files are written
//!
//! Never in place ([`publish`]): a temporary file `.<name>.tmp-<pid>-<random>` is created in the
//! same directory with `create_new` and the final mode (so a secret is never readable by others,
//! not even briefly), written, fsynced and then published, and the directory is fsynced. With
//! [`Publish::Replace`] the file is published by `rename`, which replaces atomically. With
//! [`Publish::NoClobber`] it is published by a hard link, which fails when the name exists: a
//! file that appeared meanwhile (another process starting on the same directory) is never
//! overwritten.
//!
//! Errors are [`FileError`]s: what was being done, to which path, and the operating system's
//! reason. Each caller turns them into its own error type (`TlsError`, `KeyError`).

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of a secret file: owner read/write only.
pub(crate) const SECRET_MODE: u32 = 0o600;
/// Mode of a public file (certificate, public key): readable by everyone.
pub(crate) const PUBLIC_MODE: u32 = 0o644;
/// Mode of a directory created for key material: owner only.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Longest prefix of the final name kept in a temporary file's name, in bytes: the temporary
/// name adds about 30 bytes, and a long final name (a pin for a 250-byte node name) must not
/// push it past the 255-byte file-name limit.
const TMP_NAME_PREFIX_MAX: usize = 100;

/// What was being done when a file operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileOp {
    /// Creating a directory (or finding a non-directory in the way).
    CreateDir,
    /// Opening, reading or listing.
    Read,
    /// Writing, syncing or publishing a new file.
    Write,
}

/// A failed file operation, with the path it concerned. Neutral: callers convert it into their
/// own error type, keeping the path.
#[derive(Debug)]
pub(crate) struct FileError {
    /// What was being done.
    pub(crate) op: FileOp,
    /// The file or directory concerned.
    pub(crate) path: PathBuf,
    /// The operating system's reason.
    pub(crate) source: io::Error,
}

impl FileError {
    /// A mapper for `map_err` on an I/O result concerning `path`.
    pub(crate) fn on(op: FileOp, path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self { op, path: path.to_owned(), source }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            FileOp::CreateDir => "create directory",
            FileOp::Read => "read",
            FileOp::Write => "write",
        };
        write!(f, "cannot {op} {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// How [`publish`] puts the file in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Publish {
    /// Never overwrite: fail softly with [`Published::AlreadyExists`].
    NoClobber,
    /// Atomically replace whatever is there.
    Replace,
}

/// What [`publish`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// The file now holds `contents`.
    Written,
    /// [`Publish::NoClobber`] found the name taken; the existing file was left untouched.
    AlreadyExists,
}

/// Writes `contents` to `dir/name` with `mode`, atomically (module doc: how files are written).
/// On failure the named file was not created or replaced; the temporary file is removed on a
/// best-effort basis.
pub(crate) fn publish(
    dir: &Path,
    name: &str,
    contents: &[u8],
    mode: u32,
    how: Publish,
) -> Result<Published, FileError> {
    let path = dir.join(name);
    let tmp = dir.join(tmp_name(name)?);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        // The umask may have cleared bits of `mode` (a certificate must stay world-readable).
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        let published = match how {
            Publish::Replace => {
                fs::rename(&tmp, &path)?;
                Published::Written
            }
            Publish::NoClobber => {
                let published = match fs::hard_link(&tmp, &path) {
                    Ok(()) => Published::Written,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Published::AlreadyExists,
                    Err(e) => return Err(e),
                };
                fs::remove_file(&tmp)?;
                published
            }
        };
        fsync_dir(dir)?;
        Ok(published)
    })();
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temporary file,
        // which the callers' error documentation mentions.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(|source| FileError { op: FileOp::Write, path, source })
}

/// A fresh temporary name for `name`: hidden, recognisable, and unique enough that
/// `create_new` practically never collides (a collision fails the write, it never overwrites).
fn tmp_name(name: &str) -> Result<String, FileError> {
    let mut random = [0u8; 8];
    boring::rand::rand_bytes(&mut random).map_err(|e| FileError {
        op: FileOp::Write,
        path: PathBuf::from(name),
        source: io::Error::other(format!("no randomness for a temporary name: {e}")),
    })?;
    let mut end = name.len().min(TMP_NAME_PREFIX_MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let prefix = &name[..end];
    Ok(format!(".{prefix}.tmp-{}-{:016x}", std::process::id(), u64::from_ne_bytes(random)))
}

/// Makes the entries of `dir` (new, renamed or removed files) durable.
fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (mode 0700) and any missing parents; an existing directory is left alone.
pub(crate) fn create_dir(dir: &Path) -> Result<(), FileError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(FileError::on(FileOp::CreateDir, dir))?;
    // The new directory's own entry is durable only once its parent is synced.
    fsync_dir(parent_of(dir)).map_err(FileError::on(FileOp::CreateDir, dir))
}

/// The directory holding `path`'s entry (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Up to `max + 1` bytes of `path` (so the caller can tell "too large"), or `None` when it does
/// not exist.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, FileError> {
    let fail = FileError::on(FileOp::Read, path);
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(fail)?;
    Ok(Some(bytes))
}

/// PEM (RFC 7468) text of `der` under `label`, base64 in lines of 64 characters.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = boring::base64::encode_block(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    // Base64 is ASCII, so every 64-byte chunk is valid UTF-8; `from_utf8_lossy` never replaces.
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The decoded body of the single PEM block labelled `label` that makes up `text`, or what was
/// found instead. The description never quotes the file's contents beyond a PEM header line:
/// anything else in it may be secret.
pub(crate) fn pem_body(text: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    match lines.next() {
        None => return Err("an empty file".to_owned()),
        Some(line) if line == begin => {}
        // A PEM header names the content and is not secret; anything else might be.
        Some(line) if line.starts_with("-----BEGIN ") && line.len() <= 80 => {
            return Err(format!("the PEM header {line:?}"));
        }
        Some(_) => return Err(format!("a first line that is not {begin:?}")),
    }
    let mut body = String::new();
    loop {
        match lines.next() {
            None => return Err(format!("no {end:?} line")),
            Some(line) if line == end => break,
            Some(line) => body.push_str(line),
        }
    }
    if lines.next().is_some() {
        return Err(format!("text after the {end:?} line"));
    }
    let is_base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if body.is_empty() || body.len() % 4 != 0 || !body.chars().all(is_base64) {
        return Err("a PEM body that is not base64".to_owned());
    }
    boring::base64::decode_block(&body).map_err(|_| "a PEM body that is not base64".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{mode, Scratch};

    #[test]
    fn publish_without_clobbering_leaves_an_existing_file() {
        let scratch = Scratch::new("noclobber");
        fs::create_dir_all(scratch.path()).unwrap();
        let dir = scratch.path();
        let path = dir.join("f");
        let written = publish(dir, "f", b"first", 0o600, Publish::NoClobber).unwrap();
        assert_eq!(written, Published::Written);
        assert_eq!(mode(&path), 0o600);
        let again = publish(dir, "f", b"second", 0o600, Publish::NoClobber).unwrap();
        assert_eq!(again, Published::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"first");
        publish(dir, "f", b"third", 0o644, Publish::Replace).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"third");
        assert_eq!(mode(&path), 0o644);
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1, "temporary files removed");
    }

    #[test]
    fn publish_reports_the_final_path() {
        let scratch = Scratch::new("publish-fail");
        // The directory does not exist: the temporary file cannot be created.
        let err = publish(scratch.path(), "f", b"x", 0o600, Publish::Replace).unwrap_err();
        assert_eq!(err.op, FileOp::Write);
        assert_eq!(err.path, scratch.path().join("f"));
        assert!(err.to_string().contains("cannot write"), "{err}");
    }

    #[test]
    fn long_names_get_short_temporary_names() {
        let name = "n".repeat(250);
        let tmp = tmp_name(&name).unwrap();
        assert!(tmp.len() < 255 - 100, "{tmp}");
        assert!(tmp.starts_with(&format!(".{}", &name[..TMP_NAME_PREFIX_MAX])), "{tmp}");
    }

    #[test]
    fn read_bounded_reads_one_byte_past_the_limit() {
        let scratch = Scratch::new("bounded");
        fs::create_dir_all(scratch.path()).unwrap();
        let path = scratch.path().join("f");
        assert_eq!(read_bounded(&path, 4).unwrap(), None);
        fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_bounded(&path, 4).unwrap().unwrap(), b"01234");
        assert_eq!(read_bounded(&path, 10).unwrap().unwrap(), b"0123456789");
    }

    #[test]
    fn created_directories_are_private() {
        let scratch = Scratch::new("mkdir");
        let dir = scratch.path().join("a").join("b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&scratch.path().join("a")), DIR_MODE);
    }

    #[test]
    fn pem_round_trip_and_refusals() {
        let der: Vec<u8> = (0..100).collect();
        let pem = pem_encode("THING", &der);
        assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
        assert_eq!(pem_body(&pem, "THING").unwrap(), der);
        let other = pem_body(&pem, "OTHER").unwrap_err();
        assert!(other.contains("-----BEGIN THING-----"), "{other}");
        let trailing = pem_body(&format!("{pem}junk\n"), "THING").unwrap_err();
        assert!(trailing.contains("text after"), "{trailing}");
        let secret = pem_body("s3cr3t line\n", "THING").unwrap_err();
        assert!(!secret.contains("s3cr3t"), "{secret}");
    }
}
