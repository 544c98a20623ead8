//! Feeds arbitrary bytes to the STOMP decoder in chunks and checks what it promises: no panic,
//! decoded frames within the limits, never more than a frame plus one header line held while it
//! waits for bytes, `Request::from_frame` total on every frame, and for 1.2 escaped frames,
//! decode → encode → decode giving the same frame back.
//!
//! The first input byte picks the version (low 2 bits) and the chunk size (high 6 bits + 1).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use stampede_proto::{encode, Decoder, Frame, Limits, Request, Version};

const LIMITS: Limits = Limits {
    max_frame_size: 1024,
    max_headers: 8,
    max_header_line: 64,
};

fuzz_target!(|data: &[u8]| {
    let Some((&first, wire)) = data.split_first() else {
        return;
    };
    let version = match first & 3 {
        0 => Version::V1_0,
        1 => Version::V1_1,
        _ => Version::V1_2,
    };
    let chunk = usize::from(first >> 2) + 1;

    let mut decoder = Decoder::new(LIMITS);
    decoder.set_version(version);
    let mut buf = BytesMut::new();
    for piece in wire.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => check_frame(frame, version),
                Ok(None) => {
                    assert!(
                        buf.len() <= LIMITS.max_frame_size + LIMITS.max_header_line,
                        "decoder holds {} bytes without a frame or an error",
                        buf.len()
                    );
                    break;
                }
                // Every decode error is fatal for the connection: stop as the server does.
                Err(_) => return,
            }
        }
    }
});

fn check_frame(frame: Frame, version: Version) {
    assert!(frame.headers.len() <= LIMITS.max_headers);
    assert!(frame.body.len() <= LIMITS.max_frame_size);
    if version == Version::V1_2 && frame.command.escapes_headers() {
        let mut wire = BytesMut::new();
        encode(&frame, version, &mut wire);
        let mut decoder = Decoder::new(Limits::default());
        decoder.set_version(version);
        let again = decoder
            .decode(&mut wire)
            .expect("re-encoded frame decodes")
            .expect("re-encoded frame is complete");
        let mut expected = frame.clone();
        if !expected.body.is_empty() {
            expected
                .headers
                .set_default("content-length", expected.body.len().to_string());
        }
        assert_eq!(again, expected);
        assert!(wire.is_empty());
    }
    let _ = Request::from_frame(frame, version);
}
