//! Property tests for the codec: encode → decode round-trips per protocol version (whole frames and
//! chunked streams with heart-beats in between), the decoder's behaviour on arbitrary and
//! almost-STOMP bytes under small limits (no panic, bounded buffering), and `Request::from_frame`
//! never panicking.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::Config;
use stampede_proto::{
    encode, ClientCommand, Command, Decoder, Frame, Headers, Limits, ProtoError, Request, Version,
};

const COMMANDS: [Command; 15] = Command::ALL;

/// Header names the broker reads, so generated frames exercise `Request::from_frame` for real.
const KNOWN_NAMES: [&str; 28] = [
    "receipt",
    "destination",
    "id",
    "ack",
    "transaction",
    "accept-version",
    "heart-beat",
    "host",
    "login",
    "passcode",
    "prefetch-count",
    "activemq.prefetchSize",
    "message-id",
    "requeue",
    "subscription",
    "selector",
    "expires",
    "persistent",
    "priority",
    "reply-to",
    "x-delay",
    "AMQ_SCHEDULED_DELAY",
    "durable",
    "auto-delete",
    "activemq.subscriptionName",
    "x-queue-name",
    "x-dead-letter-routing-key",
    "client-id",
];

const KNOWN_VALUES: [&str; 18] = [
    "",
    "auto",
    "client",
    "client-individual",
    "true",
    "FALSE",
    "1.0",
    "1.1,1.2",
    "2.0",
    "0,0",
    "10000, 5000",
    ",",
    "18446744073709551616,1",
    "0",
    " 42 ",
    "-1",
    "4294967296",
    "/queue/a",
];

fn cfg(cases: u32) -> Config {
    Config {
        cases,
        // Failures are turned into unit tests by hand; no regression files in the tree.
        failure_persistence: None,
        ..Config::default()
    }
}

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(vec![Version::V1_0, Version::V1_1, Version::V1_2])
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(COMMANDS.to_vec())
}

/// Characters weighted towards the ones escaping cares about.
fn header_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![':', '\n', '\r', '\\', ' ', '\0', 'c', 'n', 'r', 't']),
        4 => prop::char::range('a', 'z'),
        1 => any::<char>(),
    ]
}

fn header_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(header_char(), 0..max).prop_map(String::from_iter)
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::sample::select(KNOWN_NAMES.to_vec()).prop_map(str::to_owned),
        2 => header_string(12),
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => prop::sample::select(KNOWN_VALUES.to_vec()).prop_map(str::to_owned),
        3 => header_string(24),
    ]
}

fn body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        1 => Just(Bytes::new()),
        3 => prop::collection::vec(prop_oneof![Just(0u8), Just(b'\n'), any::<u8>()], 0..64)
            .prop_map(Bytes::from),
    ]
}

/// What a header may contain to survive the wire unchanged. Frames that are not escaped (1.0, and
/// CONNECT/STOMP/CONNECTED in every version) cannot carry line breaks, nor `:` in a name; 1.1 has
/// no `\r` escape (the encoder turns it into a space); 1.2 carries anything.
fn keep(c: char, version: Version, escaped: bool, is_name: bool) -> bool {
    match (version, escaped) {
        (Version::V1_2, true) => true,
        (Version::V1_1, true) => c != '\r',
        _ => !(matches!(c, '\n' | '\r') || (is_name && c == ':')),
    }
}

fn sanitize(s: &str, version: Version, escaped: bool, is_name: bool) -> String {
    s.chars()
        .filter(|&c| keep(c, version, escaped, is_name))
        .collect()
}

/// A frame that `encode` for `version` must reproduce exactly, and the headers the decoder must
/// return for it (the original plus the `content-length` the encoder adds for a non-empty body).
#[derive(Debug, Clone)]
struct Case {
    frame: Frame,
    expected: Frame,
}

fn frame_for(version: Version) -> impl Strategy<Value = Case> {
    (
        command(),
        prop::collection::vec((header_name(), header_value()), 0..8),
        body(),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(move |(command, raw, body, explicit_length)| {
            let escaped = command.escapes_headers();
            let mut pairs: Vec<(String, String)> = raw
                .into_iter()
                .map(|(k, v)| {
                    let k = sanitize(&k, version, escaped, true);
                    let v = sanitize(&v, version, escaped, false);
                    // A wrong content-length is not a round-trip; the right one is added below.
                    let k = if k == "content-length" {
                        format!("x-{k}")
                    } else {
                        k
                    };
                    (k, v)
                })
                .collect();
            if let Some(at) = explicit_length {
                let at = at.index(pairs.len() + 1);
                pairs.insert(at, ("content-length".into(), body.len().to_string()));
            }
            let frame = Frame {
                command,
                headers: pairs.iter().cloned().collect(),
                body,
            };
            let mut expected = frame.clone();
            if explicit_length.is_none() && !expected.body.is_empty() {
                expected
                    .headers
                    .push("content-length", expected.body.len().to_string());
            }
            Case { frame, expected }
        })
}

fn versioned_frame() -> impl Strategy<Value = (Version, Case)> {
    version().prop_flat_map(|v| (Just(v), frame_for(v)))
}

fn heartbeats() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![&b"\n"[..], &b"\r\n"[..]]), 0..3)
        .prop_map(|eols| eols.concat())
}

