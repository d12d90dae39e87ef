//! `SocketAddr` to and from the kernel's `sockaddr_in` / `sockaddr_in6` layouts.
//!
//! The standard library does this internally but does not expose it; `sendmsg`/`recvmsg` need it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Room for either address family. A union rather than `sockaddr_storage` so that building one is
/// safe (a struct literal) and the size is exactly what the kernel may write for UDP.
#[repr(C)]
#[derive(Clone, Copy)]
union Storage {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

/// A socket address in the kernel's layout, passed to system calls as `(pointer, length)`.
pub(super) struct RawAddr {
    storage: Storage,
    len: libc::socklen_t,
}

const V4_LEN: usize = size_of::<libc::sockaddr_in>();
const V6_LEN: usize = size_of::<libc::sockaddr_in6>();

impl RawAddr {
    pub(super) fn from_std(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => {
                // Start from the all-zero largest variant so every byte of the union is
                // initialised, whichever view is read later.
                let mut raw = Self::empty();
                raw.storage.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                    sin_zero: [0; 8],
                };
                raw.len = V4_LEN as libc::socklen_t;
                raw
            }
            SocketAddr::V6(a) => Self {
                storage: Storage {
                    v6: libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as libc::sa_family_t,
                        sin6_port: a.port().to_be(),
                        // Same convention as the standard library: passed through unchanged.
                        sin6_flowinfo: a.flowinfo(),
                        sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                        sin6_scope_id: a.scope_id(),
                    },
                },
                len: V6_LEN as libc::socklen_t,
            },
        }
    }

    /// An all-zero address with room for either family, for the kernel to fill in.
    pub(super) fn empty() -> Self {
        Self {
            storage: Storage {
                v6: libc::sockaddr_in6 {
                    sin6_family: 0,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                    sin6_scope_id: 0,
                },
            },
            len: V6_LEN as libc::socklen_t,
        }
    }

    pub(super) fn as_ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }

    /// The pointer and the length field for a system call that writes an address (`recvmsg`).
    pub(super) fn as_mut_parts(&mut self) -> (*mut libc::sockaddr, &mut libc::socklen_t) {
        ((&raw mut self.storage).cast(), &mut self.len)
    }

    pub(super) fn len(&self) -> libc::socklen_t {
        self.len
    }

    /// The address the kernel wrote, or `None` for a family other than IPv4/IPv6 or a length too
    /// short for its family (neither happens on a UDP/IP socket).
    pub(super) fn to_std(&self) -> Option<SocketAddr> {
        let len = self.len as usize;
        // SAFETY: every constructor initialises all bytes of the union (through its largest
        // variant) and both variants are plain integers with no invalid bit patterns, so reading
        // either view is defined. `sin_family` and `sin6_family` share offset 0.
        let family = i32::from(unsafe { self.storage.v4.sin_family });
        match family {
            libc::AF_INET if len >= V4_LEN => {
                // SAFETY: as above; the family says the kernel wrote this view.
                let a = unsafe { self.storage.v4 };
                let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 if len >= V6_LEN => {
                // SAFETY: as above; the family says the kernel wrote this view.
                let a = unsafe { self.storage.v6 };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_families() {
        let addrs: [SocketAddr; 4] = [
            "127.0.0.1:4433".parse().expect("literal"),
            "10.1.2.3:65535".parse().expect("literal"),
            "[::1]:4433".parse().expect("literal"),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().expect("literal"), 9, 7, 3)),
        ];
        for addr in addrs {
            assert_eq!(RawAddr::from_std(addr).to_std(), Some(addr));
        }
    }

    #[test]
    fn empty_is_not_an_address() {
        assert_eq!(RawAddr::empty().to_std(), None);
    }
}
