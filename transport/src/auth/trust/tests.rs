//! The trust store on disk, in a scratch directory per test.

use std::sync::{Arc, Barrier};

use super::*;
use crate::auth::keys::Identity;
use crate::testutil::{mode, Scratch};

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("valid test name")
}

fn key() -> [u8; 32] {
    Identity::generate().public_key()
}

#[test]
fn store_is_send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TrustStore>();
}

#[test]
fn trust_on_first_use_then_known_then_conflict() {
    let scratch = Scratch::new("trust-tofu");
    let dir = scratch.path().join("trusted");
    let (store, skipped) = TrustStore::open(&dir).expect("open");
    assert!(skipped.is_empty() && store.is_empty());
    assert_eq!(mode(&dir), 0o700);

    let (peer, first, other) = (name("alice@host-1"), key(), key());
    assert_eq!(store.get(&peer), None);
    match store.pin_if_new(&peer, &first) {
        Ok(PinOutcome::Pinned { persist_error: None }) => {}
        other => panic!("expected a persisted pin, got {other:?}"),
    }
    assert!(matches!(store.pin_if_new(&peer, &first), Ok(PinOutcome::Known)));
    let conflict = store.pin_if_new(&peer, &other).expect_err("conflict");
    assert_eq!(conflict, PinConflict { pinned: first });
    assert!(conflict.to_string().contains(&fingerprint(&first).to_string()), "{conflict}");
    assert_eq!(store.get(&peer), Some(first), "a conflict changes nothing");

    let file = dir.join("alice@host-1.pub");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(fs::read_to_string(&file).unwrap(), public_key_pem(&first));
    let (reopened, skipped) = TrustStore::open(&dir).expect("reopen");
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(reopened.get(&peer), Some(first));
    assert_eq!(reopened.len(), 1);
}

#[test]
fn operator_store_delete_and_list() {
    let scratch = Scratch::new("trust-operator");
    let (store, _) = TrustStore::open(scratch.path()).expect("open");
    let (alice, bob, carol) = (name("alice@h"), name("bob@h"), name("carol@h"));
    let (a, b, b2) = (key(), key(), key());
    store.store(&bob, &b).expect("store bob");
    store.store(&alice, &a).expect("store alice");
    store.store(&bob, &b2).expect("replace bob");
    assert_eq!(store.get(&bob), Some(b2));
    assert_eq!(fs::read_to_string(scratch.path().join("bob@h.pub")).unwrap(), public_key_pem(&b2));
    assert_eq!(mode(&scratch.path().join("bob@h.pub")), 0o600);

    let listed = store.list();
    let expected = [(alice.clone(), a), (bob.clone(), b2)];
    assert_eq!(listed.len(), expected.len());
    for (pin, (name, key)) in listed.iter().zip(expected) {
        assert_eq!((&pin.name, pin.public_key, pin.fingerprint), (&name, key, fingerprint(&key)));
    }

    assert!(store.delete(&bob).expect("delete"));
    assert!(!store.delete(&bob).expect("delete again"));
    assert!(!store.delete(&carol).expect("never pinned"));
    assert!(!scratch.path().join("bob@h.pub").exists());
    assert_eq!(store.get(&bob), None);
    assert_eq!(store.len(), 1);
    let (reopened, _) = TrustStore::open(scratch.path()).expect("reopen");
    assert_eq!(reopened.list(), store.list());
    // A deleted pin is open for trust on first use again.
    assert!(matches!(store.pin_if_new(&bob, &b), Ok(PinOutcome::Pinned { .. })));
}

#[test]
fn open_skips_and_reports_malformed_files() {
    let scratch = Scratch::new("trust-skip");
    let dir = scratch.path();
    fs::create_dir_all(dir).unwrap();
    let good = key();
    fs::write(dir.join("good@h.pub"), public_key_pem(&good)).unwrap();
    fs::write(dir.join("no-at-sign.pub"), public_key_pem(&key())).unwrap();
    fs::write(dir.join("bad-key@h.pub"), b"-----BEGIN PUBLIC KEY-----\nAAAA\n").unwrap();
    fs::write(dir.join("private@h.pub"), crate::keyformat::private_key_pem(&[1; 32])).unwrap();
    fs::write(dir.join("notes.txt"), b"hello").unwrap();
    fs::create_dir(dir.join("dir@h.pub")).unwrap();

    let (store, skipped) = TrustStore::open(dir).expect("open");
    assert_eq!(store.list().len(), 1);
    assert_eq!(store.get(&name("good@h")), Some(good));
    let skipped: Vec<(String, &str)> = skipped
        .iter()
        .map(|s| (s.path.file_name().unwrap().to_string_lossy().into_owned(), s.reason.as_str()))
        .collect();
    let expect = [
        ("bad-key@h.pub", "END PUBLIC KEY"),
        ("dir@h.pub", "not a regular file"),
        ("no-at-sign.pub", "not a node name"),
        ("notes.txt", "does not end in .pub"),
        ("private@h.pub", "PRIVATE KEY"),
    ];
    assert_eq!(skipped.len(), expect.len(), "{skipped:?}");
    for ((file, reason), (expected_file, expected_reason)) in skipped.iter().zip(expect) {
        assert_eq!(file, expected_file);
        assert!(reason.contains(expected_reason), "{file}: {reason}");
    }
}