/// Feeds `wire` to `decoder` in chunks whose sizes cycle through `chunks`, draining every frame
/// after each chunk. Returns the frames decoded before the first error, that error, and the
/// largest buffer the decoder left behind while asking for more bytes.
fn feed(
    decoder: &mut Decoder,
    wire: &[u8],
    chunks: &[usize],
) -> (Vec<Frame>, Option<ProtoError>, usize, BytesMut) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut max_held = 0;
    let mut rest = wire;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => {
                    max_held = max_held.max(buf.len());
                    break;
                }
                Err(e) => return (frames, Some(e), max_held, buf),
            }
        }
    }
    (frames, None, max_held, buf)
}

fn small_limits() -> Limits {
    Limits {
        max_frame_size: 1024,
        max_headers: 8,
        max_header_line: 64,
    }
}

/// Checks what the decoder promises under `limits` for any input: no panic, frames within the
/// limits, and never more than one frame's worth plus one header line held while waiting.
fn check_bounded(version: Version, wire: &[u8], chunks: &[usize]) -> Result<(), TestCaseError> {
    let limits = small_limits();
    let mut d = Decoder::new(limits);
    d.set_version(version);
    let (frames, _err, max_held, _) = feed(&mut d, wire, chunks);
    prop_assert!(
        max_held <= limits.max_frame_size + limits.max_header_line,
        "decoder held {max_held} bytes without a frame or an error"
    );
    for f in frames {
        prop_assert!(f.headers.len() <= limits.max_headers);
        prop_assert!(f.body.len() <= limits.max_frame_size);
        if version == Version::V1_2 && f.command.escapes_headers() {
            reencode_is_stable(&f)?;
        }
        let _ = Request::from_frame(f, version);
    }
    Ok(())
}

/// 1.2 escaping is lossless, so whatever the decoder accepted re-encodes to the same frame (plus
/// the content-length the encoder adds to a NUL-terminated body).
fn reencode_is_stable(frame: &Frame) -> Result<(), TestCaseError> {
    let mut wire = BytesMut::new();
    encode(frame, Version::V1_2, &mut wire);
    let mut d = Decoder::new(Limits::default());
    d.set_version(Version::V1_2);
    let again = d.decode(&mut wire);
    prop_assert!(matches!(again, Ok(Some(_))), "{:?} for {:?}", again, frame);
    let mut expected = frame.clone();
    if !expected.body.is_empty() {
        expected
            .headers
            .set_default("content-length", expected.body.len().to_string());
    }
    prop_assert_eq!(again.unwrap(), Some(expected));
    prop_assert!(wire.is_empty());
    Ok(())
}

/// Pieces of almost-valid STOMP, so random streams reach heads, bodies and the limits.
fn stomp_piece() -> impl Strategy<Value = Vec<u8>> {
    let line = |s: &str| s.as_bytes().to_vec();
    prop_oneof![
        3 => command().prop_map(|c| format!("{c}\n").into_bytes()),
        1 => Just(line("CONNECT\r\n")),
        2 => (0usize..1500).prop_map(|n| format!("content-length:{n}\n").into_bytes()),
        1 => Just(line("content-length:x\n")),
        2 => (header_string(10), header_string(10))
            .prop_map(|(k, v)| format!("{k}:{v}\n").into_bytes()),
        1 => Just(line("k:a\\cb\\r\\n\\\\\n")),
        1 => Just(line("k:bad\\t\n")),
        3 => prop::sample::select(vec![&b"\n"[..], &b"\r\n"[..], &b"\0"[..], &b"\r"[..]])
            .prop_map(<[u8]>::to_vec),
        1 => (any::<u8>(), 0usize..1500).prop_map(|(b, n)| vec![b; n]),
        2 => prop::collection::vec(any::<u8>(), 0..32),
        2 => stomp_frame(),
    ]
}

