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

/// Length in bytes of every connection ID shoal issues (and of the DCID of its Initials).
pub const CID_LEN: usize = 16;

/// Most shards a node may run: the shard index must fit in one CID byte.
pub const SHARDS_MAX: usize = 256;

/// A fresh connection ID owned by `shard`: byte 0 names the shard, the other 15 bytes come
/// from the operating system's CSPRNG (through BoringSSL). Not a seeded generator: CIDs travel
/// in clear, and a linear generator's state can be recovered from a few outputs, which would let
/// an observer predict the next CIDs and reset tokens (and each side's first CID is the
/// freshness of its authentication proof, `auth::proof`).
pub fn new_cid(shard: usize) -> [u8; CID_LEN] {
    assert!(shard < SHARDS_MAX, "shard index {shard} does not fit the CID byte");
    let mut cid = [0u8; CID_LEN];
    cid[0] = u8::try_from(shard).expect("checked against SHARDS_MAX above");
    random_bytes(&mut cid[1..]);
    cid
}

/// A stateless-reset token for a new CID (quiche requires one per issued CID); RFC 9000
/// §10.3 requires it to be unguessable, hence the CSPRNG.
pub fn new_reset_token() -> u128 {
    let mut token = [0u8; 16];
    random_bytes(&mut token);
    u128::from_le_bytes(token)
}

fn random_bytes(out: &mut [u8]) {
    // BoringSSL's RAND_bytes aborts the process rather than return weak bytes; an error here
    // would mean the library is broken.
    boring::rand::rand_bytes(out).expect("BoringSSL CSPRNG");
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
        let a = new_cid(3);
        let b = new_cid(3);
        assert_eq!(a[0], 3);
        assert_eq!(shard_of(&a, 4), Some(3));
        assert_ne!(a[1..], b[1..], "two CIDs of one shard must differ");
        assert_ne!(new_reset_token(), new_reset_token());
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
        let _ = new_cid(256);
    }
}
