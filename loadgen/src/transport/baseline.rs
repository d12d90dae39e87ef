//! The in-memory ceiling (`--baseline`): two bare quiche connections, configured exactly as
//! shoal configures its own (`tls::quiche_config`, Ed25519 certificates both ways), shuttling
//! their datagrams to each other in one thread. No sockets, no shoal framing, queues,
//! events or shards: what quiche and BoringSSL alone cost on one core for the same work.
//!
//! - handshakes: full handshakes back to back (a new connection pair each time), counted when
//!   both sides report established.
//! - messages: `size`-byte `stream_send` calls on one stream, read on the other side;
//!   messages = bytes read / size.
//! - bulk: the same with large writes; Gbit/s = bits read / time.
//! - idle connections: `count` handshakes whose server side is kept (client side dropped);
//!   bytes per idle connection = this process's RSS growth / count, the same measure as the
//!   server's figure: what quiche and BoringSSL alone keep per established connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use shoal_protocols::Rng;
use shoal_transport::tls::{
    quiche_config, AcceptAnyCertificate, PeerVerifier, QuicSettings, TlsMaterial,
};

const CLIENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1);
const SERVER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 2);
/// Bound on the rounds of one handshake (it needs about three).
const HANDSHAKE_ROUNDS_MAX: usize = 100;
/// The one stream of the messages and bulk baselines (the client's first bidirectional one).
const STREAM: u64 = 0;

/// Both configs, as shoal builds them.
struct Baseline {
    client: quiche::Config,
    server: quiche::Config,
    rng: Rng,
    packet: Vec<u8>,
}

impl Baseline {
    fn new() -> anyhow::Result<Self> {
        let verifier: Arc<dyn PeerVerifier> = Arc::new(AcceptAnyCertificate);
        let side = |name: &str| -> anyhow::Result<quiche::Config> {
            let material = TlsMaterial::generate_ephemeral(name)
                .context("cannot generate baseline TLS material")?;
            quiche_config(&material, &QuicSettings::default(), Arc::clone(&verifier))
                .context("cannot build the baseline QUIC configuration")
        };
        Ok(Self {
            client: side("baseline-client")?,
            server: side("baseline-server")?,
            rng: Rng::from_seed(0xba5e),
            packet: vec![0; 65_536],
        })
    }

