//! TLS material on disk, in a scratch directory per test.

use std::fs;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;

use crate::testutil::{mode, Scratch};
use crate::tls::material::parse_key_pem;
use crate::tls::{
    peer_public_key, TlsError, TlsMaterial, CERT_FILE_NAME, COMMON_NAME_MAX_BYTES, KEY_FILE_NAME,
};

#[test]
fn generates_then_reloads_the_same_identity() {
    let scratch = Scratch::new("reload");
    // Two missing levels: both are created.
    let dir = scratch.path().join("node").join("tls");
    let first = TlsMaterial::load_or_generate(&dir, "node-1").expect("generate");
    let (key, cert) = (dir.join(KEY_FILE_NAME), dir.join(CERT_FILE_NAME));
    assert!(key.is_file() && cert.is_file());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&cert), 0o644);
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");

    let key_before = fs::read(&key).unwrap();
    let cert_before = fs::read(&cert).unwrap();
    let second = TlsMaterial::load_or_generate(&dir, "another-name").expect("reload");
    assert_eq!(second.public_key(), first.public_key());
    assert_eq!(second.certificate_der(), first.certificate_der());
    // Loading writes nothing, and the common name of an existing certificate is kept.
    assert_eq!(fs::read(&key).unwrap(), key_before);
    assert_eq!(fs::read(&cert).unwrap(), cert_before);
}

#[test]
fn certificate_carries_the_key_boring_and_dalek_agree() {
    let material = TlsMaterial::generate_ephemeral("node").expect("generate");
    // BoringSSL wrote the certificate's key; ed25519-dalek derived `public_key` from the seed.
    assert_eq!(peer_public_key(material.certificate_der()).unwrap(), material.public_key());
    eprintln!("measured: certificate DER = {} bytes", material.certificate_der().len());
    assert!((150..=300).contains(&material.certificate_der().len()));
}

#[test]
fn key_file_is_pkcs8_v1_that_dalek_reads() {
    let scratch = Scratch::new("dalek");
    let material = TlsMaterial::load_or_generate(scratch.path(), "node").expect("generate");
    let pem = fs::read_to_string(scratch.path().join(KEY_FILE_NAME)).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    let seed = parse_key_pem(Path::new("node.key"), pem.as_bytes()).expect("own format");
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    der.extend_from_slice(&[0x04, 0x22, 0x04, 0x20]);
    der.extend_from_slice(&seed);
    let dalek = SigningKey::from_pkcs8_der(&der).expect("dalek reads PKCS#8 v1");
    assert_eq!(dalek.verifying_key().to_bytes(), material.public_key());
}

#[test]
fn deleted_certificate_is_regenerated_from_the_key() {
    let scratch = Scratch::new("regen");
    let first = TlsMaterial::load_or_generate(scratch.path(), "node").expect("generate");
    let cert = scratch.path().join(CERT_FILE_NAME);
    fs::remove_file(&cert).unwrap();
    let second = TlsMaterial::load_or_generate(scratch.path(), "node").expect("regenerate");
    assert!(cert.is_file());
    assert_eq!(mode(&cert), 0o644);
    assert_eq!(second.public_key(), first.public_key());
    assert_eq!(peer_public_key(second.certificate_der()).unwrap(), first.public_key());
    // A new certificate (fresh serial and dates), same identity.
    assert_ne!(second.certificate_der(), first.certificate_der());
}

#[test]
fn deleted_key_gives_a_new_identity_and_replaces_the_orphan_certificate() {
    let scratch = Scratch::new("newkey");
    let first = TlsMaterial::load_or_generate(scratch.path(), "node").expect("generate");
    fs::remove_file(scratch.path().join(KEY_FILE_NAME)).unwrap();
    let second = TlsMaterial::load_or_generate(scratch.path(), "node").expect("new identity");
    assert_ne!(second.public_key(), first.public_key());
    let third = TlsMaterial::load_or_generate(scratch.path(), "node").expect("reload");
    assert_eq!(third.public_key(), second.public_key());
}

