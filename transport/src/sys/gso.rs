//! Batched datagram I/O: one `sendmsg` with UDP_SEGMENT sends many equal-size datagrams, one
//! `recvmsg` with UDP_GRO returns many coalesced ones (measured ~14x faster than one system call
//! per datagram). glommio's sockets cannot pass ancillary data, so these calls are made here,
//! non-blocking (MSG_DONTWAIT); glommio is only used to wait for readiness.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use super::addr::RawAddr;
use super::cmsg::CmsgBuf;

/// The kernel refuses a UDP_SEGMENT send of more than 64 segments (`UDP_MAX_SEGMENTS`, Linux
/// 4.18+), so [`send_segments`] sends at most this many per call.
pub const MAX_SEGMENTS_PER_SEND: usize = 64;

/// Largest UDP payload one send may carry: 65,535 (IPv4 total length) − 20 (IPv4 header) − 8
/// (UDP header). A GSO send counts all its segments against it, so with 1,200-byte segments one
/// call carries at most 54. Also the largest segment size accepted.
pub const MAX_SEND_BYTES: usize = 65_507;

/// Receive buffer size that never truncates: a UDP_GRO receive returns up to 64 KiB at once.
pub const RECV_BUFFER_BYTES: usize = 65_536;

/// One received (possibly coalesced) datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes written to the buffer.
    pub len: usize,
    /// Sender. All coalesced datagrams come from the same sender.
    pub from: SocketAddr,
    /// Size of each datagram in the buffer (the last may be shorter); equals `len` when the
    /// kernel did not coalesce. Split with [`segments`].
    pub segment_size: usize,
}

/// Why [`recv_segments`] consumed a datagram but could not return it. Carried inside an
/// [`io::Error`] of kind [`io::ErrorKind::InvalidData`]; find it with [`recv_error`]. The datagram
/// is gone either way; the socket is fine and the next receive is unaffected.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    /// The datagram (or coalesced batch) was larger than the buffer and the kernel dropped the
    /// rest. Retrying cannot recover it; use a buffer of [`RECV_BUFFER_BYTES`].
    #[error(
        "datagram from {from} was larger than the {buf_bytes}-byte receive buffer and was \
         truncated; receive into {RECV_BUFFER_BYTES} bytes"
    )]
    Truncated {
        /// Sender.
        from: SocketAddr,
        /// Size of the buffer that was too small, in bytes.
        buf_bytes: usize,
    },
    /// The ancillary data did not fit, so the GRO segment size may be lost and the bytes cannot
    /// be split into datagrams safely; they were discarded. Retrying cannot recover them. Means
    /// another control message was enabled on the socket.
    #[error(
        "ancillary data of a {len}-byte datagram from {from} was truncated; the GRO segment size \
         is unknown, so it was discarded"
    )]
    ControlTruncated {
        /// Sender.
        from: SocketAddr,
        /// Bytes received.
        len: usize,
    },
}

/// The [`RecvError`] inside an error returned by [`recv_segments`], if that is what it is, so the
/// caller can count it and carry on.
pub fn recv_error(err: &io::Error) -> Option<&RecvError> {
    err.get_ref()?.downcast_ref::<RecvError>()
}

/// Sends `buf` to `to` as datagrams of `segment_size` bytes (the last may be shorter).
///
/// With `gso` and more than one segment this is one `sendmsg` carrying UDP_SEGMENT; otherwise one
/// `sendto` per segment. At most [`MAX_SEGMENTS_PER_SEND`] segments and [`MAX_SEND_BYTES`] bytes
/// go per call: the result is the number of bytes handed to the kernel (always whole segments),
/// and the caller sends the rest with another call, like `write(2)`.
///
/// Errors: `WouldBlock` when the socket buffer is full and nothing was sent — wait for
/// writability and retry. An error after some segments went out is not reported; the call
/// returns what was sent, and a lasting error shows on the next call. `InvalidInput` when
/// `segment_size` is 0 or above [`MAX_SEND_BYTES`]. A GSO send fails with `EINVAL` when a
/// segment plus the IP and UDP headers exceeds the device MTU, and with `EIO` on a device that
/// cannot checksum it; the caller should then stop using GSO. An empty `buf` sends nothing and
/// returns 0.
pub fn send_segments(
    sock: &impl AsRawFd,
    buf: &[u8],
    segment_size: usize,
    to: SocketAddr,
    gso: bool,
) -> io::Result<usize> {
    if segment_size == 0 || segment_size > MAX_SEND_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("segment size {segment_size} outside 1..={MAX_SEND_BYTES}"),
        ));
    }
    let segments_max = MAX_SEGMENTS_PER_SEND.min(MAX_SEND_BYTES / segment_size);
    let batch = &buf[..buf.len().min(segments_max * segment_size)];
    let to = RawAddr::from_std(to);
    if gso && batch.len() > segment_size {
        // Invariant: segment_size <= MAX_SEND_BYTES < 65,536, checked on entry.
        send_gso(sock.as_raw_fd(), batch, segment_size as u16, &to)
    } else {
        send_each(sock.as_raw_fd(), batch, segment_size, &to)
    }
}

