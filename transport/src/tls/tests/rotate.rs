//! Rotation of the TLS key and certificate, complete and interrupted.

use std::fs;
use std::path::Path;

use crate::keyformat::private_key_pem;
use crate::rotation::testing::{backup_complete, rolls_forward, rotate_until, CUT_POINTS};
use crate::testutil::{assert_private_tree, mode, Scratch};
use crate::tls::material::{pair_files, private_key_from_seed, random_seed, self_signed};
use crate::tls::{peer_public_key, TlsError, TlsMaterial, CERT_FILE_NAME, KEY_FILE_NAME};

fn read_pair(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (fs::read(dir.join(KEY_FILE_NAME)).unwrap(), fs::read(dir.join(CERT_FILE_NAME)).unwrap())
}

#[test]
fn rotation_replaces_the_pair_and_keeps_the_old_one() {
    let scratch = Scratch::new("tls-rotate");
    let old = TlsMaterial::load_or_generate(scratch.path(), "node").expect("generate");
    let old_pair = read_pair(scratch.path());

    let rotated = TlsMaterial::rotate(scratch.path(), "node").expect("rotate");
    assert_eq!(rotated.old_public_key, old.public_key());
    assert_ne!(rotated.new_public_key, rotated.old_public_key);
    let loaded = TlsMaterial::load_or_generate(scratch.path(), "node").expect("reload");
    assert_eq!(loaded.public_key(), rotated.new_public_key);
    assert_eq!(peer_public_key(loaded.certificate_der()).unwrap(), rotated.new_public_key);
    assert_eq!(mode(&scratch.path().join(KEY_FILE_NAME)), 0o600);
    assert_eq!(mode(&scratch.path().join(CERT_FILE_NAME)), 0o644);

    assert_eq!(rotated.backup_dir.parent(), Some(scratch.path().join("backups").as_path()));
    assert_eq!(read_pair(&rotated.backup_dir), old_pair);
    assert_eq!(mode(&rotated.backup_dir.join(KEY_FILE_NAME)), 0o600);
    let files = assert_private_tree(scratch.path());
    assert_eq!(files.len(), 4, "{files:?}");
}

#[test]
fn rotation_refuses_a_broken_pair_and_a_bad_name() {
    let scratch = Scratch::new("tls-rotate-broken");
    TlsMaterial::load_or_generate(scratch.path(), "node").expect("generate");
    assert!(matches!(TlsMaterial::rotate(scratch.path(), ""), Err(TlsError::CommonName { .. })));
    fs::write(scratch.path().join(CERT_FILE_NAME), b"junk").unwrap();
    let err = TlsMaterial::rotate(scratch.path(), "node").expect_err("broken certificate");
    assert!(matches!(err, TlsError::CertFormat { .. }), "{err}");
    assert!(!scratch.path().join("backups").exists(), "nothing backed up");
}

/// A rotation interrupted at every possible point: the next load yields exactly the old or
/// exactly the new key, with a certificate carrying it, and no secret is readable by others.
#[test]
fn interrupted_rotation_yields_the_old_or_the_new_pair() {
    for cut in 0..CUT_POINTS {
        let scratch = Scratch::new("tls-cut");
        let dir = scratch.path();
        let old = TlsMaterial::load_or_generate(dir, "node").expect("generate");
        let old_pair = read_pair(dir);
        let seed = random_seed().unwrap();
        let new_cert = self_signed(&private_key_from_seed(&seed).unwrap(), "node").unwrap();
        let new_public = peer_public_key(&new_cert.to_der().unwrap()).unwrap();
        let (key_pem, cert_pem) = (private_key_pem(&seed), new_cert.to_pem().unwrap());

        let backup = rotate_until(pair_files(dir), key_pem.as_bytes(), &cert_pem, cut);
        let files = assert_private_tree(dir);

        let loaded = TlsMaterial::load_or_generate(dir, "node").expect("load after the cut");
        let expected = if rolls_forward(cut) { new_public } else { old.public_key() };
        assert_eq!(loaded.public_key(), expected, "cut {cut}, files {files:?}");
        assert_eq!(peer_public_key(loaded.certificate_der()).unwrap(), expected, "cut {cut}");
        assert!(!dir.join("node.key.new").exists() && !dir.join("node.crt.new").exists());
        assert_private_tree(dir);
        if let Some(backup) = backup.filter(|_| backup_complete(cut)) {
            assert_eq!(read_pair(&backup), old_pair, "cut {cut}");
        }
    }
}
