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
use std::time::{SystemTime, UNIX_EPOCH};

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
    /// Removing a file.
    Remove,
    /// Renaming a staged file over its final name.
    Rename,
}

/// A failed file operation, with the path it concerned. Neutral: callers convert it into their
/// own error type, keeping the path.
#[derive(Debug)]
pub(crate) struct FileError {
    /// What was being done.
    pub(crate) op: FileOp,
    /// The file or directory concerned (for [`FileOp::Rename`], the destination).
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
            FileOp::Remove => "remove",
            FileOp::Rename => "rename onto",
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
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FileError> {
    fsync_dir(dir).map_err(FileError::on(FileOp::Write, dir))
}

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

/// Creates the single directory `dir` (mode 0700), failing with `AlreadyExists` if the name is
/// taken: the way to claim a fresh name (a backup directory) without racing anyone. The entry
/// is made durable.
pub(crate) fn create_new_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(dir)?;
    fsync_dir(parent_of(dir))
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

/// Removes `path`; `Ok(false)` when it did not exist. The directory is not synced (callers
/// batch removals and sync once).
pub(crate) fn remove_if_exists(path: &Path) -> Result<bool, FileError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FileError { op: FileOp::Remove, path: path.to_owned(), source: e }),
    }
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
    if body.is_empty() || !body.len().is_multiple_of(4) || !body.chars().all(is_base64) {
        return Err("a PEM body that is not base64".to_owned());
    }
    boring::base64::decode_block(&body).map_err(|_| "a PEM body that is not base64".to_owned())
}

/// `time` in UTC as `YYYYMMDDTHHMMSSZ` (ISO 8601 basic format): sorts like the time it names and
/// holds no character that is special in file names. Times before 1970 print as 1970-01-01.
pub(crate) fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs_of_day / 3600, secs_of_day / 60 % 60, secs_of_day % 60);
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

/// The proleptic Gregorian date `days` days after 1970-01-01, as (year, month 1..=12, day
/// 1..=31).
///
/// Counts in 400-year eras (146 097 days each, the Gregorian cycle) of years that start on
/// 1 March, so that the leap day is the last day of its year and month lengths follow a fixed
/// pattern from March on.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    /// Days from 0000-03-01 to 1970-01-01.
    const EPOCH_SHIFT: u64 = 719_468;
    /// Days in a 400-year era.
    const ERA_DAYS: u64 = 146_097;
    let shifted = days + EPOCH_SHIFT;
    let era = shifted / ERA_DAYS;
    let day_of_era = shifted % ERA_DAYS; // 0..=146_096
                                         // Remove the leap days before `day_of_era` (one per 4 years, none per 100, one per 400; the
                                         // era's very last day is the 400-year leap day) to get whole 365-day years.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months from March: lengths 31 30 31 30 31 31 30 31 30 31 31 (29/28) repeat a 153-day,
    // 5-month pattern, hence the 153/5 arithmetic.
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    // January and February belong to the March-based year that started the year before.
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testutil::{mode, Scratch};

    fn at(secs: u64) -> String {
        utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs))
    }

    /// Expected values from `date -u -d <date> +%s`.
    #[test]
    fn timestamps_of_known_dates() {
        assert_eq!(at(0), "19700101T000000Z");
        assert_eq!(at(94_694_399), "19721231T235959Z"); // last day of the first leap year
        assert_eq!(at(951_782_400), "20000229T000000Z"); // 2000 is a leap year (400 rule)
        assert_eq!(at(951_868_800), "20000301T000000Z");
        assert_eq!(at(1_704_067_199), "20231231T235959Z");
        assert_eq!(at(1_709_210_096), "20240229T123456Z");
        assert_eq!(at(4_107_542_399), "21000228T235959Z"); // 2100 is not (100 rule)
        assert_eq!(at(4_107_542_400), "21000301T000000Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH - Duration::from_secs(5)), "19700101T000000Z");
    }

    /// Every day for 800 years: consecutive, valid, and 1 January exactly once a year.
    #[test]
    fn civil_dates_are_consecutive() {
        let mut previous = civil_from_days(0);
        for days in 1..(800 * 366) {
            let (y, m, d) = civil_from_days(days);
            let (py, pm, pd) = previous;
            let next_day = (y, m, d) == (py, pm, pd + 1);
            let next_month = (y, m, d) == (py, pm + 1, 1);
            let next_year = (y, m, d) == (py + 1, 1, 1) && (pm, pd) == (12, 31);
            assert!(next_day || next_month || next_year, "{previous:?} -> {:?}", (y, m, d));
            if next_month {
                let leap = py % 4 == 0 && (py % 100 != 0 || py % 400 == 0);
                let feb = if leap { 29 } else { 28 };
                let len = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][pm as usize - 1];
                assert_eq!(pd, len, "{previous:?}");
            }
            previous = (y, m, d);
        }
    }

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
        let claimed = dir.join("c");
        create_new_dir(&claimed).unwrap();
        assert_eq!(mode(&claimed), DIR_MODE);
        assert_eq!(create_new_dir(&claimed).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
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
