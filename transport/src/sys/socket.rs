//! The socket factory: one UDP socket per shard, all bound to the same address in one
//! SO_REUSEPORT group, with the steering program attached.
//!
//! shoal builds these sockets itself instead of using glommio's `UdpSocket::bind` because that
//! call always sets SO_REUSEPORT without saying so: a second process could then bind the same
//! port and silently receive part of the traffic. Here the port is first probed with a socket
//! that does *not* set SO_REUSEPORT, so a port held by anyone else is reported.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::addr::RawAddr;
use super::sockopt;
use super::steer::{steering_program, MAX_SHARDS};

/// Buffer sizes requested for every socket of the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    /// SO_RCVBUF to request, in bytes. The kernel caps it at `net.core.rmem_max` and then doubles
    /// it (the extra half is its bookkeeping); [`ShardSockets::rcvbuf_bytes`] reports the result.
    pub rcvbuf_bytes: usize,
    /// SO_SNDBUF to request, in bytes; capped at `net.core.wmem_max`, then doubled.
    pub sndbuf_bytes: usize,
}

/// The bound socket group. Socket `i` receives the datagrams steered to shard `i`.
#[derive(Debug)]
pub struct ShardSockets {
    /// Index `i` is shard `i`'s socket; all are non-blocking and close-on-exec.
    ///
    /// The kernel identifies a socket of the group by the order in which it joined. Closing one
    /// makes the kernel move the last socket into its slot, which changes the steering for the
    /// rest: keep all of them open for as long as any is used.
    pub sockets: Vec<UdpSocket>,
    /// The bound address; carries the port the kernel chose when port 0 was requested.
    pub local_addr: SocketAddr,
    /// Effective SO_RCVBUF in bytes as the kernel reports it (the smallest over the group).
    pub rcvbuf_bytes: usize,
    /// Effective SO_SNDBUF in bytes as the kernel reports it (the smallest over the group).
    pub sndbuf_bytes: usize,
    /// The kernel accepts UDP_SEGMENT: [`send_segments`](super::gso::send_segments) may batch.
    pub gso: bool,
    /// UDP_GRO is enabled on every socket: a receive may return several datagrams at once
    /// (always split them with [`segments`](super::gso::segments), whatever this says).
    pub gro: bool,
}

/// Why [`bind_shard_sockets`] failed. In every case no socket is left open: nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The shard count is 0 or above 256. Retrying with the same count fails again.
    #[error(
        "cannot steer to {shards} shards: the count must be 1..=256 (the shard index is one \
         connection-ID byte); configure fewer shards"
    )]
    InvalidShardCount {
        /// Requested shard count.
        shards: usize,
    },
    /// Another process (or another socket group of this one) holds the address. Retrying helps
    /// only once that holder has released it.
    #[error(
        "UDP {addr} is already in use by another process; find it with \
         `ss -uapn 'sport = :{port}'`, stop it or configure another port",
        port = .addr.port()
    )]
    AddrInUse {
        /// The address that could not be bound.
        addr: SocketAddr,
    },
    /// Binding failed for another reason: most often the IP is not assigned to a local
    /// interface (EADDRNOTAVAIL) or the port is privileged (EACCES). Retrying fails again until
    /// the configuration or the host changes.
    #[error(
        "cannot bind UDP {addr}: {source}; the IP must be assigned to a local interface (see \
         `ip addr`) and ports below 1024 need CAP_NET_BIND_SERVICE"
    )]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The kernel refused to create a socket, usually because the process is out of file
    /// descriptors. Retrying helps once descriptors are freed or the limit is raised.
    #[error(
        "cannot create a UDP socket for {addr}: {source}; if the process is out of file \
         descriptors, raise `ulimit -n` (systemd `LimitNOFILE=`)"
    )]
    Create {
        /// The address the socket was for.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// Setting (or reading back) a socket option failed. Retrying fails again: the kernel does
    /// not support the option as used.
    #[error("cannot set {option} on UDP {addr}: {source}; this kernel does not support it")]
    SetOption {
        /// The option, e.g. `"SO_RCVBUF"`.
        option: &'static str,
        /// The group's address.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The kernel refused the steering program. Retrying fails again: SO_ATTACH_REUSEPORT_CBPF
    /// needs Linux 4.5 or later.
    #[error(
        "cannot attach the connection-ID steering program to UDP {addr}: {source}; \
         SO_ATTACH_REUSEPORT_CBPF needs Linux 4.5 or later"
    )]
    AttachSteering {
        /// The group's address.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
}

