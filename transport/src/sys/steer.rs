//! Which shard a datagram belongs to: the first byte of its destination connection ID, modulo
//! the shard count.
//!
//! The same decision exists twice and the two must agree:
//! - [`steering_program`] — a classic-BPF program attached to the SO_REUSEPORT group, so the
//!   kernel delivers each datagram straight to the socket of the shard that owns the connection;
//! - [`steer`] — a pure function, for the shard core (to spot datagrams whose DCID belongs to
//!   another shard, e.g. ones the kernel could not steer) and for benchmarks.
//!
//! Of the QUIC packet layouts (RFC 9000 §17.2, §17.3) only the first byte and the DCID offset
//! matter:
//! - long header: bit 0x80 of byte 0 set; 1 byte flags, 4 bytes version, 1 byte DCID length, so
//!   the DCID starts at byte 6;
//! - short header: bit 0x80 clear; 1 byte flags, then the DCID at byte 1.

/// Bit of the first byte that marks a long header.
pub const LONG_HEADER_BIT: u8 = 0x80;
/// Offset of the first DCID byte in a long-header packet:
/// flags (1) + version (4) + DCID length (1).
pub const LONG_HEADER_DCID_OFFSET: usize = 6;
/// Offset of the first DCID byte in a short-header packet: flags (1).
pub const SHORT_HEADER_DCID_OFFSET: usize = 1;
/// Most shards one group can steer to: the shard index must fit the one DCID byte it is read from.
pub const MAX_SHARDS: usize = 256;

/// The shard that owns `datagram`, as the kernel's steering program decides it.
///
/// `None` when the datagram is too short to carry the DCID byte (or `shards` is 0). The kernel
/// program then aborts on its out-of-bounds load, which makes classic BPF return 0, so the kernel
/// delivers such datagrams to shard 0's socket (checked by this module's tests). They are not
/// valid QUIC packets; shard 0 drops them.
#[inline]
pub fn steer(datagram: &[u8], shards: usize) -> Option<usize> {
    let first = *datagram.first()?;
    let offset = if first & LONG_HEADER_BIT != 0 {
        LONG_HEADER_DCID_OFFSET
    } else {
        SHORT_HEADER_DCID_OFFSET
    };
    usize::from(*datagram.get(offset)?).checked_rem(shards)
}

/// The classic-BPF program for `SO_ATTACH_REUSEPORT_CBPF` that makes the same decision as
/// [`steer`]. The kernel runs it with the packet data starting at the UDP payload and uses the
/// returned value as the index of the socket in the group, i.e. the order in which the sockets
/// were bound.
///
/// # Panics
/// If `shards` is 0 (the kernel rejects a modulo by zero) or above [`MAX_SHARDS`];
/// [`bind_shard_sockets`](super::socket::bind_shard_sockets) validates the count before calling.
pub fn steering_program(shards: usize) -> Vec<libc::sock_filter> {
    assert!((1..=MAX_SHARDS).contains(&shards), "shard count {shards} outside 1..={MAX_SHARDS}");
    // Invariant: checked just above, 256 fits a u32.
    let modulus = shards as u32;
    let load_byte = |offset: usize| stmt(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, offset as u32);
    vec![
        // 0: A = payload[0]
        load_byte(0),
        // 1: long header? fall through to 2, else jump over 2 and 3 to 4
        jump(libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K, u32::from(LONG_HEADER_BIT), 0, 2),
        // 2: A = payload[6], the first DCID byte of a long header
        load_byte(LONG_HEADER_DCID_OFFSET),
        // 3: skip the short-header load
        stmt(libc::BPF_JMP | libc::BPF_JA, 1),
        // 4: A = payload[1], the first DCID byte of a short header
        load_byte(SHORT_HEADER_DCID_OFFSET),
        // 5: A %= shards
        stmt(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, modulus),
        // 6: deliver to socket A
        stmt(libc::BPF_RET | libc::BPF_A, 0),
    ]
}

/// `BPF_STMT` (libc declares it `unsafe` although it only builds a struct).
fn stmt(code: u32, k: u32) -> libc::sock_filter {
    jump(code, k, 0, 0)
}

