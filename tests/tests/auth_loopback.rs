//! Peer authentication over real loopback connections: keys and pins on disk, trust modes,
//! cookie, cookie-only, clock skew, rotation without restart, refusal at start. (Proof replay
//! and relays, the stalled peer and the `verify_peer` regression are unit tests in
//! `shoal-transport`: they need a forged transcript or a bare quiche peer.)

mod loopback;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};

use loopback::{config, count, messages, name, Node};
use shoal_transport::auth::{
    fingerprint, system_clock, Auth, AuthConfig, Cookie, Identity, KeyDir, TrustMode, TrustStore,
};
use shoal_transport::config::TransportConfig;
use shoal_transport::endpoint::{DownReason, Event, Lane};
use shoal_transport::shard::{Seams, StartError, Transport};

/// Log lines of this test process (every test's; assertions look for their own node names).
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        LINES.lock().unwrap_or_else(PoisonError::into_inner).push(line);
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn logged(needle: &str) -> bool {
    LINES.lock().unwrap_or_else(PoisonError::into_inner).iter().any(|line| line.contains(needle))
}

/// A scratch directory, unique per call, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "shoal-auth-loopback-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        let _ = fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// A one-shard node whose keys and pins live in `dir`.
fn on_disk(node: &str, dir: &Scratch) -> TransportConfig {
    let mut config = config(node, 1);
    config.auth.auth_key_dir = Some(dir.0.clone());
    config
}

/// A one-shard node with the authentication settings `auth`, keys and pins in memory.
fn with_auth(node: &str, auth: AuthConfig) -> TransportConfig {
    let mut config = config(node, 1);
    config.auth = AuthConfig { auth_key_dir: None, ..auth };
    config
}

fn identity_of(node: &Node) -> [u8; 32] {
    node.transport.handle().auth().identity().public_key()
}

/// Waits until `node` has reported a link (to any peer) down because authentication failed
/// with reason `label`.
fn wait_refused(node: &mut Node, label: &'static str) {
    node.wait(&format!("LinkDown {label}"), |seen| {
        count(seen, |event| {
            matches!(event, Event::LinkDown { reason: DownReason::AuthFailed { reason, .. }, .. } if *reason == label)
        }) > 0
    });
}

fn failures(node: &Node, label: &str) -> u64 {
    node.transport.handle().metrics().auth.failures_of(label)
}

/// Restarts `node` on its key directory and waits until `peer` has seen the old link go (until
/// then a send from `peer` would still take the old connection).
fn restart(node: Node, dir: &Scratch, peer: &mut Node) -> Node {
    let name = node.name.to_string();
    node.transport.shutdown().expect("clean shutdown");
    let restarted = Node::start(on_disk(&name, dir));
    peer.wait("the old link down", |seen| {
        count(seen, |event| matches!(event, Event::LinkDown { .. })) > 0
    });
    restarted
}

fn deliver(from: &Node, to: &mut Node, payload: &[u8]) {
    let before = messages(&to.seen).len();
    from.send(to, Lane::Data(0), payload);
    to.wait("the message", |seen| messages(seen).len() > before);
}

