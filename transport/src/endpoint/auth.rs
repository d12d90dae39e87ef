//! The endpoint's side of authentication: binding a connection when its QUIC handshake
//! completes, recording every attempt's outcome exactly once, and refusing peers.
//!
//! Invariant: every connection records one authentication outcome — `ok` when its
//! HELLO/WELCOME proof verified, otherwise `fail` when it is refused, times out or ends first
//! (`auth_abandoned` in `finish`). `Conn::auth_recorded` enforces "once".

use std::time::{Duration, Instant};

use crate::auth::{AuthFailure, Binding, PeerRefusal};
use crate::metrics::Counters;
use crate::tls::peer_public_key;

use super::conn::{Conn, Role};
use super::event::DownReason;
use super::Endpoint;

/// Authentication log lines per shard per second at most; the rest are counted and summed
/// into the next line (a peer failing in a loop must not flood the log).
const AUTH_LOG_LINES_PER_S: u32 = 20;

/// Rate limit of authentication log lines.
#[derive(Debug)]
pub(super) struct LogLimiter {
    window_start: Option<Instant>,
    lines: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub(super) fn new() -> Self {
        Self { window_start: None, lines: 0, suppressed: 0 }
    }

    /// Whether a line may be logged now; `Some(n)` with the number suppressed since the
    /// last logged line.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        let fresh = self.window_start.is_none_or(|start| now - start >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.lines = 0;
        }
        if self.lines >= AUTH_LOG_LINES_PER_S {
            self.suppressed += 1;
            return None;
        }
        self.lines += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

fn role_index(role: Role) -> usize {
    match role {
        Role::Dialer => 0,
        Role::Acceptor => 1,
    }
}

impl Endpoint {
    /// What ties this connection's proofs to it: both first CIDs and both TLS keys. The peer's
    /// TLS key is read again from its certificate and re-checked with the node's verifier, so
    /// that a QUIC configuration that lost the TLS-level check (`verify_peer` called after the
    /// boring context was installed, stack-facts §2.2) still refuses the peer here.
    pub(super) fn bind_connection(&self, conn: &Conn) -> Result<Binding, AuthFailure> {
        let der = conn
            .q
            .peer_cert()
            .ok_or(AuthFailure::TlsUnverified("the peer presented no certificate"))?;
        let peer_tls_key = peer_public_key(der)
            .map_err(|_| AuthFailure::TlsUnverified("the peer certificate holds no Ed25519 key"))?;
        self.verifier
            .verify(&peer_tls_key)
            .map_err(|rejected| AuthFailure::TlsUnverified(rejected.reason))?;
        let peer_cid = <[u8; crate::cid::CID_LEN]>::try_from(conn.q.destination_id().as_ref())
            .map_err(|_| AuthFailure::TlsUnverified("the peer's connection ID is not 16 bytes"))?;
        Ok(match conn.role {
            Role::Dialer => Binding {
                dialer_cid: conn.initial_scid,
                acceptor_cid: peer_cid,
                dialer_tls_key: self.tls_public_key,
                acceptor_tls_key: peer_tls_key,
            },
            Role::Acceptor => Binding {
                dialer_cid: peer_cid,
                acceptor_cid: conn.initial_scid,
                dialer_tls_key: peer_tls_key,
                acceptor_tls_key: self.tls_public_key,
            },
        })
    }

    /// Records a verified proof.
    pub(super) fn auth_succeeded(&mut self, conn: &mut Conn, now: Instant) {
        self.record_auth(conn, None, now);
    }

    /// Refuses the peer: records and logs the failure, closes with its code.
    pub(super) fn auth_failed(&mut self, conn: &mut Conn, failure: &AuthFailure, now: Instant) {
        self.record_auth(conn, Some(failure.index()), now);
        self.log_failure(conn, failure, now);
        let reason = DownReason::AuthFailed { reason: failure.label(), by_peer: false };
        let code = failure.close_code().unwrap_or(super::event::close_code::PROTOCOL);
        self.close_conn(conn, code, reason);
    }