/// Any valid segment size works for asking the kernel whether it knows UDP_SEGMENT.
const GSO_PROBE_SEGMENT_BYTES: libc::c_int = 1200;

/// Binds `shards` UDP sockets to `addr` (port 0: one port the kernel picks), socket `i` for
/// shard `i`, and attaches the program that steers datagrams to them by connection ID.
///
/// The kernel numbers a group's sockets in the order they join and the steering program
/// returns such a number, so the sockets are bound here one after the other in shard order; the
/// caller only has to keep all of them open (see [`ShardSockets::sockets`]).
pub fn bind_shard_sockets(
    addr: SocketAddr,
    shards: usize,
    opts: &SocketOptions,
) -> Result<ShardSockets, SocketError> {
    if !(1..=MAX_SHARDS).contains(&shards) {
        return Err(SocketError::InvalidShardCount { shards });
    }

    // The probe: a plain bind, without SO_REUSEPORT, fails with EADDRINUSE whoever holds the
    // port, with or without SO_REUSEPORT. With port 0 it also picks the group's port.
    let probe = UdpSocket::bind(addr).map_err(|e| bind_error(addr, e))?;
    let group_addr = probe.local_addr().map_err(|e| bind_error(addr, e))?;
    // Ask about GSO on the probe, which is about to be closed: UDP_SEGMENT set on a socket
    // applies to all its later sends, which the group's sockets must not inherit.
    let gso =
        sockopt::set_int(probe.as_fd(), libc::SOL_UDP, libc::UDP_SEGMENT, GSO_PROBE_SEGMENT_BYTES)
            .is_ok();
    drop(probe);

    // Race window: between closing the probe and binding the first group socket (microseconds)
    // another process may bind the port. Without SO_REUSEPORT it makes the group's bind fail with
    // AddrInUse, which is reported. With SO_REUSEPORT and the same user it joins the group
    // unnoticed and takes socket index 0, shifting the steering. Keeping the probe open instead
    // would block the group's own binds, so the window is accepted.
    let mut sockets = Vec::with_capacity(shards);
    for _ in 0..shards {
        sockets.push(group_socket(group_addr, opts)?);
    }

    // Set GRO on every socket even if one refuses, so the group behaves the same everywhere
    // whenever the kernel supports it.
    let gro = sockets.iter().fold(true, |all, socket| {
        let ok = sockopt::set_int(socket.as_fd(), libc::SOL_UDP, libc::UDP_GRO, 1).is_ok();
        all && ok
    });

    // Attached after all sockets joined: the program's result is an index into the group, and
    // an index beyond the group's size would fall back to hashing.
    // Invariant: 1 <= shards, checked on entry, so sockets[0] exists.
    sockopt::attach_reuseport_cbpf(sockets[0].as_fd(), &steering_program(shards))
        .map_err(|source| SocketError::AttachSteering { addr: group_addr, source })?;

    let local_addr = sockets[0].local_addr().map_err(|e| bind_error(group_addr, e))?;
    let rcvbuf_bytes = effective_bytes(&sockets, libc::SO_RCVBUF, "SO_RCVBUF", group_addr)?;
    let sndbuf_bytes = effective_bytes(&sockets, libc::SO_SNDBUF, "SO_SNDBUF", group_addr)?;
    Ok(ShardSockets { sockets, local_addr, rcvbuf_bytes, sndbuf_bytes, gso, gro })
}