fn send_gso(fd: libc::c_int, batch: &[u8], segment_bytes: u16, to: &RawAddr) -> io::Result<usize> {
    let mut control = CmsgBuf::new();
    let controllen = control.write_segment_size(segment_bytes);
    let mut iov = libc::iovec { iov_base: batch.as_ptr().cast_mut().cast(), iov_len: batch.len() };
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths); private padding fields on
    // some libcs rule out a struct literal.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = to.as_ptr().cast_mut().cast();
    msg.msg_namelen = to.len();
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr();
    msg.msg_controllen = controllen as _;
    loop {
        // SAFETY: every pointer in `msg` refers to a live local (`to`, `iov`, `control`) or to
        // `batch`, all outliving the call, with the lengths set next to them; sendmsg only reads
        // through them (the `*mut` casts satisfy the C declarations, nothing is written).
        let sent = unsafe { libc::sendmsg(fd, &raw const msg, libc::MSG_DONTWAIT) };
        match result(sent) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn send_each(
    fd: libc::c_int,
    batch: &[u8],
    segment_size: usize,
    to: &RawAddr,
) -> io::Result<usize> {
    let mut sent_bytes = 0;
    for segment in batch.chunks(segment_size) {
        let sent = loop {
            // SAFETY: `segment` and `to` are live for the call with their exact lengths; sendto
            // only reads them.
            let sent = unsafe {
                libc::sendto(
                    fd,
                    segment.as_ptr().cast(),
                    segment.len(),
                    libc::MSG_DONTWAIT,
                    to.as_ptr(),
                    to.len(),
                )
            };
            match result(sent) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match sent {
            Ok(n) => sent_bytes += n,
            Err(e) if sent_bytes == 0 => return Err(e),
            // Progress was made: report it; a lasting error shows on the next call.
            Err(_) => break,
        }
    }
    Ok(sent_bytes)
}

/// Receives one datagram, or one batch the kernel coalesced with UDP_GRO, into `buf`.
///
/// `WouldBlock` when nothing is queued. Use a buffer of [`RECV_BUFFER_BYTES`]: a smaller one can
/// truncate a coalesced batch, reported as an `InvalidData` error carrying
/// [`RecvError::Truncated`] (see [`recv_error`]).
pub fn recv_segments(sock: &impl AsRawFd, buf: &mut [u8]) -> io::Result<RecvMeta> {
    let fd = sock.as_raw_fd();
    let mut from = RawAddr::empty();
    let mut control = CmsgBuf::new();
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let (name, namelen) = from.as_mut_parts();
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = name.cast();
    msg.msg_namelen = *namelen;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr();
    msg.msg_controllen = CmsgBuf::capacity() as _;
    let len = loop {
        // SAFETY: every pointer in `msg` refers to a live, exclusively borrowed buffer (`from`,
        // `buf` through `iov`, `control`) of the length set next to it; the kernel writes at most
        // those lengths and updates the length fields of `msg`.
        let received = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT) };
        match result(received) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    *namelen = msg.msg_namelen;
    let from = from.to_std().ok_or_else(|| {
        io::Error::new(io::ErrorKind::Unsupported, "datagram from a non-IP address family")
    })?;
    if msg.msg_flags & libc::MSG_TRUNC != 0 {
        let err = RecvError::Truncated { from, buf_bytes: buf.len() };
        return Err(io::Error::new(io::ErrorKind::InvalidData, err));
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        let err = RecvError::ControlTruncated { from, len };
        return Err(io::Error::new(io::ErrorKind::InvalidData, err));
    }
    let segment_size = control
        .gro_segment_size(msg.msg_controllen as usize)
        .filter(|&size| size > 0)
        .unwrap_or(len);
    Ok(RecvMeta { len, from, segment_size })
}

/// A `ssize_t` system-call result as bytes or the thread's last OS error.
fn result(rc: isize) -> io::Result<usize> {
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// The datagrams in the first `len` bytes of `buf`, `segment_size` bytes each (the last may be
/// shorter), as [`recv_segments`] described them.
///
/// An empty datagram (`len` 0) yields one empty slice, so datagram counts stay exact. A
/// `segment_size` of 0 yields everything as one datagram and a `len` beyond `buf` is cut to
/// `buf.len()`: malformed input never panics.
pub fn segments(buf: &[u8], len: usize, segment_size: usize) -> Segments<'_> {
    let rest = &buf[..len.min(buf.len())];
    let segment_size = if segment_size == 0 { rest.len().max(1) } else { segment_size };
    Segments { rest, segment_size, empty_pending: rest.is_empty() }
}

/// Iterator returned by [`segments`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    rest: &'a [u8],
    segment_size: usize,
    /// An empty datagram still counts as one.
    empty_pending: bool,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.empty_pending {
            self.empty_pending = false;
            return Some(&[]);
        }
        if self.rest.is_empty() {
            return None;
        }
        let (segment, rest) = self.rest.split_at(self.segment_size.min(self.rest.len()));
        self.rest = rest;
        Some(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socket::{bind_shard_sockets, ShardSockets, SocketOptions};
    use crate::sys::testutil;

    const SEGMENT_BYTES: usize = 1200;

    fn group(addr: &str) -> ShardSockets {
        let opts = SocketOptions { rcvbuf_bytes: 1 << 20, sndbuf_bytes: 1 << 20 };
        bind_shard_sockets(addr.parse().expect("literal"), 1, &opts).expect("bind on loopback")
    }

    /// `count` distinct datagrams of `SEGMENT_BYTES`, the last one `last_len` bytes.
    fn datagrams(count: usize, last_len: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                let len = if i + 1 == count { last_len } else { SEGMENT_BYTES };
                (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
            })
            .collect()
    }

    /// Sends `expected` as one buffer and returns what arrived, as datagrams.
    fn round_trip(addr: &str, expected: &[Vec<u8>], gso: bool) -> testutil::Received {
        let (tx, rx) = (group(addr), group(addr));
        let buf = expected.concat();
        let sent = send_segments(&tx.sockets[0], &buf, SEGMENT_BYTES, rx.local_addr, gso)
            .expect("loopback send");
        assert_eq!(sent, buf.len());
        let received = testutil::receive(&rx.sockets, expected.len());
        let got: Vec<_> = received.per_socket[0].iter().map(|(from, d)| (*from, d)).collect();
        let want: Vec<_> = expected.iter().map(|d| (tx.local_addr, d)).collect();
        assert_eq!(got, want, "datagrams differ (gso {gso})");
        received
    }

    #[test]
    fn gso_send_arrives_as_the_same_datagrams() {
        let expected = datagrams(10, SEGMENT_BYTES);
        let received = round_trip("127.0.0.1:0", &expected, true);
        // Either coalesced by GRO (one receive) or not; the split above is exact both ways.
        println!("GSO 10 x 1200 B: {} receives", received.recv_calls);
    }

    #[test]
    fn plain_send_arrives_as_the_same_datagrams() {
        let expected = datagrams(10, SEGMENT_BYTES);
        let received = round_trip("127.0.0.1:0", &expected, false);
        assert_eq!(received.recv_calls, 10, "separate sends are not coalesced on loopback");
    }

    #[test]
    fn a_short_last_segment_survives_both_paths() {
        let expected = datagrams(7, 333);
        round_trip("127.0.0.1:0", &expected, true);
        round_trip("127.0.0.1:0", &expected, false);
    }

    #[test]
    fn ipv6_gso_round_trips() {
        round_trip("[::1]:0", &datagrams(5, 100), true);
    }

    #[test]
    fn one_call_sends_at_most_what_one_gso_send_can_carry() {
        for gso in [true, false] {
            let (tx, rx) = (group("127.0.0.1:0"), group("127.0.0.1:0"));
            let buf = datagrams(100, SEGMENT_BYTES).concat();
            let sent = send_segments(&tx.sockets[0], &buf, SEGMENT_BYTES, rx.local_addr, gso)
                .expect("loopback send");
            // 65,507 / 1,200 = 54 segments: the byte limit binds before the 64-segment one.
            assert_eq!(sent, 54 * SEGMENT_BYTES, "gso {gso}");
            let received = testutil::receive(&rx.sockets, 54);
            assert_eq!(received.total(), 54, "gso {gso}");
        }
    }

    #[test]
    fn the_segment_cap_binds_for_small_segments() {
        let (tx, rx) = (group("127.0.0.1:0"), group("127.0.0.1:0"));
        let buf = vec![7u8; 100 * 100];
        let sent = send_segments(&tx.sockets[0], &buf, 100, rx.local_addr, true).expect("send");
        assert_eq!(sent, MAX_SEGMENTS_PER_SEND * 100);
        assert_eq!(testutil::receive(&rx.sockets, 64).total(), MAX_SEGMENTS_PER_SEND);
    }

    #[test]
    fn invalid_segment_sizes_and_empty_buffers() {
        let tx = group("127.0.0.1:0");
        for size in [0, MAX_SEND_BYTES + 1] {
            let err = send_segments(&tx.sockets[0], b"x", size, tx.local_addr, true)
                .expect_err("invalid segment size");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(send_segments(&tx.sockets[0], b"", 1200, tx.local_addr, true).expect("ok"), 0);
    }

    #[test]
    fn an_empty_socket_would_block() {
        let rx = group("127.0.0.1:0");
        let err = recv_segments(&rx.sockets[0], &mut [0u8; 64]).expect_err("nothing sent");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn truncation_is_reported_and_the_socket_stays_usable() {
        let rx = group("127.0.0.1:0");
        let tx = testutil::sender(rx.local_addr);
        tx.send_to(&[1u8; 2000], rx.local_addr).expect("loopback send");
        tx.send_to(b"next", rx.local_addr).expect("loopback send");
        let mut small = [0u8; 1000];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let err = loop {
            match recv_segments(&rx.sockets[0], &mut small) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(std::time::Instant::now() < deadline, "nothing arrived");
                    testutil::wait_readable(&rx.sockets, std::time::Duration::from_millis(100));
                }
                other => break other.expect_err("2,000 bytes do not fit 1,000"),
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            matches!(recv_error(&err), Some(RecvError::Truncated { buf_bytes: 1000, .. })),
            "{err:?}"
        );
        let received = testutil::receive(&rx.sockets, 1);
        assert_eq!(received.per_socket[0].len(), 1);
        assert_eq!(received.per_socket[0][0].1, b"next");
        assert!(recv_error(&io::Error::from(io::ErrorKind::WouldBlock)).is_none());
    }

    #[test]
    fn segments_split_exactly() {
        let buf: Vec<u8> = (0..10).collect();
        let split = |len, size| segments(&buf, len, size).collect::<Vec<_>>();
        assert_eq!(split(10, 4), [&buf[0..4], &buf[4..8], &buf[8..10]]);
        assert_eq!(split(8, 4), [&buf[0..4], &buf[4..8]]);
        assert_eq!(split(3, 10), [&buf[0..3]]);
        assert_eq!(split(10, 10), [&buf[..]]);
        // An empty datagram is one datagram.
        assert_eq!(split(0, 0), [&[] as &[u8]]);
        assert_eq!(split(0, 1200), [&[] as &[u8]]);
        // Malformed input: no panic.
        assert_eq!(split(10, 0), [&buf[..]]);
        assert_eq!(split(99, 6), [&buf[0..6], &buf[6..10]]);
    }
}