    /// Records the failure of a connection that ends without an outcome.
    pub(super) fn auth_abandoned(&mut self, conn: &mut Conn, now: Instant) {
        if conn.auth_recorded {
            return;
        }
        let refusal = conn
            .q
            .peer_error()
            .filter(|error| error.is_app)
            .and_then(|error| AuthFailure::from_peer_close(error.error_code));
        let index = match refusal {
            Some(refusal) => {
                self.log_refusal(conn, refusal, now);
                refusal.index
            }
            None if now >= conn.created_at + self.auth_deadline() => {
                AuthFailure::AuthStreamTimeout.index()
            }
            None => AuthFailure::ConnectionClosed.index(),
        };
        self.record_auth(conn, Some(index), now);
    }

    /// The one deadline of the exchange, from the connection's creation.
    pub(super) fn auth_deadline(&self) -> Duration {
        Duration::from_millis(self.settings.auth_handshake_timeout_ms)
    }

    /// Records the connection's one outcome: ok (`failure` `None`) or the failure's reason
    /// index. Later calls for the same connection change nothing, so that
    /// `sum(attempts{fail}) == sum(failures)` holds by construction.
    fn record_auth(&mut self, conn: &mut Conn, failure: Option<usize>, now: Instant) {
        if std::mem::replace(&mut conn.auth_recorded, true) {
            return;
        }
        if let Some(index) = failure {
            Counters::add(&self.metrics.auth.failures[index], 1);
        }
        let counter = match (conn.role, failure.is_some()) {
            (Role::Dialer, false) => &self.metrics.auth_attempts_outgoing_ok,
            (Role::Dialer, true) => &self.metrics.auth_attempts_outgoing_fail,
            (Role::Acceptor, false) => &self.metrics.auth_attempts_incoming_ok,
            (Role::Acceptor, true) => &self.metrics.auth_attempts_incoming_fail,
        };
        Counters::add(counter, 1);
        let duration_ms = u64::try_from((now - conn.created_at).as_millis()).unwrap_or(u64::MAX);
        let outcome = usize::from(failure.is_some());
        self.metrics.auth.record(role_index(conn.role), outcome, duration_ms);
    }

    fn log_failure(&mut self, conn: &Conn, failure: &AuthFailure, now: Instant) {
        let Some(suppressed) = self.auth_log.admit(now) else { return };
        let peer = conn.peer.as_ref().map_or_else(|| "?".to_owned(), ToString::to_string);
        let role = ["outgoing", "incoming"][role_index(conn.role)];
        if let AuthFailure::KeyMismatch { pinned, presented } = failure {
            // The line operators grep for (troubleshooting guide).
            log::warn!(
                "Key mismatch for node {peer} ({}) - existing key {pinned} differs from presented key {presented}; \
                 if the peer rotated its identity, delete the pin, otherwise treat this as a security event \
                 [{role}{}]",
                conn.peer_addr,
                suppressed_note(suppressed)
            );
        } else {
            log::warn!(
                "Authentication of node {peer} ({}) refused: {failure} [{role}{}]",
                conn.peer_addr,
                suppressed_note(suppressed)
            );
        }
    }

    fn log_refusal(&mut self, conn: &Conn, refusal: PeerRefusal, now: Instant) {
        let Some(suppressed) = self.auth_log.admit(now) else { return };
        let peer = conn.peer.as_ref().map_or_else(|| "?".to_owned(), ToString::to_string);
        log::warn!(
            "Authentication with node {peer} ({}) failed: {refusal} (see its log for details){}",
            conn.peer_addr,
            suppressed_note(suppressed)
        );
    }
}

fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!("; {suppressed} similar lines suppressed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_limiter_admits_a_burst_per_second_and_reports_the_rest() {
        let mut limiter = LogLimiter::new();
        let start = Instant::now();
        for _ in 0..AUTH_LOG_LINES_PER_S {
            assert_eq!(limiter.admit(start), Some(0));
        }
        assert_eq!(limiter.admit(start), None);
        assert_eq!(limiter.admit(start + Duration::from_millis(999)), None);
        assert_eq!(limiter.admit(start + Duration::from_secs(1)), Some(2));
    }
}