/// One member of the group: SO_REUSEPORT and the buffer sizes set before bind.
fn group_socket(addr: SocketAddr, opts: &SocketOptions) -> Result<UdpSocket, SocketError> {
    let domain = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain system call with integer arguments; no memory is passed.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::IPPROTO_UDP,
        )
    };
    if fd < 0 {
        return Err(SocketError::Create { addr, source: io::Error::last_os_error() });
    }
    // SAFETY: `fd` was just returned by socket(2), is open and owned by nothing else; the
    // OwnedFd closes it on every error path below.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };

    let set =
        |level, name, option, value: libc::c_int| {
            sockopt::set_int(fd.as_fd(), level, name, value)
                .map_err(|source| SocketError::SetOption { option, addr, source })
        };
    set(libc::SOL_SOCKET, libc::SO_REUSEPORT, "SO_REUSEPORT", 1)?;
    // Larger requests are capped by the kernel anyway; saturate instead of failing.
    let clamp = |bytes: usize| libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set(libc::SOL_SOCKET, libc::SO_RCVBUF, "SO_RCVBUF", clamp(opts.rcvbuf_bytes))?;
    set(libc::SOL_SOCKET, libc::SO_SNDBUF, "SO_SNDBUF", clamp(opts.sndbuf_bytes))?;

    let raw = RawAddr::from_std(addr);
    // SAFETY: `raw` is a valid sockaddr of `raw.len()` bytes, live for the call; the kernel
    // only reads it. `fd` is open.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len()) };
    if rc != 0 {
        return Err(bind_error(addr, io::Error::last_os_error()));
    }
    Ok(UdpSocket::from(fd))
}

fn bind_error(addr: SocketAddr, source: io::Error) -> SocketError {
    if source.kind() == io::ErrorKind::AddrInUse {
        SocketError::AddrInUse { addr }
    } else {
        SocketError::Bind { addr, source }
    }
}