#[test]
fn first_contact_pins_both_sides_and_the_pins_survive_a_restart() {
    let (dir_a, dir_b) = (Scratch::new("a"), Scratch::new("b"));
    let mut a = Node::start(on_disk("pin-a@loop", &dir_a));
    let mut b = Node::start(on_disk("pin-b@loop", &dir_b));
    deliver(&a, &mut b, b"hello");
    // First-contact pins are written by each store's writer thread: wait for it.
    for node in [&a, &b] {
        node.transport.handle().auth().trust_store().sync();
    }
    let pin_of_a = dir_b.0.join("trusted/pin-a@loop.pub");
    let pin_of_b = dir_a.0.join("trusted/pin-b@loop.pub");
    for pin in [&pin_of_a, &pin_of_b] {
        assert_eq!(mode(pin), 0o600, "{}", pin.display());
    }
    assert_eq!(mode(&dir_a.0.join("node.key")), 0o600);
    assert_eq!(mode(&dir_a.0), 0o700);
    let a_key = identity_of(&a);
    let listed = b.transport.handle().auth().trust_store().list();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].public_key, listed[0].fingerprint), (a_key, fingerprint(&a_key)));

    // b restarts on the same directory: same identity, a's pin loaded from disk.
    let b_key = identity_of(&b);
    let mut b = restart(b, &dir_b, &mut a);
    assert_eq!(identity_of(&b), b_key);
    assert_eq!(b.transport.handle().auth().trust_store().get(&name("pin-a@loop")), Some(a_key));
    deliver(&a, &mut b, b"again");
    assert_eq!(failures(&b, "key_mismatch") + failures(&a, "key_mismatch"), 0);
}

#[test]
fn a_changed_key_is_a_key_mismatch_in_both_modes_until_the_pin_is_removed() {
    capture_logs();
    for mode in [TrustMode::Tofu, TrustMode::Strict] {
        let node_a = format!("mm-{mode:?}-a@loop").to_lowercase();
        let node_b = format!("mm-{mode:?}-b@loop").to_lowercase();
        let b_config = AuthConfig { auth_trust_mode: mode, ..AuthConfig::default() };
        let mut b = Node::start(with_auth(&node_b, b_config));
        // b holds an old key for a (provisioned, or pinned on an earlier contact).
        let old = Identity::generate();
        b.transport
            .handle()
            .auth()
            .trust_store()
            .store(&name(&node_a), &old.public_key())
            .expect("pin");
        let mut a = Node::start(with_auth(&node_a, AuthConfig::default()));
        // a knows b's key already (it is the side that changed, not b).
        a.transport
            .handle()
            .auth()
            .trust_store()
            .store(&name(&node_b), &identity_of(&b))
            .expect("pin");
        a.send(&b, Lane::Data(0), b"must not arrive");
        wait_refused(&mut a, "key_mismatch");
        assert_eq!(failures(&b, "key_mismatch"), 1, "{mode:?}");
        assert!(messages(&b.seen).is_empty());
        let presented = fingerprint(&identity_of(&a));
        assert!(
            logged(&format!("Key mismatch for node {node_a}"))
                && logged(&format!("existing key {}", old.fingerprint()))
                && logged(&format!("presented key {presented}")),
            "the operator's log line with both fingerprints"
        );
        // The operator removes (tofu) or replaces (strict) the pin: the next dial works.
        let handle = b.transport.handle();
        let store = handle.auth().trust_store();
        match mode {
            TrustMode::Tofu => assert_eq!(store.delete(&name(&node_a)).ok(), Some(true)),
            TrustMode::Strict => store.store(&name(&node_a), &identity_of(&a)).expect("pin"),
        }
        deliver(&a, &mut b, b"after the fix");
        assert_eq!(store.get(&name(&node_a)), Some(identity_of(&a)));
    }
}

#[test]
fn strict_mode_refuses_unpinned_keys_and_accepts_provisioned_ones() {
    let strict = AuthConfig { auth_trust_mode: TrustMode::Strict, ..AuthConfig::default() };
    let mut a = Node::start(with_auth("strict-a@loop", strict.clone()));
    let mut b = Node::start(with_auth("strict-b@loop", strict));
    a.send(&b, Lane::Data(0), b"must not arrive");
    wait_refused(&mut a, "untrusted_key");
    assert_eq!(failures(&b, "untrusted_key"), 1);
    // Provision both keys (what an operator does by copying node.pub files).
    let (auth_a, auth_b) = (a.transport.handle(), b.transport.handle());
    auth_b.auth().trust_store().store(&name("strict-a@loop"), &identity_of(&a)).expect("pin");
    auth_a.auth().trust_store().store(&name("strict-b@loop"), &identity_of(&b)).expect("pin");
    deliver(&a, &mut b, b"provisioned");
    assert_eq!(auth_b.auth().trust_store().len(), 1, "strict mode writes no pins of its own");
}

