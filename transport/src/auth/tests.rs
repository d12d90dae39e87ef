//! The HELLO/WELCOME proofs between two in-memory `Auth`s: every outcome of the checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shoal_protocols::NodeName;

use super::proof::fixtures::{binding, other_connections};
use super::*;
use crate::frame::AuthFields;

const NOW_MS: u64 = 1_800_000_000_000;

fn name(text: &str) -> NodeName {
    NodeName::parse(text).expect("valid")
}

fn fixed_clock(ms: u64) -> WallClock {
    Arc::new(move || ms)
}

fn node(config: AuthConfig) -> Auth {
    node_with(config, Identity::generate(), NOW_MS)
}

fn node_with(config: AuthConfig, identity: Identity, clock_ms: u64) -> Auth {
    Auth::with_parts(&config, identity, None, TrustStore::in_memory(), fixed_clock(clock_ms))
        .expect("valid config")
}

fn memory() -> AuthConfig {
    AuthConfig { auth_key_dir: None, ..AuthConfig::default() }
}

fn strict() -> AuthConfig {
    AuthConfig { auth_trust_mode: TrustMode::Strict, ..memory() }
}

fn cookie_only(patterns: &[&str]) -> AuthConfig {
    AuthConfig {
        dist_cookie: Cookie::new("a-long-cluster-secret"),
        cookie_only_nodes: patterns.iter().map(|p| (*p).to_owned()).collect(),
        ..memory()
    }
}

/// What each side concluded.
#[derive(Debug)]
struct Outcome {
    acceptor: Result<PeerIdentity, AuthFailure>,
    dialer: Option<Result<PeerIdentity, AuthFailure>>,
}

/// Runs HELLO then (when the acceptor accepted) WELCOME between `a@h` (dialer) and `b@h`.
fn exchange(dialer: &Auth, acceptor: &Auth) -> Outcome {
    exchange_on(dialer, acceptor, &binding(), &binding())
}

fn exchange_on(
    dialer: &Auth,
    acceptor: &Auth,
    seen_by_dialer: &Binding,
    seen_by_acceptor: &Binding,
) -> Outcome {
    let (a, b) = (name("a@h"), name("b@h"));
    let mut scratch = Vec::new();
    let hello = dialer.prove_hello(seen_by_dialer, &a, &b, 11, &mut scratch);
    let accepted = acceptor.check_hello(seen_by_acceptor, &b, &a, &b, 11, &hello, &mut scratch);
    let Ok(peer) = accepted else { return Outcome { acceptor: accepted, dialer: None } };
    let welcome = acceptor.prove_welcome(seen_by_acceptor, &a, &b, 22, peer.mode, &mut scratch);
    let confirmed = dialer.check_welcome(seen_by_dialer, &a, &b, &b, 22, &welcome, &mut scratch);
    Outcome { acceptor: accepted, dialer: Some(confirmed) }
}

fn label(result: &Result<PeerIdentity, AuthFailure>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(failure) => failure.label(),
    }
}

#[test]
fn signed_exchange_pins_both_sides_on_first_contact() {
    let (dialer, acceptor) = (node(memory()), node(memory()));
    let outcome = exchange(&dialer, &acceptor);
    let accepted = outcome.acceptor.expect("accepted");
    assert_eq!(
        accepted,
        PeerIdentity { mode: Mode::Signed, identity_key: Some(dialer.identity().public_key()) }
    );
    let confirmed = outcome.dialer.expect("welcome checked").expect("confirmed");
    assert_eq!(confirmed.identity_key, Some(acceptor.identity().public_key()));
    assert_eq!(acceptor.trust_store().get(&name("a@h")), Some(dialer.identity().public_key()));
    assert_eq!(dialer.trust_store().get(&name("b@h")), Some(acceptor.identity().public_key()));
    // A second connection with the same keys is accepted against the pins.
    assert!(exchange(&dialer, &acceptor).dialer.expect("checked").is_ok());
}