    fn cid(&mut self) -> [u8; 16] {
        let mut cid = [0u8; 16];
        cid[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        cid[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        cid
    }

    /// One full handshake; returns the established pair.
    fn handshake(&mut self) -> anyhow::Result<(quiche::Connection, quiche::Connection)> {
        let client_cid = self.cid();
        let server_cid = self.cid();
        let mut client = quiche::connect(
            None,
            &quiche::ConnectionId::from_ref(&client_cid),
            CLIENT,
            SERVER,
            &mut self.client,
        )
        .map_err(|e| anyhow!("quiche::connect: {e}"))?;
        let mut server: Option<quiche::Connection> = None;
        for _ in 0..HANDSHAKE_ROUNDS_MAX {
            while let Ok((len, _)) = client.send(&mut self.packet) {
                let server = match &mut server {
                    Some(server) => server,
                    None => server.insert(
                        quiche::accept(
                            &quiche::ConnectionId::from_ref(&server_cid),
                            None,
                            SERVER,
                            CLIENT,
                            &mut self.server,
                        )
                        .map_err(|e| anyhow!("quiche::accept: {e}"))?,
                    ),
                };
                let info = quiche::RecvInfo { from: CLIENT, to: SERVER };
                let _ = server.recv(&mut self.packet[..len], info);
            }
            let Some(accepted) = server.as_mut() else { continue };
            pump(accepted, &mut client, SERVER, CLIENT, &mut self.packet);
            if client.is_established() && accepted.is_established() {
                // The client's last flight (its Finished) already reached the server.
                let server = server.take().expect("checked just above");
                return Ok((client, server));
            }
        }
        bail!("the in-memory handshake did not complete in {HANDSHAKE_ROUNDS_MAX} rounds")
    }
}

/// Moves every packet `from` has to send into `to`; returns how many moved.
fn pump(
    from: &mut quiche::Connection,
    to: &mut quiche::Connection,
    from_addr: SocketAddr,
    to_addr: SocketAddr,
    packet: &mut [u8],
) -> usize {
    let mut moved = 0;
    while let Ok((len, _)) = from.send(packet) {
        moved += 1;
        let _ = to.recv(&mut packet[..len], quiche::RecvInfo { from: from_addr, to: to_addr });
    }
    moved
}

/// Full handshakes per second for `duration`.
pub(crate) fn handshakes_per_s(duration: Duration) -> anyhow::Result<f64> {
    let mut baseline = Baseline::new()?;
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < duration {
        let _pair = baseline.handshake()?;
        done += 1;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

/// RSS growth of this process per idle server-side connection, over `count` connections.
pub(crate) fn idle_bytes_per_connection(count: usize) -> anyhow::Result<f64> {
    let mut baseline = Baseline::new()?;
    // One handshake first, so that one-time allocations (BoringSSL's tables, the configs'
    // session state) are not counted per connection.
    drop(baseline.handshake()?);
    let mut held: Vec<quiche::Connection> = Vec::with_capacity(count);
    // The vector's pages become resident as connections are written into it: each
    // connection's inline struct is counted, as shoal's boxed one is.
    let before = crate::rss::rss_bytes().context("this platform does not report RSS")?;
    let mut packet = vec![0; baseline.packet.len()];
    for _ in 0..count {
        let (mut client, mut server) = baseline.handshake()?;
        // The last ACKs and HANDSHAKE_DONE, so the server side is as settled as shoal's idle
        // connections are when they are measured.
        for _ in 0..4 {
            pump(&mut server, &mut client, SERVER, CLIENT, &mut packet);
            pump(&mut client, &mut server, CLIENT, SERVER, &mut packet);
        }
        drop(client);
        held.push(server);
    }
    let after = crate::rss::rss_bytes().context("this platform does not report RSS")?;
    let idle = held.iter().filter(|c| c.is_established() && !c.is_closed()).count();
    if idle != count {
        bail!("only {idle} of {count} in-memory connections stayed established");
    }
    Ok(after.saturating_sub(before) as f64 / count as f64)
}

/// Payload bytes per second through one stream with `size`-byte writes, for `duration`.
pub(crate) fn stream_bytes_per_s(size: usize, duration: Duration) -> anyhow::Result<f64> {
    let mut baseline = Baseline::new()?;
    let (mut client, mut server) = baseline.handshake()?;
    let payload = vec![0xA5u8; size];
    let mut read_buf = vec![0u8; 1 << 20];
    let mut packet = std::mem::take(&mut baseline.packet);
    let mut offset = 0;
    let mut read = 0u64;
    let mut idle_rounds = 0;
    let start = Instant::now();
    while start.elapsed() < duration {
        // Write `size`-byte messages until flow control or the congestion window stops us.
        loop {
            match client.stream_send(STREAM, &payload[offset..], false) {
                Ok(written) => {
                    offset += written;
                    if offset < size {
                        break;
                    }
                    offset = 0;
                }
                Err(quiche::Error::Done) => break,
                Err(e) => bail!("baseline stream_send: {e}"),
            }
        }
        let mut moved = pump(&mut client, &mut server, CLIENT, SERVER, &mut packet);
        loop {
            match server.stream_recv(STREAM, &mut read_buf) {
                Ok((n, _)) => read += n as u64,
                Err(quiche::Error::Done) => break,
                Err(e) => bail!("baseline stream_recv: {e}"),
            }
        }
        moved += pump(&mut server, &mut client, SERVER, CLIENT, &mut packet);
        if moved == 0 {
            // Nothing to send either way: a timer (delayed ACK, PTO) must fire first.
            idle_rounds += 1;
            if idle_rounds > 1_000_000 {
                bail!("the in-memory baseline stalled");
            }
            for conn in [&mut client, &mut server] {
                if conn.timeout().is_some_and(|t| t.is_zero()) {
                    conn.on_timeout();
                }
            }
        } else {
            idle_rounds = 0;
        }
    }
    Ok(read as f64 / start.elapsed().as_secs_f64())
}
