//! Handing a socket built by [`socket`](super::socket) to glommio, which is used only to wait for
//! readiness. glommio's `UdpSocket` can only adopt a raw descriptor (`FromRawFd`, an `unsafe`
//! trait method), so the ownership transfer lives here.

use std::os::fd::{FromRawFd, IntoRawFd};

/// Moves `socket` into a glommio `UdpSocket`, which owns and closes it from then on. The socket
/// keeps everything set on it (non-blocking mode, SO_REUSEPORT group membership and index, GRO,
/// buffer sizes).
///
/// # Panics
/// Outside a glommio executor: glommio registers the socket with the current thread's reactor.
pub fn into_glommio(socket: std::net::UdpSocket) -> glommio::net::UdpSocket {
    let fd = socket.into_raw_fd();
    // SAFETY: `into_raw_fd` gave up ownership of an open UDP socket descriptor; nothing else
    // refers to it, so glommio becomes its sole owner and closes it exactly once.
    unsafe { glommio::net::UdpSocket::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socket::{bind_shard_sockets, SocketOptions};

    #[test]
    fn glommio_adopts_a_group_socket() {
        let opts = SocketOptions { rcvbuf_bytes: 256 * 1024, sndbuf_bytes: 256 * 1024 };
        let group = bind_shard_sockets("127.0.0.1:0".parse().expect("literal"), 1, &opts)
            .expect("bind on loopback");
        let addr = group.local_addr;
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind on loopback");
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .expect("glommio executor");
        let (received, from) = ex.run(async move {
            let [socket] = <[_; 1]>::try_from(group.sockets).expect("one shard, one socket");
            let socket = into_glommio(socket);
            assert_eq!(socket.local_addr().expect("bound"), addr);
            peer.send_to(b"hello", addr).expect("loopback send");
            let mut buf = [0u8; 64];
            let (len, from) = socket.recv_from(&mut buf).await.expect("glommio receive");
            (buf[..len].to_vec(), from)
        });
        assert_eq!(received, b"hello");
        assert!(from.ip().is_loopback());
    }
}