#[test]
fn a_changed_key_is_a_key_mismatch_in_both_modes() {
    for config in [memory(), strict()] {
        let acceptor = node(config.clone());
        let old = Identity::generate();
        acceptor.trust_store().store(&name("a@h"), &old.public_key()).expect("in memory");
        let dialer = node(memory());
        let outcome = exchange(&dialer, &acceptor);
        match outcome.acceptor {
            Err(AuthFailure::KeyMismatch { pinned, presented }) => {
                assert_eq!(pinned, old.fingerprint());
                assert_eq!(presented, dialer.identity().fingerprint());
            }
            other => panic!("{:?}: {other:?}", config.auth_trust_mode),
        }
        // The pin is unchanged until an operator removes it; then TOFU re-pins.
        assert_eq!(acceptor.trust_store().get(&name("a@h")), Some(old.public_key()));
        if config.auth_trust_mode == TrustMode::Tofu {
            assert_eq!(acceptor.trust_store().delete(&name("a@h")).ok(), Some(true));
            assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "ok");
        }
    }
}

#[test]
fn strict_mode_needs_a_provisioned_key_on_both_sides() {
    let (dialer, acceptor) = (node(strict()), node(strict()));
    assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "untrusted_key");
    acceptor.trust_store().store(&name("a@h"), &dialer.identity().public_key()).expect("memory");
    // The acceptor now accepts; the dialer has no pin for the acceptor yet.
    let outcome = exchange(&dialer, &acceptor);
    assert_eq!(label(&outcome.acceptor), "ok");
    assert_eq!(label(&outcome.dialer.expect("checked")), "untrusted_key");
    dialer.trust_store().store(&name("b@h"), &acceptor.identity().public_key()).expect("memory");
    assert_eq!(label(&exchange(&dialer, &acceptor).dialer.expect("checked")), "ok");
    // Strict mode never writes pins by itself.
    assert_eq!((dialer.trust_store().len(), acceptor.trust_store().len()), (1, 1));
}

#[test]
fn a_wrong_cookie_is_refused_without_revealing_either() {
    let dialer = node(AuthConfig { dist_cookie: Cookie::new("one"), ..memory() });
    let acceptor = node(AuthConfig { dist_cookie: Cookie::new("two"), ..memory() });
    assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "cookie_mismatch");
    // Nothing was pinned for a peer that failed.
    assert!(acceptor.trust_store().is_empty());
}

#[test]
fn cookie_only_needs_both_sides_to_list_each_other() {
    let both = exchange(&node(cookie_only(&["*@h"])), &node(cookie_only(&["a@*"])));
    assert_eq!(both.acceptor.as_ref().map(|peer| peer.mode), Ok(Mode::CookieOnly));
    assert_eq!(both.dialer.expect("checked").map(|peer| peer.identity_key), Ok(None));

    // Only the acceptor lists the dialer: the dialer signed, the acceptor expected cookie-only.
    let secret = AuthConfig { dist_cookie: Cookie::new("a-long-cluster-secret"), ..memory() };
    let one_sided = exchange(&node(secret.clone()), &node(cookie_only(&["a@h"])));
    assert_eq!(label(&one_sided.acceptor), "unexpected_auth_ok");
    // Only the dialer lists the acceptor.
    let one_sided = exchange(&node(cookie_only(&["b@h"])), &node(secret));
    assert_eq!(label(&one_sided.acceptor), "unexpected_auth_ok");
}

#[test]
fn authentication_off_is_cookie_only_for_everyone() {
    let off = AuthConfig { auth_enabled: false, ..memory() };
    let outcome = exchange(&node(off.clone()), &node(off.clone()));
    assert_eq!(label(&outcome.dialer.expect("checked")), "ok");
    // A node with authentication on refuses a node with it off, both ways.
    assert_eq!(
        label(&exchange(&node(off.clone()), &node(memory())).acceptor),
        "unexpected_auth_ok"
    );
    assert_eq!(label(&exchange(&node(memory()), &node(off)).acceptor), "unexpected_auth_ok");
}

#[test]
fn clock_skew_beyond_the_window_is_refused_within_it_accepted() {
    let window_ms = AuthConfig::default().auth_timestamp_window_ms;
    for (offset_ms, want) in [(window_ms, "ok"), (window_ms + 1, "peer_ts_skew")] {
        let dialer = node_with(memory(), Identity::generate(), NOW_MS + offset_ms);
        assert_eq!(label(&exchange(&dialer, &node(memory())).acceptor), want, "+{offset_ms}");
        let dialer = node_with(memory(), Identity::generate(), NOW_MS - offset_ms);
        assert_eq!(label(&exchange(&dialer, &node(memory())).acceptor), want, "-{offset_ms}");
    }
}

