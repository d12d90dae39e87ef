//! Feeds arbitrary bytes, as a stream, to the transport's `FrameReader` with a small
//! `frame_bytes_max`, split in two at a point derived from the input, each piece written
//! through the reader's bounded `sink` as a QUIC stream read would. Checks that:
//! - the reader never buffers more than one header plus one maximal frame, and while it waits
//!   for more bytes it always has room for them (a stream can never stall);
//! - every decoded frame re-encodes to exactly the bytes it came from, and those are the next
//!   bytes of the stream;
//! - the frames and the error read are the same whether the stream arrives whole or split.

#![no_main]

use bytes::{BufMut, BytesMut};
use libfuzzer_sys::fuzz_target;
use shoal_transport::frame::{
    encode_hello, encode_message, encode_welcome, Frame, FrameError, FrameReader,
    HANDSHAKE_FRAME_BYTES_MAX, HEADER_BYTES,
};

/// Small, so that inputs of libFuzzer's default size reach the oversize refusal and fill the
/// buffer to its bound; not below the largest HELLO, which every reader must accept.
const FRAME_BYTES_MAX: usize = 1024;
const _: () = assert!(FRAME_BYTES_MAX >= HANDSHAKE_FRAME_BYTES_MAX);

fn encode(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    match frame {
        Frame::Hello { name, target, incarnation, auth } => {
            encode_hello(name, target, *incarnation, auth, &mut out);
        }
        Frame::Welcome { name, incarnation, auth } => {
            encode_welcome(name, *incarnation, auth, &mut out);
        }
        Frame::Message(payload) => encode_message(payload, &mut out),
    }
    out
}

/// Reads `data` as one stream delivered in the given pieces; returns the frames read and the
/// error that ended the stream, if any.
fn read_stream(data: &[u8], pieces: &[&[u8]]) -> (Vec<Frame>, Option<FrameError>) {
    let mut reader = FrameReader::new(FRAME_BYTES_MAX);
    let mut frames = Vec::new();
    // Bytes of `data` written to the reader, and bytes of it taken by decoded frames.
    let mut written = 0;
    let mut consumed = 0;
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            let room = reader.room();
            let mut sink = reader.sink();
            assert_eq!(sink.remaining_mut(), room);
            let n = rest.len().min(room);
            sink.put_slice(&rest[..n]);
            rest = &rest[n..];
            written += n;
            assert!(reader.buffered() <= HEADER_BYTES + FRAME_BYTES_MAX);
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => {
                        let bytes = encode(&frame);
                        let end = consumed + bytes.len();
                        assert!(end <= written, "{frame:?} longer than the bytes written");
                        assert_eq!(&bytes[..], &data[consumed..end], "{frame:?}");
                        consumed = end;
                        assert_eq!(reader.buffered(), written - consumed);
                        frames.push(frame);
                    }
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
            assert!(reader.room() > 0, "reader waits for bytes it has no room for");
            reader.release_idle();
        }
    }
    (frames, None)
}

/// A split point in `0..=data.len()` that depends on every byte of the input, so that the
/// input stays a plain byte stream (seeds are frames as sent) while libFuzzer still varies it.
fn split_point(data: &[u8]) -> usize {
    let hash =
        data.iter().fold(0x811C_9DC5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash as usize % (data.len() + 1)
}

fuzz_target!(|data: &[u8]| {
    let (head, tail) = data.split_at(split_point(data));
    let split = read_stream(data, &[head, tail]);
    let whole = read_stream(data, &[data]);
    assert_eq!(split, whole, "split at {}", head.len());
});
