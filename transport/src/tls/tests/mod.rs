//! Tests of the TLS module. Handshakes run in memory: two `quiche::Connection`s and a loop that
//! carries each one's datagrams to the other. No sockets, no clock.

mod handshake;
mod material;
mod rotate;
mod settings;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::{PeerRejected, PeerVerifier};

/// Fake client address: only ever compared, never bound.
const CLIENT_ADDR: &str = "127.0.0.1:1";
/// Fake server address.
const SERVER_ADDR: &str = "127.0.0.1:2";
/// Rounds of "each side sends everything it has" before a test gives up. A handshake takes 3.
const ROUNDS_MAX: usize = 64;
/// QUIC transport error for a TLS alert: 0x100 + the alert (RFC 9001 §4.8).
const CRYPTO_ERROR_BASE: u64 = 0x100;
/// TLS alert `bad_certificate` (RFC 8446 §6).
const ALERT_BAD_CERTIFICATE: u64 = 42;
/// TLS alert `certificate_required` (RFC 8446 §6).
const ALERT_CERTIFICATE_REQUIRED: u64 = 116;
/// TLS alert `no_application_protocol` (RFC 7301 §3.2).
const ALERT_NO_APPLICATION_PROTOCOL: u64 = 120;

fn addr(s: &str) -> SocketAddr {
    // Invariant: the constants above are valid socket addresses.
    s.parse().expect("valid address literal")
}

/// A 16-byte random connection ID.
fn random_cid() -> [u8; 16] {
    let mut cid = [0u8; 16];
    boring::rand::rand_bytes(&mut cid).expect("BoringSSL randomness");
    cid
}

/// A client and a server connection that have not exchanged anything yet.
struct Pair {
    client: quiche::Connection,
    server: quiche::Connection,
}

impl Pair {
    /// `server_name` goes into SNI: a DNS label of at most 63 bytes, or none.
    fn new(
        client_config: &mut quiche::Config,
        server_config: &mut quiche::Config,
        server_name: Option<&str>,
    ) -> Self {
        let client_cid = random_cid();
        let server_cid = random_cid();
        let client = quiche::connect(
            server_name,
            &quiche::ConnectionId::from_ref(&client_cid),
            addr(CLIENT_ADDR),
            addr(SERVER_ADDR),
            client_config,
        )
        .expect("quiche::connect");
        let server = quiche::accept(
            &quiche::ConnectionId::from_ref(&server_cid),
            None,
            addr(SERVER_ADDR),
            addr(CLIENT_ADDR),
            server_config,
        )
        .expect("quiche::accept");
        Self { client, server }
    }

    /// Carries datagrams both ways until neither side has anything to send; returns how many
    /// were carried. Panics after [`ROUNDS_MAX`] rounds (a livelock is a bug).
    fn exchange(&mut self) -> usize {
        let mut carried = 0;
        for _ in 0..ROUNDS_MAX {
            let sent = flush(&mut self.client, &mut self.server)
                + flush(&mut self.server, &mut self.client);
            if sent == 0 {
                return carried;
            }
            carried += sent;
        }
        panic!("connections still exchanging after {ROUNDS_MAX} rounds");
    }
}

/// Sends everything `from` has to `to`; returns the number of datagrams. Receive errors are
/// ignored here: a failing side records them in its `local_error`, which the tests assert.
fn flush(from: &mut quiche::Connection, to: &mut quiche::Connection) -> usize {
    let mut buf = vec![0u8; 65_535];
    let mut sent = 0;
    loop {
        match from.send(&mut buf) {
            Ok((len, info)) => {
                sent += 1;
                let _ = to.recv(&mut buf[..len], quiche::RecvInfo { from: info.from, to: info.to });
            }
            Err(quiche::Error::Done) => return sent,
            Err(e) => panic!("send failed: {e:?}"),
        }
    }
}

/// Rejects every peer.
struct RejectAll;

impl PeerVerifier for RejectAll {
    fn verify(&self, _peer_public_key: &[u8; 32]) -> Result<(), PeerRejected> {
        Err(PeerRejected { reason: "test rejects everyone" })
    }
}

/// Accepts every peer and remembers the keys it was shown.
#[derive(Default)]
struct Recording {
    seen: Mutex<Vec<[u8; 32]>>,
}

impl PeerVerifier for Recording {
    fn verify(&self, peer_public_key: &[u8; 32]) -> Result<(), PeerRejected> {
        self.seen.lock().expect("not poisoned").push(*peer_public_key);
        Ok(())
    }
}

impl Recording {
    fn seen(self: &Arc<Self>) -> Vec<[u8; 32]> {
        self.seen.lock().expect("not poisoned").clone()
    }
}
