//! Identity keys on disk, in a scratch directory per test.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::keyformat::private_key_der;
use crate::rotation::testing::{backup_complete, rolls_forward, rotate_until, CUT_POINTS};
use crate::testutil::{assert_private_tree, mode, Scratch};

/// RFC 8032 §7.1, test 1: secret key and public key.
const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

fn unhex(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A scratch key directory (removed when the `Scratch` drops) with a generated identity.
fn generated(test: &str) -> (Scratch, KeyDir, Identity) {
    let scratch = Scratch::new(test);
    let keys = KeyDir::new(scratch.path());
    let identity = keys.load_or_generate().expect("generate");
    (scratch, keys, identity)
}

fn key_path(keys: &KeyDir) -> PathBuf {
    keys.dir().join(KEY_FILE_NAME)
}

fn public_path(keys: &KeyDir) -> PathBuf {
    keys.dir().join(PUBLIC_KEY_FILE_NAME)
}

#[test]
fn identity_is_send_sync_and_debug_shows_only_the_fingerprint() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Identity>();
    let identity = Identity::from_seed(unhex(RFC8032_SEED));
    assert_eq!(identity.public_key(), unhex(RFC8032_PUBLIC));
    assert_eq!(identity.signing_key().verifying_key().to_bytes(), identity.public_key());
    let shown = format!("{identity:?}");
    assert!(shown.contains(&identity.fingerprint().to_string()), "{shown}");
    assert!(!shown.contains(RFC8032_SEED) && !shown.contains(RFC8032_PUBLIC), "{shown}");
    assert_ne!(Identity::generate().public_key(), Identity::generate().public_key());
}

/// Expected text from `openssl dgst -sha256 -binary | base64` over the raw key bytes.
#[test]
fn fingerprint_known_vectors() {
    let rfc = fingerprint(&unhex(RFC8032_PUBLIC));
    assert_eq!(rfc.to_string(), "SHA256:If4x36FUomFia/hUBG/SJxt77UtqvkWqWId+9H+XIbk");
    assert_eq!(hex(&rfc.0), "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9");
    assert_eq!(
        fingerprint(&[0u8; 32]).to_string(),
        "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU"
    );
    // Any key: 7 + 43 characters, the digest BoringSSL computes, no padding.
    let key = Identity::generate().public_key();
    let text = fingerprint(&key).to_string();
    assert_eq!(text.len(), 7 + 43, "{text}");
    let padded = boring::base64::encode_block(&boring::sha::sha256(&key));
    assert_eq!(format!("SHA256:{padded}"), format!("{text}="));
}

#[test]
fn generates_then_reloads_the_same_identity() {
    let scratch = Scratch::new("keys-reload");
    // Two missing levels: both are created.
    let keys = KeyDir::new(scratch.path().join("node").join("keys"));
    let first = keys.load_or_generate().expect("generate");
    assert_eq!(names(keys.dir()), [KEY_FILE_NAME, PUBLIC_KEY_FILE_NAME]);
    assert_eq!(mode(keys.dir()), 0o700);
    assert_eq!(mode(&key_path(&keys)), 0o600);
    assert_eq!(mode(&public_path(&keys)), 0o644);

    let (key_before, public_before) =
        (fs::read(key_path(&keys)).unwrap(), fs::read(public_path(&keys)).unwrap());
    let second = keys.load_or_generate().expect("reload");
    assert_eq!(second.public_key(), first.public_key());
    assert_eq!(second.fingerprint(), first.fingerprint());
    // Loading writes nothing.
    assert_eq!(fs::read(key_path(&keys)).unwrap(), key_before);
    assert_eq!(fs::read(public_path(&keys)).unwrap(), public_before);
    assert_eq!(keys.trusted_dir(), keys.dir().join("trusted"));
}