/// A well-formed head (long header lines, an optional content-length up to past the limit), then
/// body bytes that may or may not complete it.
fn stomp_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        command(),
        prop::collection::vec(0usize..60, 0..8),
        prop::option::of(prop_oneof![0usize..1100, 900usize..1025]),
        any::<prop::sample::Index>(),
        0usize..1200,
        prop::option::of(any::<u8>()),
    )
        .prop_map(|(command, values, length, at, body_len, end)| {
            let mut lines: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, n)| format!("h{i}:{}", "v".repeat(*n)))
                .collect();
            if let Some(n) = length {
                lines.insert(at.index(lines.len() + 1), format!("content-length:{n}"));
            }
            let mut wire = format!("{command}\n").into_bytes();
            for line in lines {
                wire.extend_from_slice(line.as_bytes());
                wire.push(b'\n');
            }
            wire.push(b'\n');
            wire.resize(wire.len() + body_len, b'b');
            wire.extend(end);
            wire
        })
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..8, 1usize..300], 1..8)
}

proptest! {
    #![proptest_config(cfg(256))]

    /// One frame, encoded for its version, decodes to itself (plus the added content-length) and
    /// leaves nothing in the buffer.
    #[test]
    fn single_frame_round_trips((version, case) in versioned_frame()) {
        let mut wire = BytesMut::new();
        encode(&case.frame, version, &mut wire);
        let mut d = Decoder::new(Limits::default());
        d.set_version(version);
        let got = d.decode(&mut wire);
        prop_assert!(got.is_ok(), "{:?} for {:?}", got, case.frame);
        prop_assert_eq!(got.unwrap(), Some(case.expected));
        prop_assert!(wire.is_empty());
    }

    /// Several frames with heart-beat EOLs around them, fed in arbitrary chunks, decode to the
    /// same sequence.
    #[test]
    fn chunked_stream_round_trips(
        (version, cases) in version().prop_flat_map(|v| {
            (Just(v), prop::collection::vec((heartbeats(), frame_for(v)), 1..6))
        }),
        trailing in heartbeats(),
        chunks in chunk_sizes(),
    ) {
        let mut wire = BytesMut::new();
        for (eols, case) in &cases {
            wire.extend_from_slice(eols);
            encode(&case.frame, version, &mut wire);
        }
        wire.extend_from_slice(&trailing);
        let mut d = Decoder::new(Limits::default());
        d.set_version(version);
        let (frames, err, _, rest) = feed(&mut d, &wire, &chunks);
        prop_assert!(err.is_none(), "{:?}", err);
        let expected: Vec<Frame> = cases.into_iter().map(|(_, c)| c.expected).collect();
        prop_assert_eq!(frames, expected);
        prop_assert!(rest.is_empty(), "left over: {:?}", rest);
    }

    /// Arbitrary bytes in arbitrary chunks: no panic, bounded buffering under small limits.
    #[test]
    fn arbitrary_bytes_are_handled(
        version in version(),
        wire in prop::collection::vec(any::<u8>(), 0..4096),
        chunks in chunk_sizes(),
    ) {
        check_bounded(version, &wire, &chunks)?;
    }

    /// Almost-STOMP streams (real commands, content-lengths up to past the limit, long lines,
    /// stray NULs and EOLs): no panic, bounded buffering under small limits.
    #[test]
    fn almost_stomp_is_handled(
        version in version(),
        pieces in prop::collection::vec(stomp_piece(), 0..24),
        chunks in chunk_sizes(),
    ) {
        check_bounded(version, &pieces.concat(), &chunks)?;
    }

    /// Well-formed heads whose declared or actual size crosses the limit: the decoder must refuse
    /// them before it has buffered more than a frame and a header line.
    #[test]
    fn oversized_frames_are_refused_early(
        version in version(),
        frames in prop::collection::vec(stomp_frame(), 1..4),
        chunks in chunk_sizes(),
    ) {
        check_bounded(version, &frames.concat(), &chunks)?;
    }

    /// `Request::from_frame` never panics, and what it accepts is consistent with the headers.
    #[test]
    fn request_from_frame_never_panics(
        version in version(),
        command in command(),
        pairs in prop::collection::vec((header_name(), header_value()), 0..10),
        body in body(),
    ) {
        let headers: Headers = pairs.into_iter().collect();
        let frame = Frame { command, headers: headers.clone(), body };
        let Ok(req) = Request::from_frame(frame, version) else {
            return Ok(());
        };
        prop_assert_eq!(req.receipt.as_deref(), headers.get("receipt"));
        match req.command {
            ClientCommand::Send(s) => {
                prop_assert_eq!(Some(s.destination.as_str()), headers.get("destination"));
                prop_assert!(s.headers.iter().all(|(k, _)| !matches!(
                    k.as_str(),
                    "receipt" | "transaction" | "content-length" | "destination"
                )));
            }
            ClientCommand::Subscribe(s) => {
                prop_assert_eq!(Some(s.destination.as_str()), headers.get("destination"));
                prop_assert!(s.prefetch != Some(0));
            }
            _ => {}
        }
    }
}