/// The smallest value of a buffer-size option over the group, as the kernel reports it.
fn effective_bytes(
    sockets: &[UdpSocket],
    name: libc::c_int,
    option: &'static str,
    addr: SocketAddr,
) -> Result<usize, SocketError> {
    let mut smallest = usize::MAX;
    for socket in sockets {
        let bytes = sockopt::get_int(socket.as_fd(), libc::SOL_SOCKET, name)
            .map_err(|source| SocketError::SetOption { option, addr, source })?;
        // A negative size would be a kernel bug; report it as zero rather than wrap.
        smallest = smallest.min(usize::try_from(bytes).unwrap_or(0));
    }
    Ok(smallest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::testutil;

    const OPTS: SocketOptions =
        SocketOptions { rcvbuf_bytes: 200 * 1024, sndbuf_bytes: 200 * 1024 };

    fn loopback(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn port_zero_binds_every_shard_to_one_port() {
        let group = bind_shard_sockets(loopback(0), 4, &OPTS).expect("bind on loopback");
        assert_ne!(group.local_addr.port(), 0);
        assert_eq!(group.sockets.len(), 4);
        let mut buf = [0u8; 16];
        for socket in &group.sockets {
            assert_eq!(socket.local_addr().expect("bound"), group.local_addr);
            // Non-blocking: an empty socket answers at once.
            let err = socket.recv(&mut buf).expect_err("nothing was sent");
            assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        }
    }

    #[test]
    fn ipv6_binds_too() {
        let group = bind_shard_sockets("[::1]:0".parse().expect("literal"), 2, &OPTS)
            .expect("bind on IPv6 loopback");
        assert!(group.local_addr.is_ipv6());
        assert_ne!(group.local_addr.port(), 0);
    }

    #[test]
    fn a_second_group_on_the_same_port_is_refused() {
        let first = bind_shard_sockets(loopback(0), 2, &OPTS).expect("bind on loopback");
        let addr = first.local_addr;
        let err = bind_shard_sockets(addr, 2, &OPTS).expect_err("port is held by the first group");
        assert!(matches!(err, SocketError::AddrInUse { addr: a } if a == addr), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&addr.to_string()), "{text}");
        assert!(text.contains(&format!("ss -uapn 'sport = :{}'", addr.port())), "{text}");
        // A plain bind, as another program would do it, is refused too: the group does not
        // share the port with sockets outside it.
        let err = UdpSocket::bind(addr).expect_err("port is held by the group");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_port_held_without_reuseport_is_refused() {
        let holder = UdpSocket::bind(loopback(0)).expect("bind on loopback");
        let addr = holder.local_addr().expect("bound");
        let err = bind_shard_sockets(addr, 1, &OPTS).expect_err("port is held");
        assert!(matches!(err, SocketError::AddrInUse { .. }), "{err:?}");
    }

    #[test]
    fn a_port_held_with_reuseport_is_refused() {
        // What glommio's UdpSocket::bind does: SO_REUSEPORT, same user. Joining would succeed
        // silently; the probe catches it.
        let holder = group_socket(loopback(0), &OPTS).expect("bind on loopback");
        let addr = holder.local_addr().expect("bound");
        let err = bind_shard_sockets(addr, 2, &OPTS).expect_err("port is held");
        assert!(matches!(err, SocketError::AddrInUse { .. }), "{err:?}");
    }

    #[test]
    fn an_address_not_on_this_host_is_a_bind_error() {
        // TEST-NET-3, assigned to no interface.
        let addr: SocketAddr = "203.0.113.7:4433".parse().expect("literal");
        let err = bind_shard_sockets(addr, 1, &OPTS).expect_err("not a local address");
        let SocketError::Bind { addr: a, ref source } = err else { panic!("{err:?}") };
        assert_eq!(a, addr);
        assert_eq!(source.kind(), io::ErrorKind::AddrNotAvailable);
        let text = err.to_string();
        assert!(text.contains("203.0.113.7:4433") && text.contains("ip addr"), "{text}");
    }

    #[test]
    fn shard_counts_outside_one_cid_byte_are_refused() {
        for shards in [0, MAX_SHARDS + 1, usize::MAX] {
            let err = bind_shard_sockets(loopback(0), shards, &OPTS).expect_err("out of range");
            assert!(matches!(err, SocketError::InvalidShardCount { shards: s } if s == shards));
        }
        let group = bind_shard_sockets(loopback(0), MAX_SHARDS, &OPTS).expect("256 shards");
        assert_eq!(group.sockets.len(), MAX_SHARDS);
    }

    #[test]
    fn buffer_sizes_are_reported_as_the_kernel_applied_them() {
        // Below any stock rmem_max/wmem_max: granted (and doubled).
        let group = bind_shard_sockets(loopback(0), 2, &OPTS).expect("bind on loopback");
        assert!(group.rcvbuf_bytes >= OPTS.rcvbuf_bytes, "{group:?}");
        assert!(group.sndbuf_bytes >= OPTS.sndbuf_bytes, "{group:?}");

        // Far above the caps: not granted, and the report says what was.
        let huge = SocketOptions { rcvbuf_bytes: 1 << 30, sndbuf_bytes: usize::MAX };
        let group = bind_shard_sockets(loopback(0), 2, &huge).expect("bind on loopback");
        for socket in &group.sockets {
            let get = |name| sockopt::get_int(socket.as_fd(), libc::SOL_SOCKET, name);
            let rcvbuf = usize::try_from(get(libc::SO_RCVBUF).expect("SO_RCVBUF")).expect("size");
            let sndbuf = usize::try_from(get(libc::SO_SNDBUF).expect("SO_SNDBUF")).expect("size");
            assert_eq!((group.rcvbuf_bytes, group.sndbuf_bytes), (rcvbuf, sndbuf));
        }
        println!(
            "requested 1 GiB: effective rcvbuf {} B, sndbuf {} B",
            group.rcvbuf_bytes, group.sndbuf_bytes
        );
    }

    #[test]
    fn this_kernel_offers_gso_and_gro() {
        // Linux 4.18 (GSO) and 5.0 (GRO) or later; shoal's measurements depend on both.
        let group = bind_shard_sockets(loopback(0), 1, &OPTS).expect("bind on loopback");
        assert!(group.gso && group.gro, "{group:?}");
    }

    #[test]
    fn datagrams_reach_the_group() {
        let group = bind_shard_sockets(loopback(0), 1, &OPTS).expect("bind on loopback");
        let sender = testutil::sender(group.local_addr);
        sender.send_to(b"ping", group.local_addr).expect("loopback send");
        let received = testutil::receive(&group.sockets, 1);
        let from = sender.local_addr().expect("bound");
        assert_eq!(received.per_socket[0], vec![(from, b"ping".to_vec())]);
    }
}
