//! Ancillary data: the UDP_SEGMENT control message a GSO send carries, and the UDP_GRO one a
//! coalesced receive returns. Only libc's CMSG_* macros know the layout on every libc, so both
//! directions go through them.

use std::mem;
use std::ptr;

/// Room for the control messages shoal expects (one UDP_GRO `int`, 24 bytes on 64-bit) with
/// headroom, so an unexpected extra message shows up as MSG_CTRUNC rather than corrupting state.
const CMSG_BUF_BYTES: usize = 128;

/// A control-message buffer aligned for `cmsghdr` (whose alignment is that of `size_t`).
#[repr(C, align(8))]
pub(super) struct CmsgBuf {
    bytes: [u8; CMSG_BUF_BYTES],
}

const _: () = assert!(align_of::<libc::cmsghdr>() <= 8);

impl CmsgBuf {
    pub(super) fn new() -> Self {
        Self { bytes: [0; CMSG_BUF_BYTES] }
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.bytes.as_mut_ptr().cast()
    }

    pub(super) const fn capacity() -> usize {
        CMSG_BUF_BYTES
    }

    /// Writes one SOL_UDP / UDP_SEGMENT message carrying `segment_bytes` at the start of the
    /// buffer and returns its length (`CMSG_SPACE(2)`), the `msg_controllen` to send with.
    pub(super) fn write_segment_size(&mut self, segment_bytes: u16) -> usize {
        self.write_one(libc::SOL_UDP, libc::UDP_SEGMENT, &segment_bytes.to_ne_bytes())
    }

    /// Replaces the buffer's content with one control message and returns `CMSG_SPACE(data)`.
    fn write_one(&mut self, level: libc::c_int, kind: libc::c_int, data: &[u8]) -> usize {
        // Invariant: callers pass a few bytes (an int at most), far below u32::MAX.
        let data_len = data.len() as libc::c_uint;
        // SAFETY: pure arithmetic (libc declares the macros `unsafe`).
        let (space, len) = unsafe { (libc::CMSG_SPACE(data_len), libc::CMSG_LEN(data_len)) };
        let space = space as usize;
        assert!(space <= CMSG_BUF_BYTES, "control message of {space} bytes does not fit");
        self.bytes = [0; CMSG_BUF_BYTES];
        let msg = msghdr(self.bytes.as_mut_ptr().cast(), space);
        // SAFETY: `msg` points at this buffer, aligned for cmsghdr and at least `space` bytes
        // long, room for one header plus `data`; CMSG_FIRSTHDR is therefore non-null, and the
        // header and the data written through it stay inside `self.bytes`. The data is copied
        // bytewise, so its alignment does not matter.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            (*cmsg).cmsg_level = level;
            (*cmsg).cmsg_type = kind;
            (*cmsg).cmsg_len = len as _;
            ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(cmsg), data.len());
        }
        space
    }

    /// The segment size of a UDP_GRO message among the first `controllen` bytes the kernel wrote,
    /// if there is one.
    pub(super) fn gro_segment_size(&self, controllen: usize) -> Option<usize> {
        let controllen = controllen.min(CMSG_BUF_BYTES);
        // Only read through: the pointer may come from a shared borrow.
        let msg = msghdr(self.bytes.as_ptr().cast_mut().cast(), controllen);
        let mut found = None;
        let base = self.bytes.as_ptr() as usize;
        // SAFETY: `msg` describes this buffer with a length clamped to its size; the CMSG_*
        // macros only return headers that lie within `msg_controllen`. The data is read only
        // after checking that the message's own `cmsg_len` covers an int and ends within
        // `controllen`, and it is read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            while !cmsg.is_null() {
                let cmsg_len = (*cmsg).cmsg_len as usize;
                let within = cmsg as usize - base + cmsg_len <= controllen;
                let data_len = cmsg_len.saturating_sub(libc::CMSG_LEN(0) as usize);
                if (*cmsg).cmsg_level == libc::SOL_UDP
                    && (*cmsg).cmsg_type == libc::UDP_GRO
                    && within
                    && data_len >= size_of::<libc::c_int>()
                {
                    let size = ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                    found = usize::try_from(size).ok();
                }
                cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
            }
        }
        found
    }
}

/// A header that only describes a control buffer, for the CMSG_* macros to walk: they read
/// `msg_control` and `msg_controllen` and nothing else.
fn msghdr(control: *mut libc::c_void, controllen: usize) -> libc::msghdr {
    // SAFETY: msghdr is plain integers and pointers, for which all-zero is a valid value (null
    // pointers, zero lengths); its private padding fields on some libcs rule out a struct literal.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_control = control;
    msg.msg_controllen = controllen as _;
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_message_has_the_kernel_layout() {
        let mut buf = CmsgBuf::new();
        let space = buf.write_segment_size(1200);
        // SAFETY: pure arithmetic.
        assert_eq!(space, unsafe { libc::CMSG_SPACE(2) } as usize);
        let header = size_of::<libc::cmsghdr>();
        assert_eq!(buf.bytes[header..header + 2], 1200u16.to_ne_bytes());
        // The receive side looks for UDP_GRO, not UDP_SEGMENT.
        assert_eq!(buf.gro_segment_size(space), None);
    }

    #[test]
    fn gro_segment_size_round_trips() {
        let mut buf = CmsgBuf::new();
        let space = buf.write_one(libc::SOL_UDP, libc::UDP_GRO, &1200i32.to_ne_bytes());
        assert_eq!(buf.gro_segment_size(space), Some(1200));
        // A length that cuts the message short hides it.
        assert_eq!(buf.gro_segment_size(space - 8), None);
        // Another level with the same type number is not GRO.
        let space = buf.write_one(libc::SOL_SOCKET, libc::UDP_GRO, &1200i32.to_ne_bytes());
        assert_eq!(buf.gro_segment_size(space), None);
    }

    #[test]
    fn empty_or_short_control_data_has_no_segment_size() {
        let buf = CmsgBuf::new();
        assert_eq!(buf.gro_segment_size(0), None);
        assert_eq!(buf.gro_segment_size(4), None);
        // All-zero headers (cmsg_len 0) end the walk instead of looping or underflowing.
        assert_eq!(buf.gro_segment_size(CMSG_BUF_BYTES), None);
    }
}