#[test]
fn mismatched_certificate_is_refused_naming_both_files() {
    let (a, b) = (Scratch::new("mismatch-a"), Scratch::new("mismatch-b"));
    TlsMaterial::load_or_generate(a.path(), "a").expect("generate a");
    TlsMaterial::load_or_generate(b.path(), "b").expect("generate b");
    let cert_a = a.path().join(CERT_FILE_NAME);
    fs::copy(b.path().join(CERT_FILE_NAME), &cert_a).unwrap();
    let before = fs::read(&cert_a).unwrap();

    let err = TlsMaterial::load_or_generate(a.path(), "a").expect_err("mismatch");
    match &err {
        TlsError::CertKeyMismatch { cert, key } => {
            assert_eq!(cert, &cert_a);
            assert_eq!(key, &a.path().join(KEY_FILE_NAME));
        }
        other => panic!("expected CertKeyMismatch, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(CERT_FILE_NAME) && message.contains(KEY_FILE_NAME), "{message}");
    // Refusing changes nothing.
    assert_eq!(fs::read(&cert_a).unwrap(), before);
}

#[test]
fn garbage_key_file_is_refused_naming_the_file() {
    let scratch = Scratch::new("garbage");
    fs::create_dir_all(scratch.path()).unwrap();
    let key = scratch.path().join(KEY_FILE_NAME);
    let cases: [(&str, &[u8]); 6] = [
        ("empty", b""),
        ("text", b"not a key\n"),
        ("binary", &[0xff, 0xfe, 0x00, 0x80]),
        ("other label", b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"),
        ("bad base64", b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
        ("short", b"-----BEGIN PRIVATE KEY-----\nMC4CAQA=\n-----END PRIVATE KEY-----\n"),
    ];
    for (what, contents) in cases {
        fs::write(&key, contents).unwrap();
        let err = TlsMaterial::load_or_generate(scratch.path(), "node").expect_err(what);
        assert!(matches!(&err, TlsError::KeyFormat { path, .. } if path == &key), "{what}: {err}");
        assert!(err.to_string().contains(&*key.to_string_lossy()), "{what}: {err}");
        // The bad key is never replaced.
        assert_eq!(fs::read(&key).unwrap(), contents, "{what}");
    }
}

/// ed25519-dalek's own PKCS#8 encoding is v2, which BoringSSL cannot load: refused, by size.
#[test]
fn pkcs8_v2_key_is_refused() {
    let scratch = Scratch::new("v2");
    fs::create_dir_all(scratch.path()).unwrap();
    let dalek = SigningKey::from_bytes(&[7u8; 32]);
    let v2 = dalek.to_pkcs8_der().expect("encode");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        boring::base64::encode_block(v2.as_bytes())
    );
    fs::write(scratch.path().join(KEY_FILE_NAME), pem).unwrap();
    let err = TlsMaterial::load_or_generate(scratch.path(), "node").expect_err("v2");
    assert!(matches!(err, TlsError::KeyFormat { .. }), "{err}");
    assert!(err.to_string().contains("PKCS#8 v1"), "{err}");
}

#[test]
fn unreadable_key_file_is_an_error_naming_the_file() {
    let scratch = Scratch::new("unreadable");
    // A directory where the key should be: unreadable as a file even for root, which ignores
    // permission bits.
    let key = scratch.path().join(KEY_FILE_NAME);
    fs::create_dir_all(&key).unwrap();
    let err = TlsMaterial::load_or_generate(scratch.path(), "node").expect_err("unreadable");
    assert!(matches!(&err, TlsError::Read { path, .. } if path == &key), "{err}");
}

#[test]
fn garbage_certificate_is_refused_naming_the_file() {
    let scratch = Scratch::new("badcert");
    TlsMaterial::load_or_generate(scratch.path(), "node").expect("generate");
    let cert = scratch.path().join(CERT_FILE_NAME);
    fs::write(&cert, b"not a certificate").unwrap();
    let err = TlsMaterial::load_or_generate(scratch.path(), "node").expect_err("bad cert");
    assert!(matches!(&err, TlsError::CertFormat { path, .. } if path == &cert), "{err}");
}

#[test]
fn path_that_is_a_file_is_refused() {
    let scratch = Scratch::new("notdir");
    fs::create_dir_all(scratch.path()).unwrap();
    let file = scratch.path().join("file");
    fs::write(&file, b"x").unwrap();
    let err = TlsMaterial::load_or_generate(&file, "node").expect_err("not a directory");
    assert!(matches!(&err, TlsError::CreateDir { dir, .. } if dir == &file), "{err}");
}

#[test]
fn common_name_bounds() {
    assert!(matches!(TlsMaterial::generate_ephemeral(""), Err(TlsError::CommonName { .. })));
    let long = "n".repeat(COMMON_NAME_MAX_BYTES + 1);
    assert!(matches!(TlsMaterial::generate_ephemeral(&long), Err(TlsError::CommonName { .. })));
    TlsMaterial::generate_ephemeral(&"n".repeat(COMMON_NAME_MAX_BYTES)).expect("64 bytes fit");
}

#[test]
fn debug_shows_no_secret() {
    let material = TlsMaterial::generate_ephemeral("node").expect("generate");
    let shown = format!("{material:?}");
    let key: String = material.public_key().iter().map(|b| format!("{b:02x}")).collect();
    assert!(shown.contains(&key), "{shown}");
    assert!(!shown.contains("private"), "{shown}");
}
