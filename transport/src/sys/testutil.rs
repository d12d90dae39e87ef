//! Test helpers: receive everything that arrives on a set of non-blocking sockets, waiting with
//! poll(2) and a generous deadline instead of sleeping.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::gso::{recv_segments, segments, RECV_BUFFER_BYTES};

/// How long a test waits for datagrams that loopback delivers in microseconds.
const DEADLINE: Duration = Duration::from_secs(10);

/// What arrived, socket by socket.
#[derive(Debug, Default)]
pub(super) struct Received {
    /// For socket `i`: every datagram (after splitting coalesced batches) with its sender.
    pub(super) per_socket: Vec<Vec<(SocketAddr, Vec<u8>)>>,
    /// recvmsg calls that returned data.
    pub(super) recv_calls: usize,
    /// recvmsg calls that returned more than one datagram.
    pub(super) coalesced_calls: usize,
}

impl Received {
    pub(super) fn total(&self) -> usize {
        self.per_socket.iter().map(Vec::len).sum()
    }
}

/// Receives on all `sockets` until `expected` datagrams arrived or the deadline passed, then
/// drains once more so that any extra datagram shows up too.
pub(super) fn receive(sockets: &[UdpSocket], expected: usize) -> Received {
    let mut received =
        Received { per_socket: vec![Vec::new(); sockets.len()], ..Received::default() };
    let deadline = Instant::now() + DEADLINE;
    while received.total() < expected && Instant::now() < deadline {
        wait_readable(sockets, Duration::from_millis(100));
        drain(sockets, &mut received);
    }
    drain(sockets, &mut received);
    received
}

fn drain(sockets: &[UdpSocket], received: &mut Received) {
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    for (socket, out) in sockets.iter().zip(&mut received.per_socket) {
        loop {
            match recv_segments(socket, &mut buf) {
                Ok(meta) => {
                    received.recv_calls += 1;
                    if meta.len > meta.segment_size {
                        received.coalesced_calls += 1;
                    }
                    for datagram in segments(&buf, meta.len, meta.segment_size) {
                        out.push((meta.from, datagram.to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("receive failed: {e}"),
            }
        }
    }
}

/// Waits until one of `sockets` is readable or `timeout` passes.
pub(super) fn wait_readable(sockets: &[UdpSocket], timeout: Duration) {
    let mut fds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd { fd: s.as_raw_fd(), events: libc::POLLIN, revents: 0 })
        .collect();
    let timeout_ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fds` is a live array of `fds.len()` pollfd entries the kernel may update.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    // EINTR is fine: the caller loops until its deadline.
    if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
        panic!("poll failed: {}", io::Error::last_os_error());
    }
}

/// A blocking loopback socket to send test datagrams from, on the family of `like`.
pub(super) fn sender(like: SocketAddr) -> UdpSocket {
    let addr: SocketAddr =
        if like.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }.parse().expect("literal");
    UdpSocket::bind(addr).expect("bind a loopback sender")
}

/// A tiny deterministic PRNG (xorshift64*), so failures reproduce.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
