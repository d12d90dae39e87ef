//! Connection IDs that name their owning shard.
//!
//! Every connection ID this node issues is [`CID_LEN`] bytes; byte 0 is the index of the shard
//! that owns the connection and the remaining bytes are random. The kernel's reuseport
//! program (`sys::steer`) reads that byte from the destination connection ID of each datagram
//! and delivers the datagram to the socket of that shard, so replies to a connection a shard
//! dialled, and every later packet of a connection a shard accepted, land on the owner without
//! a cross-shard hop.
//!
//! The length is fixed because quiche needs it to parse short headers, which do not carry the
//! DCID length (`quiche::Header::from_slice(buf, CID_LEN)`).
//!
//! Privacy note: a plaintext shard byte lets an on-path observer link CIDs of one node's shard
//! (RFC 9000 §5.1 asks for unlinkable CIDs). Acceptable inside a cluster; QUIC-LB style
//! encryption of the byte is the upgrade path.

use shoal_protocols::Rng;

/// Length in bytes of every connection ID shoal issues (and of the DCID of its Initials).
pub const CID_LEN: usize = 16;

/// Most shards a node may run: the shard index must fit in one CID byte.
pub const SHARDS_MAX: usize = 256;

/// A fresh connection ID owned by `shard`.
pub fn new_cid(shard: usize, rng: &mut Rng) -> [u8; CID_LEN] {
    assert!(shard < SHARDS_MAX, "shard index {shard} does not fit the CID byte");
    let mut cid = [0u8; CID_LEN];
    let shard_byte = u8::try_from(shard).expect("checked against SHARDS_MAX above");
    cid[0] = shard_byte;
    for chunk in cid[1..].chunks_mut(8) {
        let random = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&random[..chunk.len()]);
    }
    cid
}

/// A stateless-reset token for a new CID (quiche requires one per issued CID).
pub fn new_reset_token(rng: &mut Rng) -> u128 {
    (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
}

/// The shard that owns a connection ID this node issued, given the node's shard count.
///
/// The `% shards` mirrors the kernel program, so a CID issued by a node with more shards still
/// maps to a valid shard (it is then a stranger's CID and the shard core drops it).
pub fn shard_of(cid: &[u8], shards: usize) -> Option<usize> {
    let first = *cid.first()?;
    if shards == 0 {
        return None;
    }
    Some(usize::from(first) % shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_names_its_shard_and_is_random_elsewhere() {
        let mut rng = Rng::from_seed(7);
        let a = new_cid(3, &mut rng);
        let b = new_cid(3, &mut rng);
        assert_eq!(a[0], 3);
        assert_eq!(shard_of(&a, 4), Some(3));
        assert_ne!(a[1..], b[1..], "two CIDs of one shard must differ");
    }

    #[test]
    fn shard_of_wraps_like_the_kernel_program() {
        assert_eq!(shard_of(&[5, 0], 4), Some(1));
        assert_eq!(shard_of(&[], 4), None);
        assert_eq!(shard_of(&[1], 0), None);
    }

    #[test]
    #[should_panic(expected = "does not fit")]
    fn shard_index_beyond_a_byte_is_a_bug() {
        let mut rng = Rng::from_seed(1);
        let _ = new_cid(256, &mut rng);
    }
}