#[test]
fn unwritable_pin_stays_in_memory_and_reports_the_error() {
    let scratch = Scratch::new("trust-persist");
    let (store, _) = TrustStore::open(scratch.path()).expect("open");
    // A directory where the pin file goes: the rename over it fails.
    fs::create_dir(scratch.path().join("alice@h.pub")).unwrap();
    let (peer, k) = (name("alice@h"), key());
    match store.pin_if_new(&peer, &k) {
        Ok(PinOutcome::Pinned { persist_error: Some(KeyError::Write { path, .. }) }) => {
            assert_eq!(path, scratch.path().join("alice@h.pub"));
        }
        other => panic!("expected a pin with a write error, got {other:?}"),
    }
    assert_eq!(store.get(&peer), Some(k));
    // The operator's store reports the same error and changes nothing.
    let other = key();
    assert!(matches!(store.store(&peer, &other), Err(KeyError::Write { .. })));
    assert_eq!(store.get(&peer), Some(k));
}

#[test]
fn concurrent_first_pins_have_exactly_one_winner() {
    let scratch = Scratch::new("trust-race");
    let (store, _) = TrustStore::open(scratch.path()).expect("open");
    let store = Arc::new(store);
    let peer = name("contested@h");
    let keys: Vec<[u8; 32]> = (0..4).map(|_| key()).collect();
    let start = Arc::new(Barrier::new(keys.len()));
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = keys
            .iter()
            .map(|k| {
                let (store, start, peer) = (Arc::clone(&store), Arc::clone(&start), peer.clone());
                s.spawn(move || {
                    start.wait();
                    store.pin_if_new(&peer, k)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let winners: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Ok(PinOutcome::Pinned { persist_error: None })))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    let winner = keys[winners[0]];
    for outcome in &outcomes {
        if let Err(conflict) = outcome {
            assert_eq!(conflict.pinned, winner);
        }
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_err()).count(), keys.len() - 1);
    assert_eq!(store.get(&peer), Some(winner));
    let (reopened, _) = TrustStore::open(scratch.path()).expect("reopen");
    assert_eq!(reopened.get(&peer), Some(winner), "the file holds the winner's key");
}

#[test]
fn deferred_pins_reach_the_disk_by_sync_and_by_drop() {
    let scratch = Scratch::new("trust-deferred");
    let (store, _) = TrustStore::open(scratch.path()).expect("open");
    let (first, second) = ((name("first@h"), key()), (name("second@h"), key()));
    assert!(matches!(
        store.pin_if_new_deferred(&first.0, &first.1),
        Ok(PinOutcome::Pinned { persist_error: None })
    ));
    // In memory at once; on disk once the writer caught up.
    assert_eq!(store.get(&first.0), Some(first.1));
    store.sync();
    assert_eq!(mode(&scratch.path().join("first@h.pub")), 0o600);
    assert_eq!(store.persist_failures(), 0);
    assert!(matches!(store.pin_if_new_deferred(&first.0, &first.1), Ok(PinOutcome::Known)));
    let other = key();
    assert_eq!(
        store.pin_if_new_deferred(&first.0, &other).map(|_| ()),
        Err(PinConflict { pinned: first.1 })
    );
    // A pin still queued when the store goes away is written before the drop returns.
    store.pin_if_new_deferred(&second.0, &second.1).expect("new");
    drop(store);
    let (reopened, _) = TrustStore::open(scratch.path()).expect("reopen");
    assert_eq!(reopened.get(&second.0), Some(second.1));
}

#[test]
fn a_deferred_pin_that_cannot_be_written_is_counted_and_kept_in_memory() {
    let scratch = Scratch::new("trust-deferred-fail");
    let (store, _) = TrustStore::open(scratch.path()).expect("open");
    fs::create_dir(scratch.path().join("alice@h.pub")).unwrap();
    let (peer, k) = (name("alice@h"), key());
    store.pin_if_new_deferred(&peer, &k).expect("new");
    store.sync();
    assert_eq!(store.persist_failures(), 1);
    assert_eq!(store.get(&peer), Some(k));
}