#[test]
fn names_must_match_the_dialled_and_claimed_ones() {
    let (dialer, acceptor) = (node(memory()), node(memory()));
    let (a, b, c) = (name("a@h"), name("b@h"), name("c@h"));
    let mut scratch = Vec::new();
    // A HELLO for c@h arriving at b@h.
    let hello = dialer.prove_hello(&binding(), &a, &c, 1, &mut scratch);
    let result = acceptor.check_hello(&binding(), &b, &a, &c, 1, &hello, &mut scratch);
    assert_eq!(label(&result), "name_mismatch");
    // b@h answers as b@h although a@h dialled c@h.
    let welcome = acceptor.prove_welcome(&binding(), &a, &b, 2, Mode::Signed, &mut scratch);
    let result = dialer.check_welcome(&binding(), &a, &c, &b, 2, &welcome, &mut scratch);
    assert_eq!(label(&result), "name_mismatch");
}

#[test]
fn a_proof_replayed_onto_another_connection_fails() {
    let (dialer, acceptor) = (node(memory()), node(memory()));
    let (a, b) = (name("a@h"), name("b@h"));
    let mut scratch = Vec::new();
    let captured = dialer.prove_hello(&binding(), &a, &b, 1, &mut scratch);
    // The same HELLO on a connection with other CIDs (a new connection) or other TLS keys (a
    // relay terminating TLS in the middle).
    for other in other_connections() {
        let result = acceptor.check_hello(&other, &b, &a, &b, 1, &captured, &mut scratch);
        assert_eq!(label(&result), "signature_invalid", "{other:?}");
    }
    // A relay: each end sees the relay's TLS key in place of its peer's.
    let seen_by_dialer = Binding { acceptor_tls_key: [9; 32], ..binding() };
    let seen_by_acceptor = Binding { dialer_tls_key: [8; 32], ..binding() };
    let relayed = exchange_on(&dialer, &acceptor, &seen_by_dialer, &seen_by_acceptor);
    assert_eq!(label(&relayed.acceptor), "signature_invalid");
}

#[test]
fn forged_or_garbled_fields_are_refused() {
    let (dialer, acceptor) = (node(memory()), node(memory()));
    let (a, b) = (name("a@h"), name("b@h"));
    let mut scratch = Vec::new();
    let hello = dialer.prove_hello(&binding(), &a, &b, 1, &mut scratch);
    let forged_key = AuthFields { identity_key: Identity::generate().public_key(), ..hello };
    let bad_signature = AuthFields { signature: [5; 64], ..hello };
    let bad_mode = AuthFields { mode: 9, ..hello };
    let other_incarnation_checked =
        acceptor.check_hello(&binding(), &b, &a, &b, 2, &hello, &mut scratch);
    for (fields, want) in [
        (forged_key, "signature_invalid"),
        (bad_signature, "signature_invalid"),
        (bad_mode, "unexpected_auth_ok"),
    ] {
        let result = acceptor.check_hello(&binding(), &b, &a, &b, 1, &fields, &mut scratch);
        assert_eq!(label(&result), want);
    }
    // The incarnation is signed too.
    assert_eq!(label(&other_incarnation_checked), "signature_invalid");
    assert!(acceptor.trust_store().is_empty(), "no pin from a failed proof");
}

#[test]
fn a_rotated_identity_is_used_from_the_next_handshake() {
    let (dialer, acceptor) = (node(memory()), node(memory()));
    assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "ok");
    let before = dialer.identity().public_key();
    dialer.rotate_identity().expect("in memory");
    assert_ne!(dialer.identity().public_key(), before);
    // The acceptor pinned the old key: TOFU refuses the new one until the pin is removed.
    assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "key_mismatch");
    acceptor.trust_store().delete(&name("a@h")).expect("memory");
    assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "ok");
}

#[test]
fn the_clock_is_read_for_every_proof() {
    let ticks = Arc::new(AtomicU64::new(NOW_MS));
    let clock: WallClock = {
        let ticks = Arc::clone(&ticks);
        Arc::new(move || ticks.load(Ordering::Relaxed))
    };
    let dialer =
        Auth::with_parts(&memory(), Identity::generate(), None, TrustStore::in_memory(), clock)
            .expect("valid");
    let acceptor = node(memory());
    assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "ok");
    ticks.store(NOW_MS + 3_600_000, Ordering::Relaxed);
    assert_eq!(label(&exchange(&dialer, &acceptor).acceptor), "peer_ts_skew");
}
