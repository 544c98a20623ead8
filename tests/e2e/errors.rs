//! Protocol violations and limits. Each one gets an `ERROR` whose `message` names the problem, then
//! the connection closes; none of it disturbs other clients or messages already stored.
//!
//! The raw-socket helpers at the top are shared with `heartbeat` and `lifecycle`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use stampede_proto::{Command, Decoder, Frame, Limits, Version};
use stampede_tests::{unique, Client, Server, WAIT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---------------------------------------------------------------------------------------------
// Raw-socket helpers
// ---------------------------------------------------------------------------------------------

/// Decodes every frame in `bytes` (heart-beat EOLs between frames are skipped); panics on
/// undecodable or incomplete output, since the broker must only ever write whole frames.
pub(crate) fn decode_all(bytes: &[u8], version: Version) -> Vec<Frame> {
    let mut d = Decoder::new(Limits {
        max_frame_size: 64 * 1024 * 1024,
        ..Limits::default()
    });
    d.set_version(version);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match d.decode(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => break,
            Err(e) => panic!(
                "broker wrote an undecodable frame ({e}): {:?}",
                lossy(bytes)
            ),
        }
    }
    assert!(
        buf.iter().all(|b| matches!(b, b'\n' | b'\r')),
        "broker output ends in an incomplete frame: {:?}",
        lossy(bytes)
    );
    out
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads until the broker closes the socket and returns every byte it wrote. A reset counts as
/// the close: the broker may close with some of our bytes unread, which makes the kernel send RST.
pub(crate) async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
            Err(_) => panic!(
                "connection still open after {WAIT:?}; received {:?}",
                lossy(&bytes)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return bytes,
            Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Frames the broker wrote until it closed the connection.
pub(crate) async fn frames_until_closed(stream: &mut TcpStream, version: Version) -> Vec<Frame> {
    decode_all(&read_until_closed(stream).await, version)
}

/// Asserts `frames` is exactly one ERROR whose `message` contains every needle; returns it.
#[track_caller]
pub(crate) fn single_error(frames: &[Frame], needles: &[&str]) -> Frame {
    assert_eq!(
        frames.len(),
        1,
        "expected exactly one ERROR, got {frames:?}"
    );
    let f = &frames[0];
    assert_eq!(f.command, Command::Error, "expected ERROR, got {f:?}");
    let message = f.headers.get("message").expect("ERROR without message");
    for n in needles {
        assert!(message.contains(n), "ERROR message {message:?} lacks {n:?}");
    }
    f.clone()
}

/// Writes `bytes` on a fresh socket (nothing else first) and returns the frames the broker wrote
/// before closing it. Write errors are ignored: the broker may close before reading everything.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<Frame> {
    let mut s = Client::raw(addr).await;
    let _ = s.write_all(bytes).await;
    frames_until_closed(&mut s, Version::V1_0).await
}

/// Connects a 1.2 client, writes `bytes` after CONNECTED and returns the frames that preceded the
/// close.
async fn after_connect(addr: SocketAddr, bytes: &[u8]) -> Vec<Frame> {
    let mut c = Client::connect(addr).await;
    c.write_raw(bytes).await;
    c.expect_closed().await
}

/// SUBSCRIBE without a receipt, for a queue that already holds messages: the broker may deliver
/// them before the RECEIPT, which `Client::subscribe` does not expect.
async fn subscribe_to_backlog(c: &mut Client, destination: &str, id: &str, ack: &str) {
    c.send_frame(
        Frame::new(Command::Subscribe)
            .header("destination", destination)
            .header("id", id)
            .header("ack", ack),
    )
    .await;
}

/// A broker with small limits, so tests cross them cheaply.
fn limited() -> Server {
    Server::builder()
        .env("PROTOCOL__MAX_FRAME_SIZE", "4KiB")
        .env("PROTOCOL__MAX_CONNECT_FRAME", "1KiB")
        .env("PROTOCOL__MAX_HEADERS", "16")
        .env("PROTOCOL__MAX_HEADER_LINE", "512")
        .start()
}

fn send_head(destination: &str, extra: &str) -> Vec<u8> {
    format!("SEND\ndestination:{destination}\n{extra}\n").into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Before CONNECT
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_as_the_first_frame_is_an_unknown_command() {
    let server = limited();
    // An HTTP request (a browser or health check pointed at the STOMP port).
    let frames = raw_exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    single_error(&frames, &["unknown command", "GET / HTTP/1.1"]);
    // Binary noise with a line break but never a blank line: the command line alone is enough to
    // refuse, the broker must not wait for a head that will never end.
    let frames = raw_exchange(
        server.addr,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\nxx",
    )
    .await;
    single_error(&frames, &["unknown command"]);
    // A TLS ClientHello (a TLS client on the plain port): no line break at all.
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    hello.extend((0..189u8).map(|i| i.wrapping_mul(37) | 0x80));
    let frames = raw_exchange(server.addr, &hello).await;
    single_error(&frames, &["unknown command"]);
}

#[tokio::test]
async fn send_before_connect_is_refused() {
    let server = limited();
    let frames = raw_exchange(server.addr, b"SEND\ndestination:/queue/a\n\nhello\0").await;
    single_error(&frames, &["expected CONNECT or STOMP", "SEND"]);
}

#[tokio::test]
async fn connect_frame_over_max_connect_frame_is_refused_but_later_frames_may_be_larger() {
    let server = limited();
    // Three header lines of ~400 bytes: each under max_header_line (512), together over 1KiB.
    let filler = "v".repeat(400);
    let connect = format!("CONNECT\naccept-version:1.2\na:{filler}\nb:{filler}\nc:{filler}\n\n\0");
    let frames = raw_exchange(server.addr, connect.as_bytes()).await;
    single_error(&frames, &["size limit", "1024"]);

    // Once connected, the 4KiB frame limit applies: a 2KiB SEND is fine.
    let q = unique("/queue/after-connect");
    let mut c = Client::connect(server.addr).await;
    c.send(&q, vec![b'x'; 2048]).await;
}

#[tokio::test]
async fn malformed_heart_beat_header_is_refused() {
    let server = limited();
    let err = Client::connect_with(
        server.addr,
        &[("accept-version", "1.2"), ("heart-beat", "soon")],
    )
    .await
    .err()
    .expect("refused");
    single_error(&[err], &["heart-beat", "soon"]);
}

#[tokio::test]
async fn silent_or_partial_connect_is_closed_after_connect_timeout() {
    let server = Server::builder()
        .env("PROTOCOL__CONNECT_TIMEOUT", "300ms")
        .start();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let mut silent = Client::raw(server.addr).await;
    let mut partial = Client::raw(server.addr).await;
    partial
        .write_all(b"CONNECT\naccept-version:1.2\nhost:x\n")
        .await
        .unwrap();
    // A client that does connect in time is not affected by the timeout.
    let mut good = Client::connect(server.addr).await;

    let frames = frames_until_closed(&mut silent, Version::V1_0).await;
    single_error(&frames, &["connect timeout"]);
    assert!(
        started.elapsed() >= timeout,
        "closed after {:?}, before the connect timeout",
        started.elapsed()
    );
    let frames = frames_until_closed(&mut partial, Version::V1_0).await;
    single_error(&frames, &["connect timeout"]);
    assert!(started.elapsed() >= timeout);

    // Both timed out, so well over 300ms have passed: the connected client still works.
    good.send(&unique("/queue/still-here"), "hi").await;
}

#[tokio::test]
async fn connections_over_max_connections_are_refused_until_one_closes() {
    let server = Server::builder()
        .env("LISTENERS__STOMP__MAX_CONNECTIONS", "2")
        .start();
    let a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;

    // The third connection is refused whether or not it has sent CONNECT yet.
    let mut third = Client::raw(server.addr).await;
    let frames = frames_until_closed(&mut third, Version::V1_0).await;
    single_error(&frames, &["too many connections"]);
    let err = Client::connect_with(server.addr, &[("accept-version", "1.2")])
        .await
        .err()
        .expect("third connection refused");
    single_error(&[err], &["too many connections"]);

    // Closing one frees its slot.
    let session = a.connected.headers.get("session").unwrap().to_owned();
    a.drop_connection();
    server.wait_for_log(&["\"disconnected\"", &format!("\"session\":{session}")]);
    // The slot is released right after that log line, so allow for losing that short race.
    let mut attempts = 0;
    let mut c = loop {
        attempts += 1;
        match Client::connect_with(server.addr, &[("accept-version", "1.2")]).await {
            Ok(c) => break c,
            Err(e) if attempts < 20 => single_error(&[e], &["too many connections"]),
            Err(e) => panic!("slot not freed after {attempts} attempts: {e:?}"),
        };
    };
    // Both remaining connections are fully usable, and the cap still holds.
    c.send(&unique("/queue/cap"), "c").await;
    b.send(&unique("/queue/cap"), "b").await;
    let err = Client::connect_with(server.addr, &[("accept-version", "1.2")])
        .await
        .err()
        .expect("cap still enforced");
    single_error(&[err], &["too many connections"]);
}

// ---------------------------------------------------------------------------------------------
// After CONNECT
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_command_after_connect() {
    let server = limited();
    let frames = after_connect(server.addr, b"FROB\nx:y\n\n\0").await;
    single_error(&frames, &["unknown command", "FROB"]);
}

#[tokio::test]
async fn frame_over_max_frame_size_is_refused() {
    let server = limited();
    let q = unique("/queue/big");
    // Just under the limit is accepted (head ~60 bytes + 3500 body < 4096).
    let mut ok = Client::connect(server.addr).await;
    ok.send(&q, vec![b'x'; 3500]).await;

    // Over the limit without content-length: refused while the body streams in.
    let mut frame = send_head(&q, "");
    frame.extend_from_slice(&[b'x'; 5000]);
    frame.push(0);
    let frames = after_connect(server.addr, &frame).await;
    single_error(&frames, &["size limit", "4096"]);

    // A content-length over the limit is refused as soon as the head arrives: no body is sent.
    let mut c = Client::connect(server.addr).await;
    c.write_raw(&send_head(&q, "content-length:100000\n")).await;
    single_error(&c.expect_closed().await, &["size limit", "4096"]);

    // The accepted message is the only one in the queue.
    let mut consumer = Client::connect(server.addr).await;
    subscribe_to_backlog(&mut consumer, &q, "s", "auto").await;
    assert_eq!(consumer.message().await.body.len(), 3500);
    ok.send(&q, "sentinel").await;
    assert_eq!(&consumer.message().await.body[..], b"sentinel");
}

#[tokio::test]
async fn more_than_max_headers_is_refused() {
    let server = limited();
    let q = unique("/queue/headers");
    // 16 headers (destination, receipt, content-length and 13 more) is exactly the limit.
    let mut ok = Client::connect(server.addr).await;
    let extra: Vec<(String, String)> = (0..13).map(|i| (format!("h{i}"), i.to_string())).collect();
    let refs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    ok.send_with(&q, "ok", &refs).await;

    let extra: String = (0..16).map(|i| format!("h{i}:{i}\n")).collect();
    let frames = after_connect(
        server.addr,
        &[send_head(&q, &extra), b"\0".to_vec()].concat(),
    )
    .await;
    single_error(&frames, &["more than 16 headers"]);
}

#[tokio::test]
async fn header_line_over_max_header_line_is_refused() {
    let server = limited();
    let q = unique("/queue/line");
    let long = format!("x:{}\n", "a".repeat(600));
    let frames = after_connect(
        server.addr,
        &[send_head(&q, &long), b"\0".to_vec()].concat(),
    )
    .await;
    single_error(&frames, &["header line", "512"]);
    // The command line counts too.
    let frames = after_connect(
        server.addr,
        &[b"S".repeat(600), b"\n\n\0".to_vec()].concat(),
    )
    .await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Error);
}

#[tokio::test]
async fn send_without_destination_names_the_header_and_echoes_the_receipt() {
    let server = limited();
    let mut c = Client::connect(server.addr).await;
    c.send_frame(Frame::new(Command::Send).header("receipt", "r-1").body("x"))
        .await;
    let err = single_error(&c.expect_closed().await, &["SEND", "destination"]);
    assert_eq!(err.headers.get("receipt-id"), Some("r-1"));
}

#[tokio::test]
async fn subscribe_without_id_is_refused_on_1_2() {
    let server = limited();
    let frames = after_connect(server.addr, b"SUBSCRIBE\ndestination:/queue/a\n\n\0").await;
    single_error(&frames, &["SUBSCRIBE", "\"id\""]);
}

#[tokio::test]
async fn invalid_ack_mode_is_refused() {
    let server = limited();
    let frames = after_connect(
        server.addr,
        b"SUBSCRIBE\ndestination:/queue/a\nid:1\nack:sometimes\n\n\0",
    )
    .await;
    single_error(&frames, &["ack", "sometimes"]);
}

#[tokio::test]
async fn undefined_escape_in_a_1_2_header_is_refused() {
    let server = limited();
    let frames = after_connect(server.addr, b"SEND\ndestination:/queue/a\nbad:a\\tb\n\nx\0").await;
    single_error(&frames, &["escape"]);
}

#[tokio::test]
async fn a_second_connect_is_refused() {
    let server = limited();
    let frames = after_connect(server.addr, b"CONNECT\naccept-version:1.2\n\n\0").await;
    single_error(&frames, &["already connected"]);
}

// ---------------------------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------------------------

/// What a misbehaving client sends after connecting (or instead of connecting).
struct Abuse {
    connect: bool,
    bytes: Vec<u8>,
    /// Text the ERROR message must contain; `None` = the client just hangs up, no ERROR expected.
    error: Option<&'static str>,
}

async fn abuse(addr: SocketAddr, a: Abuse) {
    let mut s = Client::raw(addr).await;
    if a.connect {
        s.write_all(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
            .await
            .unwrap();
    }
    let _ = s.write_all(&a.bytes).await;
    if a.error.is_none() {
        // Hang up mid-frame.
        drop(s);
        return;
    }
    // Before CONNECT the broker speaks 1.0 (no header escaping).
    let version = if a.connect {
        Version::V1_2
    } else {
        Version::V1_0
    };
    let mut frames = frames_until_closed(&mut s, version).await;
    if a.connect {
        assert_eq!(frames.first().map(|f| f.command), Some(Command::Connected));
        frames.remove(0);
    }
    single_error(&frames, &[a.error.unwrap()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn misbehaving_clients_do_not_disturb_others_or_stored_messages() {
    let server = limited();
    let kept = unique("/queue/kept");
    let live = unique("/queue/live");

    // Messages stored before the trouble, each confirmed by a receipt; bodies include NULs.
    let mut producer = Client::connect(server.addr).await;
    let expected: Vec<Vec<u8>> = (0..30)
        .map(|i| format!("kept-{i}\0binary\r\n{}", "z".repeat(i * 50)).into_bytes())
        .collect();
    for (i, body) in expected.iter().enumerate() {
        producer
            .send_with(
                &kept,
                body.clone(),
                &[("n", &i.to_string()), ("colon", "a:b")],
            )
            .await;
    }
    let mut watcher = Client::connect(server.addr).await;
    watcher.subscribe(&live, "w", "auto").await;

    let abuses = || {
        vec![
            Abuse {
                connect: false,
                bytes: b"\x00\x01\x02garbage\n".to_vec(),
                error: Some("unknown command"),
            },
            Abuse {
                connect: true,
                bytes: b"\xff\xfe\xfd\n\n\0".to_vec(),
                error: Some("unknown command"),
            },
            Abuse {
                connect: true,
                bytes: [send_head(&kept, ""), vec![b'x'; 5000], vec![0]].concat(),
                error: Some("size limit"),
            },
            Abuse {
                connect: true,
                bytes: send_head(&kept, "content-length:999999\n"),
                error: Some("size limit"),
            },
            Abuse {
                // The declared body is followed by garbage instead of NUL: must not be stored.
                connect: true,
                bytes: [send_head(&kept, "content-length:3\n"), b"abcdefgh".to_vec()].concat(),
                error: Some("NUL"),
            },
            Abuse {
                connect: true,
                bytes: [
                    send_head(
                        &kept,
                        &(0..20).map(|i| format!("h{i}:{i}\n")).collect::<String>(),
                    ),
                    vec![0],
                ]
                .concat(),
                error: Some("headers"),
            },
            Abuse {
                connect: true,
                bytes: b"SEND\nreceipt:r\n\nno destination\0".to_vec(),
                error: Some("destination"),
            },
            Abuse {
                connect: true,
                bytes: format!("SEND\ndestination:{kept}\nx:\\t\n\nbad escape\0").into_bytes(),
                error: Some("escape"),
            },
            // Hangs up in the middle of a SEND to the queue: nothing may be stored.
            Abuse {
                connect: true,
                bytes: [
                    send_head(&kept, "content-length:100\n"),
                    b"partial".to_vec(),
                ]
                .concat(),
                error: None,
            },
        ]
    };

    // Three rounds of abuse run concurrently with live traffic on the watcher's subscription.
    let trouble = async {
        for _ in 0..3 {
            futures::future::join_all(abuses().into_iter().map(|a| abuse(server.addr, a))).await;
        }
    };
    let traffic = async {
        let mut sender = Client::connect(server.addr).await;
        for i in 0..30 {
            sender.send(&live, format!("live-{i}")).await;
            assert_eq!(watcher.message().await.body, format!("live-{i}").as_bytes());
        }
    };
    tokio::join!(trouble, traffic);

    // After all of it, a new consumer gets every stored message intact and in order...
    let mut consumer = Client::connect(server.addr).await;
    subscribe_to_backlog(&mut consumer, &kept, "c", "client-individual").await;
    for (i, body) in expected.iter().enumerate() {
        let m = consumer.message().await;
        assert_eq!(&m.body[..], &body[..], "message {i}");
        assert_eq!(m.headers.get("n"), Some(i.to_string().as_str()));
        assert_eq!(m.headers.get("colon"), Some("a:b"));
    }
    // ...and nothing else: the next message is one sent now.
    producer.send(&kept, "sentinel").await;
    assert_eq!(&consumer.message().await.body[..], b"sentinel");
}

/// The ERROR reaches a client that is still writing after its bad frame, as a simple client is:
/// it writes everything it has, then reads. Closing with its bytes unread makes the kernel reset
/// the connection: the client's write fails, and a client that stops at a failed write (most do)
/// never reads the ERROR. The broker must read the rest away before closing, so the writes
/// succeed and the ERROR is there to read. 32 MiB is more than the sockets' buffers hold.
#[tokio::test]
async fn a_client_still_writing_after_a_bad_frame_reads_the_error() {
    let server = Server::start();
    let mut frame = send_head("/queue/never", "");
    frame.extend(std::iter::repeat_n(b'x', 64 * 1024 - frame.len() - 1));
    frame.push(0);
    let flood = frame.repeat(512);
    for round in 0..3 {
        let mut s = Client::raw(server.addr).await;
        s.write_all(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
            .await
            .unwrap();
        s.write_all(b"BOGUS\n\n\0").await.unwrap();
        s.write_all(&flood)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the broker reset the stream: {e}"));
        let frames = decode_all(&read_until_closed(&mut s).await, Version::V1_2);
        let commands: Vec<Command> = frames.iter().map(|f| f.command).collect();
        assert_eq!(
            commands,
            [Command::Connected, Command::Error],
            "round {round}: {frames:?}"
        );
        let message = frames[1].headers.get("message").unwrap_or_default();
        assert!(message.contains("BOGUS"), "{message}");
    }
}