/// `BPF_JUMP`: `jt`/`jf` are relative offsets from the next instruction.
fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    // Invariant: every opcode used above is a sum of 8-bit libc constants.
    let code = u16::try_from(code).expect("BPF opcodes fit 16 bits");
    libc::sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::socket::{bind_shard_sockets, SocketOptions};
    use crate::sys::testutil::{self, Rng};
    use std::collections::HashMap;
    use std::net::SocketAddr;

    /// Runs a program made of the instructions [`steering_program`] uses, as the kernel does:
    /// `None` where an out-of-bounds load aborts it (the kernel then treats the result as 0).
    fn run(program: &[libc::sock_filter], packet: &[u8]) -> Option<u32> {
        let mut a = 0u32;
        let mut pc = 0;
        loop {
            let insn = program[pc];
            pc += 1;
            match u32::from(insn.code) {
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => {
                    a = u32::from(*packet.get(insn.k as usize)?);
                }
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => {
                    pc += usize::from(if a & insn.k != 0 { insn.jt } else { insn.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += insn.k as usize,
                c if c == libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K => a %= insn.k,
                c if c == libc::BPF_RET | libc::BPF_A => return Some(a),
                other => panic!("instruction {other:#x} not modelled"),
            }
        }
    }

    #[test]
    fn the_program_is_seven_instructions() {
        assert_eq!(steering_program(4).len(), 7);
    }

    #[test]
    #[should_panic(expected = "outside 1..=256")]
    fn the_program_refuses_zero_shards() {
        steering_program(0);
    }

    #[test]
    fn program_and_function_agree_on_every_first_and_dcid_byte() {
        for shards in [1, 2, 3, 4, 7, 16, 100, 255, 256] {
            let program = steering_program(shards);
            for first in 0..=255u8 {
                for dcid in 0..=255u8 {
                    let mut packet = [first, dcid, 0, 0, 0, 8, dcid, 0];
                    packet[1] = dcid;
                    let want = run(&program, &packet).map(|a| a as usize);
                    assert_eq!(steer(&packet, shards), want, "{packet:?} / {shards}");
                }
            }
            // Every length that cuts off the DCID byte of either shape.
            for len in 0..8 {
                for first in [0x40, 0xC0] {
                    let packet = &[first, 5, 0, 0, 0, 1, 9, 0][..len];
                    let want = run(&program, packet).map(|a| a as usize);
                    assert_eq!(steer(packet, shards), want, "{packet:?} / {shards}");
                }
            }
        }
    }

    #[test]
    fn steer_reads_the_dcid_byte_of_each_header_shape() {
        let long = [0xC3, 0, 0, 0, 1, 8, 0x2A, 0xFF];
        let short = [0x41, 0x2B, 0xFF];
        assert_eq!(steer(&long, 256), Some(0x2A));
        assert_eq!(steer(&short, 256), Some(0x2B));
        assert_eq!(steer(&long, 4), Some(0x2A % 4));
        assert_eq!(steer(&long[..6], 4), None);
        assert_eq!(steer(&short[..1], 4), None);
        assert_eq!(steer(&[], 4), None);
        assert_eq!(steer(&long, 0), None);
    }

    /// A random long- or short-header datagram whose tail carries `tag`, 8 to 100 bytes.
    fn datagram(rng: &mut Rng, tag: u32) -> Vec<u8> {
        let long = rng.below(2) == 0;
        let first = if long { 0x80 | rng.byte() } else { 0x7F & rng.byte() };
        let header_len = if long { LONG_HEADER_DCID_OFFSET } else { SHORT_HEADER_DCID_OFFSET };
        let mut d = vec![first];
        d.extend((1..header_len).map(|_| rng.byte()));
        d.extend((0..rng.below(90)).map(|_| rng.byte()));
        d.extend(tag.to_be_bytes());
        d
    }

    fn tag_of(datagram: &[u8]) -> u32 {
        let tail = &datagram[datagram.len() - 4..];
        u32::from_be_bytes(tail.try_into().expect("four bytes"))
    }

    /// Sends `count` random datagrams from several source ports to a group of `shards` sockets
    /// on `addr` and checks that each arrives once, on the socket [`steer`] predicts.
    fn kernel_agrees(addr: &str, shards: usize, count: u32) {
        let opts = SocketOptions { rcvbuf_bytes: 1 << 20, sndbuf_bytes: 1 << 20 };
        let addr: SocketAddr = addr.parse().expect("literal");
        let group = bind_shard_sockets(addr, shards, &opts).expect("bind on loopback");
        let senders: Vec<_> = (0..5).map(|_| testutil::sender(group.local_addr)).collect();
        let mut rng = Rng::new(0x5EED ^ shards as u64);
        let mut expected = HashMap::new();
        for tag in 0..count {
            let d = datagram(&mut rng, tag);
            let shard = steer(&d, shards).expect("long enough to steer");
            senders[rng.below(senders.len())].send_to(&d, group.local_addr).expect("send");
            expected.insert(tag, (shard, d));
        }
        let received = testutil::receive(&group.sockets, expected.len());
        assert_eq!(received.total(), expected.len(), "lost or extra datagrams");
        let mut per_shard = vec![0; shards];
        for (socket, datagrams) in received.per_socket.iter().enumerate() {
            for (_, d) in datagrams {
                let (shard, sent) = expected.remove(&tag_of(d)).expect("each tag arrives once");
                assert_eq!((socket, d), (shard, &sent), "datagram on the wrong socket");
                per_shard[socket] += 1;
            }
        }
        // The random first bytes spread the traffic: every shard was exercised.
        assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    }

    #[test]
    fn the_kernel_steers_like_steer_ipv4() {
        kernel_agrees("127.0.0.1:0", 4, 2000);
        kernel_agrees("127.0.0.1:0", 3, 500);
    }

    #[test]
    fn the_kernel_steers_like_steer_ipv6() {
        kernel_agrees("[::1]:0", 2, 500);
    }

    #[test]
    fn the_kernel_sends_datagrams_too_short_to_steer_to_shard_zero() {
        let opts = SocketOptions { rcvbuf_bytes: 1 << 20, sndbuf_bytes: 1 << 20 };
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("literal");
        let group = bind_shard_sockets(addr, 4, &opts).expect("bind on loopback");
        let sender = testutil::sender(group.local_addr);
        let short: [&[u8]; 4] = [&[], &[0x43], &[0xC0, 0, 0, 0, 1, 8], &[0xC0, 0, 0, 0, 1]];
        for d in short {
            assert_eq!(steer(d, 4), None);
            sender.send_to(d, group.local_addr).expect("send");
        }
        // A steerable datagram to every other socket after them, from the same sender:
        // once those arrived, a misrouted short one would have too.
        for shard in 1..4u8 {
            sender.send_to(&[0x40, shard], group.local_addr).expect("send");
        }
        let received = testutil::receive(&group.sockets, short.len() + 3);
        let on_zero: Vec<_> = received.per_socket[0].iter().map(|(_, d)| d.as_slice()).collect();
        assert_eq!(on_zero, short);
        for shard in 1..4u8 {
            let got: Vec<_> =
                received.per_socket[usize::from(shard)].iter().map(|(_, d)| d.clone()).collect();
            assert_eq!(got, [vec![0x40, shard]]);
        }
    }
}