#[test]
fn a_wrong_cookie_is_refused() {
    let one = AuthConfig { dist_cookie: Cookie::new("cluster-one"), ..AuthConfig::default() };
    let two = AuthConfig { dist_cookie: Cookie::new("cluster-two"), ..AuthConfig::default() };
    let mut a = Node::start(with_auth("cookie-a@loop", one));
    let b = Node::start(with_auth("cookie-b@loop", two));
    a.send(&b, Lane::Data(0), b"must not arrive");
    wait_refused(&mut a, "cookie_mismatch");
    assert_eq!(failures(&b, "cookie_mismatch"), 1);
    assert!(b.transport.handle().auth().trust_store().is_empty(), "no pin for a refused peer");
}

#[test]
fn cookie_only_works_when_both_sides_list_each_other_and_only_then() {
    let listing = |patterns: &[&str]| AuthConfig {
        dist_cookie: Cookie::new("a-high-entropy-cluster-secret"),
        cookie_only_nodes: patterns.iter().map(|p| (*p).to_owned()).collect(),
        ..AuthConfig::default()
    };
    let a = Node::start(with_auth("probe@co-a", listing(&["*@co-b"])));
    let mut b = Node::start(with_auth("db@co-b", listing(&["probe@*"])));
    deliver(&a, &mut b, b"cookie only");
    assert!(b.transport.handle().auth().trust_store().is_empty(), "no key was checked or pinned");

    // c lists b, but b does not list c.
    let mut c = Node::start(with_auth("other@co-c", listing(&["*@co-b"])));
    c.send(&b, Lane::Data(0), b"must not arrive");
    wait_refused(&mut c, "unexpected_auth_ok");
    assert_eq!(failures(&b, "unexpected_auth_ok"), 1);
}

#[test]
fn clock_skew_beyond_the_window_is_refused() {
    let window_ms = AuthConfig::default().auth_timestamp_window_ms;
    let system = system_clock();
    let skewed: shoal_transport::auth::WallClock = Arc::new(move || system() + window_ms + 5_000);
    let config_a = with_auth("skew-a@loop", AuthConfig::default());
    let auth = Auth::with_parts(
        &config_a.auth,
        Identity::generate(),
        None,
        TrustStore::in_memory(),
        skewed,
    )
    .expect("auth");
    let mut a =
        Node::start_with(config_a, Seams { auth: Some(Arc::new(auth)), ..Seams::default() });
    let b = Node::start(with_auth("skew-b@loop", AuthConfig::default()));
    a.send(&b, Lane::Data(0), b"must not arrive");
    wait_refused(&mut a, "peer_ts_skew");
    assert_eq!(failures(&b, "peer_ts_skew"), 1);
}

#[test]
fn identity_rotation_takes_effect_at_the_next_handshake_without_a_restart() {
    let (dir_a, dir_b) = (Scratch::new("rot-a"), Scratch::new("rot-b"));
    let mut a = Node::start(on_disk("rot-a@loop", &dir_a));
    let mut b = Node::start(on_disk("rot-b@loop", &dir_b));
    deliver(&a, &mut b, b"before");
    let old = identity_of(&a);
    let rotation = a.transport.handle().auth().rotate_identity().expect("rotation");
    assert_eq!(rotation.old_fingerprint, fingerprint(&old));
    let backup = rotation.backup_dir.expect("a backup on disk");
    assert_eq!(mode(&backup.join("node.key")), 0o600);
    // The new pair is on disk and loads as the identity a now uses.
    let on_disk_now = KeyDir::new(dir_a.0.clone()).load_or_generate().expect("loads");
    assert_eq!(on_disk_now.public_key(), identity_of(&a));
    assert_ne!(identity_of(&a), old);

    // A new handshake (b restarts; a keeps running): b's TOFU pin refuses the new key.
    let mut b = restart(b, &dir_b, &mut a);
    a.send(&b, Lane::Data(0), b"refused");
    wait_refused(&mut a, "key_mismatch");
    // The operator removes the stale pin; TOFU pins the new key.
    assert_eq!(
        b.transport.handle().auth().trust_store().delete(&name("rot-a@loop")).ok(),
        Some(true)
    );
    deliver(&a, &mut b, b"after");
    assert_eq!(
        b.transport.handle().auth().trust_store().get(&name("rot-a@loop")),
        Some(identity_of(&a))
    );
}