#[test]
fn files_are_pkcs8_v1_and_spki_that_boring_reads() {
    let (_scratch, keys, identity) = generated("keys-format");
    let key_pem = fs::read(key_path(&keys)).unwrap();
    let public_pem = fs::read(public_path(&keys)).unwrap();
    assert!(key_pem.starts_with(b"-----BEGIN PRIVATE KEY-----\n"));
    assert!(public_pem.starts_with(b"-----BEGIN PUBLIC KEY-----\n"));

    // The exact DER layouts.
    let key_text = std::str::from_utf8(&key_pem).unwrap();
    let key_der = fsutil::pem_body(key_text, "PRIVATE KEY").unwrap();
    assert_eq!(key_der, private_key_der(identity.signing_key().as_bytes()));
    let public_der =
        fsutil::pem_body(std::str::from_utf8(&public_pem).unwrap(), "PUBLIC KEY").unwrap();
    assert_eq!(public_der.len(), 44);
    assert_eq!(hex(&public_der[..12]), "302a300506032b6570032100");
    assert_eq!(public_der[12..], identity.public_key());

    // BoringSSL loads the key and derives exactly the SPKI of node.pub; it loads node.pub too.
    let private = boring::pkey::PKey::private_key_from_pem(&key_pem).expect("boring reads v1");
    assert_eq!(private.id(), boring::pkey::Id::ED25519);
    assert_eq!(private.public_key_to_der().unwrap(), public_der);
    let public = boring::pkey::PKey::public_key_from_pem(&public_pem).expect("boring reads SPKI");
    assert_eq!(public.public_key_to_der().unwrap(), public_der);
}

/// OpenSSL reads both files and derives the same `node.pub`. Skipped (passing) when the
/// `openssl` command is not installed.
#[test]
fn openssl_reads_both_files_when_installed() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed: check skipped");
        return;
    }
    let (_scratch, keys, identity) = generated("keys-openssl");
    let text = Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(public_path(&keys))
        .output()
        .expect("run openssl");
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ED25519 Public-Key"), "{text}");
    let printed: String = text.lines().skip(2).flat_map(|l| l.trim().split(':')).collect();
    assert_eq!(printed, hex(&identity.public_key()), "{text}");

    let derived = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(key_path(&keys))
        .output()
        .expect("run openssl");
    assert!(derived.status.success(), "{}", String::from_utf8_lossy(&derived.stderr));
    assert_eq!(derived.stdout, fs::read(public_path(&keys)).unwrap());
}

#[test]
fn deleted_public_key_is_regenerated_with_the_same_identity() {
    let (_scratch, keys, first) = generated("keys-regen");
    let before = fs::read(public_path(&keys)).unwrap();
    fs::remove_file(public_path(&keys)).unwrap();
    let second = keys.load_or_generate().expect("regenerate");
    assert_eq!(second.public_key(), first.public_key());
    assert_eq!(fs::read(public_path(&keys)).unwrap(), before);
    assert_eq!(mode(&public_path(&keys)), 0o644);
}

#[test]
fn public_key_without_private_key_is_refused() {
    let (_scratch, keys, _) = generated("keys-orphan");
    fs::remove_file(key_path(&keys)).unwrap();
    let before = fs::read(public_path(&keys)).unwrap();
    let err = keys.load_or_generate().expect_err("must not generate");
    assert!(matches!(err, KeyError::PublicWithoutKey { .. }), "{err}");
    let message = err.to_string();
    for needle in [KEY_FILE_NAME, PUBLIC_KEY_FILE_NAME, "backups", "delete"] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
    assert!(!key_path(&keys).exists(), "no key generated");
    assert_eq!(fs::read(public_path(&keys)).unwrap(), before);
}

#[test]
fn mismatched_public_key_is_refused_and_left_alone() {
    let (a, b) = (Scratch::new("keys-mismatch-a"), Scratch::new("keys-mismatch-b"));
    let (keys_a, keys_b) = (KeyDir::new(a.path()), KeyDir::new(b.path()));
    keys_a.load_or_generate().expect("a");
    keys_b.load_or_generate().expect("b");
    fs::copy(public_path(&keys_b), public_path(&keys_a)).unwrap();
    let before = fs::read(public_path(&keys_a)).unwrap();

    let err = keys_a.load_or_generate().expect_err("mismatch");
    match &err {
        KeyError::KeypairMismatch { key, public } => {
            assert_eq!(key, &key_path(&keys_a));
            assert_eq!(public, &public_path(&keys_a));
        }
        other => panic!("expected KeypairMismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("keypair_mismatch") && message.contains("backups/"), "{message}");
    assert_eq!(fs::read(public_path(&keys_a)).unwrap(), before);
}

#[test]
fn malformed_key_files_are_refused_naming_the_file() {
    let scratch = Scratch::new("keys-garbage");
    let keys = KeyDir::new(scratch.path());
    fs::create_dir_all(keys.dir()).unwrap();
    let key = key_path(&keys);
    let oversized = format!("SECRET-{}", "A".repeat(5000));
    let public_pem = public_key_pem(&[7u8; 32]);
    let cases: [(&str, &[u8]); 7] = [
        ("empty", b""),
        ("secret text", b"SECRET-SEED-MATERIAL\n"),
        ("binary", &[0xff, 0xfe, 0x00, 0x80]),
        ("public label", public_pem.as_bytes()),
        ("bad base64", b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
        ("short", b"-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n"),
        ("oversized", oversized.as_bytes()),
    ];
    for (what, contents) in cases {
        fs::write(&key, contents).unwrap();
        let err = keys.load_or_generate().expect_err(what);
        assert!(matches!(&err, KeyError::KeyFormat { path, .. } if path == &key), "{what}: {err}");
        let message = err.to_string();
        assert!(message.contains(&*key.to_string_lossy()), "{what}: {message}");
        assert!(!message.contains("SECRET"), "{what} quotes the file: {message}");
        assert_eq!(fs::read(&key).unwrap(), contents, "{what}: the key is never replaced");
        assert!(!public_path(&keys).exists(), "{what}: nothing derived from a bad key");
    }
}

#[test]
fn malformed_public_key_files_are_refused_naming_the_file() {
    let (_scratch, keys, _) = generated("keys-badpub");
    let public = public_path(&keys);
    let private_pem = private_key_pem(&[7u8; 32]);
    let oversized = "A".repeat(5000);
    let cases: [(&str, &[u8]); 4] = [
        ("text", b"not a key\n"),
        ("private label", private_pem.as_bytes()),
        ("oversized", oversized.as_bytes()),
        ("short", b"-----BEGIN PUBLIC KEY-----\nMC4CAQA=\n-----END PUBLIC KEY-----\n"),
    ];
    for (what, contents) in cases {
        fs::write(&public, contents).unwrap();
        let err = keys.load_or_generate().expect_err(what);
        assert!(
            matches!(&err, KeyError::PublicKeyFormat { path, .. } if path == &public),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("regenerated"), "{what}: {err}");
        assert_eq!(fs::read(&public).unwrap(), contents, "{what}");
    }
}

#[test]
fn unreadable_key_and_blocked_directory_are_errors_naming_the_path() {
    let scratch = Scratch::new("keys-unreadable");
    let keys = KeyDir::new(scratch.path());
    // A directory where the key should be: unreadable as a file even for root.
    fs::create_dir_all(key_path(&keys)).unwrap();
    let err = keys.load_or_generate().expect_err("unreadable");
    assert!(matches!(&err, KeyError::Read { path, .. } if path == &key_path(&keys)), "{err}");

    let file = scratch.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = KeyDir::new(&file).load_or_generate().expect_err("not a directory");
    assert!(matches!(&err, KeyError::CreateDir { dir, .. } if dir == &file), "{err}");
}

#[test]
fn concurrent_first_starts_agree_on_one_identity() {
    let scratch = Scratch::new("keys-race");
    let keys = KeyDir::new(scratch.path());
    let loaded: Vec<[u8; 32]> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| keys.load_or_generate().expect("load").public_key()))
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(loaded.iter().all(|k| *k == loaded[0]), "{loaded:?}");
    assert_eq!(keys.load_or_generate().unwrap().public_key(), loaded[0]);
}

#[test]
fn rotation_replaces_the_identity_and_keeps_the_old_pair() {
    let (_scratch, keys, old) = generated("keys-rotate");
    let (old_key, old_public) =
        (fs::read(key_path(&keys)).unwrap(), fs::read(public_path(&keys)).unwrap());

    let rotated = keys.rotate().expect("rotate");
    assert_eq!(rotated.old_fingerprint, old.fingerprint());
    assert_eq!(rotated.new_fingerprint, rotated.identity.fingerprint());
    assert_ne!(rotated.new_fingerprint, rotated.old_fingerprint);
    assert_eq!(keys.load_or_generate().unwrap().public_key(), rotated.identity.public_key());

    assert_eq!(rotated.backup_dir.parent(), Some(keys.backups_dir().as_path()));
    assert_eq!(fs::read(rotated.backup_dir.join(KEY_FILE_NAME)).unwrap(), old_key);
    assert_eq!(fs::read(rotated.backup_dir.join(PUBLIC_KEY_FILE_NAME)).unwrap(), old_public);
    assert_eq!(mode(&rotated.backup_dir.join(KEY_FILE_NAME)), 0o600);
    assert_eq!(names(keys.dir()), ["backups", KEY_FILE_NAME, PUBLIC_KEY_FILE_NAME]);
    assert_private_tree(keys.dir());

    // A second rotation within the same second gets its own backup directory.
    let again = keys.rotate().expect("rotate again");
    assert_ne!(again.backup_dir, rotated.backup_dir);
    assert_eq!(again.old_fingerprint, rotated.new_fingerprint);
    assert_eq!(names(&keys.backups_dir()).len(), 2);
    assert_private_tree(keys.dir());
}

/// A rotation interrupted at every possible point: the next load yields exactly the old or
/// exactly the new identity, leaves no staged file, and no secret is ever readable by others.
#[test]
fn interrupted_rotation_yields_the_old_or_the_new_identity() {
    for cut in 0..CUT_POINTS {
        let (_scratch, keys, old) = generated("keys-cut");
        let (old_key, old_public) =
            (fs::read(key_path(&keys)).unwrap(), fs::read(public_path(&keys)).unwrap());
        let new = Identity::generate();
        let secret = private_key_pem(new.signing_key().as_bytes());
        let public = public_key_pem(&new.public_key());

        let backup = rotate_until(keys.pair_files(), secret.as_bytes(), public.as_bytes(), cut);
        let files = assert_private_tree(keys.dir());

        let loaded = keys.load_or_generate().expect("load after the cut");
        let expected = if rolls_forward(cut) { &new } else { &old };
        assert_eq!(loaded.public_key(), expected.public_key(), "cut {cut}, files {files:?}");
        let mut expected_names = vec![KEY_FILE_NAME, PUBLIC_KEY_FILE_NAME];
        if cut > 0 {
            expected_names.insert(0, "backups");
        }
        assert_eq!(names(keys.dir()), expected_names, "cut {cut}: no staged file left");
        assert_private_tree(keys.dir());
        if let Some(backup) = backup.filter(|_| backup_complete(cut)) {
            assert_eq!(fs::read(backup.join(KEY_FILE_NAME)).unwrap(), old_key, "cut {cut}");
            assert_eq!(fs::read(backup.join(PUBLIC_KEY_FILE_NAME)).unwrap(), old_public);
        }
    }
}

#[test]
fn stray_staged_files_are_cleaned_up() {
    let (_scratch, keys, current) = generated("keys-stray");
    let (a, b) = (Identity::generate(), Identity::generate());
    let staged = |name: &str| keys.dir().join(format!("{name}.new"));
    let write = |name: &str, contents: String, mode: u32| {
        publish(keys.dir(), name, contents.as_bytes(), mode, Publish::Replace)
            .expect("write staged file");
    };
    let key_pem = |id: &Identity| private_key_pem(id.signing_key().as_bytes());
    let public_pem = |id: &Identity| public_key_pem(&id.public_key());

    // Both staged, but not one pair: both deleted, the current identity stays.
    write("node.key.new", key_pem(&a), 0o600);
    write("node.pub.new", public_pem(&b), 0o644);
    assert_eq!(keys.load_or_generate().unwrap().public_key(), current.public_key());
    assert!(!staged(KEY_FILE_NAME).exists() && !staged(PUBLIC_KEY_FILE_NAME).exists());

    // A staged public key that belongs to no key: deleted.
    write("node.pub.new", public_pem(&b), 0o644);
    assert_eq!(keys.load_or_generate().unwrap().public_key(), current.public_key());
    assert!(!staged(PUBLIC_KEY_FILE_NAME).exists());

    // A staged public key matching the key (the key's rename was done): renamed.
    fs::write(key_path(&keys), key_pem(&a)).unwrap();
    write("node.pub.new", public_pem(&a), 0o644);
    assert_eq!(keys.load_or_generate().unwrap().public_key(), a.public_key());
    assert!(!staged(PUBLIC_KEY_FILE_NAME).exists());
}