#[test]
fn authentication_off_works_between_nodes_that_both_turned_it_off_and_warns() {
    capture_logs();
    let off = AuthConfig { auth_enabled: false, ..AuthConfig::default() };
    let a = Node::start(with_auth("off-a@loop", off.clone()));
    let mut b = Node::start(with_auth("off-b@loop", off));
    deliver(&a, &mut b, b"unauthenticated");
    assert!(logged("AUTHENTICATION DISABLED"));
    // A node with authentication on refuses them.
    let mut on = Node::start(with_auth("on@loop", AuthConfig::default()));
    on.send(&b, Lane::Data(0), b"must not arrive");
    wait_refused(&mut on, "unexpected_auth_ok");
}

#[test]
fn a_key_pair_that_does_not_match_refuses_to_start() {
    let dir = Scratch::new("mismatch");
    let node = Node::start(on_disk("mm@loop", &dir));
    node.transport.shutdown().expect("clean shutdown");
    // node.pub of another key: what an interrupted manual restore leaves.
    let other = Scratch::new("other");
    KeyDir::new(other.0.clone()).load_or_generate().expect("another identity");
    fs::copy(other.0.join("node.pub"), dir.0.join("node.pub")).expect("copy");
    let error = Transport::start_with_channel(on_disk("mm@loop", &dir), 16).expect_err("refused");
    assert!(matches!(error, StartError::Auth(_)), "{error}");
    let text = error.to_string();
    assert!(text.contains("keypair_mismatch") && text.contains("node.pub"), "{text}");
}

#[test]
fn cookie_only_nodes_with_the_default_cookie_refuse_to_start() {
    let config = with_auth(
        "default-cookie@loop",
        AuthConfig { cookie_only_nodes: vec!["probe@*".into()], ..AuthConfig::default() },
    );
    let error = Transport::start_with_channel(config, 16).expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("cookie_only_nodes") && text.contains("dist_cookie"), "{text}");
}

#[test]
fn two_nodes_cannot_share_a_key_directory() {
    let dir = Scratch::new("shared");
    let first = Node::start(on_disk("first@loop", &dir));
    let error =
        Transport::start_with_channel(on_disk("second@loop", &dir), 16).expect_err("locked");
    assert!(error.to_string().contains("in use by another shoal process"), "{error}");
    // The directory is free again once the first node stopped.
    first.transport.shutdown().expect("clean shutdown");
    let again = Node::start(on_disk("second@loop", &dir));
    again.transport.shutdown().expect("clean shutdown");
}

#[test]
fn a_stopped_node_releases_its_shards_state_and_authentication() {
    let mut a = Node::start(with_auth("leak-a@loop", AuthConfig::default()));
    let b = Node::start(with_auth("leak-b@loop", AuthConfig::default()));
    deliver(&b, &mut a, b"a connection, so the shard holds state");
    let auth = Arc::clone(a.transport.handle().auth());
    assert!(Arc::strong_count(&auth) > 1);
    a.transport.shutdown().expect("clean shutdown");
    // Shards, endpoints and handles are gone: only this test's reference is left (a cycle
    // between the shard's tasks and its state once kept them all alive).
    assert_eq!(Arc::strong_count(&auth), 1);
}
