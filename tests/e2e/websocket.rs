//! STOMP over WebSocket at `/ws` on the HTTP listener (docs/protocol.md "WebSocket"): the
//! subprotocol handshake, one frame per outgoing message (text, or binary when the frame is not
//! UTF-8), frames split over or packed into incoming messages, heart-beats as messages, the same
//! sessions as TCP clients, the plain listener's connection cap, ERRORs for bad input, and the
//! goodbye at shutdown.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use stampede_tests::http::Scrape;
use stampede_tests::{unique, Server, WAIT};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support_q::{body, connect};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/ws` offering `protocols`; returns the socket and the subprotocol the broker chose.
async fn open(server: &Server, protocols: &str) -> (Ws, Option<String>) {
    let mut req = format!("ws://{}/ws", server.http_addr)
        .into_client_request()
        .unwrap();
    if !protocols.is_empty() {
        req.headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket upgrade");
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    (ws, chosen)
}

/// The next text or binary message (pings and pongs skipped); `None` once the socket closed.
async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a WebSocket message in time");
        match m {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Some(m),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// The next message, which must be a whole frame, as bytes.
async fn frame(ws: &mut Ws) -> Vec<u8> {
    match next(ws).await.expect("a frame before the socket closed") {
        Message::Text(t) => t.as_bytes().to_vec(),
        Message::Binary(b) => b.to_vec(),
        _ => unreachable!(),
    }
}

fn text(f: &[u8]) -> String {
    String::from_utf8_lossy(f).into_owned()
}

async fn send(ws: &mut Ws, frame: &str) {
    ws.send(Message::text(frame)).await.unwrap();
}

async fn connected(ws: &mut Ws) {
    send(
        ws,
        "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0",
    )
    .await;
    let f = text(&frame(ws).await);
    assert!(f.starts_with("CONNECTED\n"), "{f}");
}

#[tokio::test]
async fn a_websocket_client_speaks_stomp_with_tcp_clients_text_and_binary() {
    let server = Server::start();
    let (mut ws, chosen) = open(&server, "v10.stomp, v12.stomp, v11.stomp").await;
    assert_eq!(chosen.as_deref(), Some("v12.stomp"), "the newest offered");
    connected(&mut ws).await;
    let q = format!("/queue/{}", unique("ws"));
    send(
        &mut ws,
        &format!("SUBSCRIBE\nid:s\ndestination:{q}\nack:auto\n\n\0"),
    )
    .await;
    // A receipt tells the subscription is in place before the TCP client sends.
    send(
        &mut ws,
        "SEND\ndestination:/queue/ws-marker\nreceipt:r0\n\nm\0",
    )
    .await;
    assert!(text(&frame(&mut ws).await).starts_with("RECEIPT\nreceipt-id:r0"));

    let mut tcp = connect(server.addr).await;
    tcp.send(&q, "from tcp ✓").await;
    match next(&mut ws).await.expect("MESSAGE") {
        Message::Text(t) => {
            assert!(t.starts_with("MESSAGE\n"), "{t}");
            assert!(t.ends_with("\n\nfrom tcp ✓\0"), "{t}");
        }
        other => panic!("a UTF-8 frame comes as text: {other:?}"),
    }

    // A body with a NUL and bytes that are not UTF-8, in a binary message, split over two
    // messages; then two frames packed into one.
    let payload: &[u8] = b"\x00\xff\xfebin";
    let mut binary = format!(
        "SEND\ndestination:{q}\ncontent-length:{}\n\n",
        payload.len()
    )
    .into_bytes();
    binary.extend_from_slice(payload);
    binary.push(0);
    let (a, b) = binary.split_at(10);
    ws.send(Message::binary(a.to_vec())).await.unwrap();
    ws.send(Message::binary(b.to_vec())).await.unwrap();
    match next(&mut ws).await.expect("MESSAGE") {
        Message::Binary(m) => assert!(m.ends_with(&[payload, b"\0"].concat()), "{m:?}"),
        other => panic!("a frame that is not UTF-8 comes as binary: {other:?}"),
    }
    send(
        &mut ws,
        &format!("SEND\ndestination:{q}\n\none\0\nSEND\ndestination:{q}\n\ntwo\0"),
    )
    .await;
    for want in ["one", "two"] {
        let f = text(&frame(&mut ws).await);
        assert!(f.ends_with(&format!("\n\n{want}\0")), "{f}");
    }

    // And the other way: what the WebSocket client sends reaches a TCP subscriber.
    let back = format!("/queue/{}", unique("ws-back"));
    tcp.subscribe(&back, "t", "auto").await;
    send(
        &mut ws,
        &format!("SEND\ndestination:{back}\nreceipt:r1\n\nto tcp\0"),
    )
    .await;
    assert!(text(&frame(&mut ws).await).starts_with("RECEIPT\nreceipt-id:r1"));
    assert_eq!(body(&tcp.message().await), "to tcp");

    let scrape = Scrape::take(&server).await;
    assert_eq!(
        scrape.value("stampede_connections_total", &[("listener", "ws")]),
        1.0
    );
    assert_eq!(
        scrape.value("stampede_connections_open", &[("listener", "ws")]),
        1.0
    );
}

#[tokio::test]
async fn heart_beats_come_as_messages_of_one_eol_and_no_subprotocol_is_accepted_too() {
    let server = Server::start();
    let (mut ws, chosen) = open(&server, "").await;
    assert_eq!(chosen, None);
    send(
        &mut ws,
        "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,500\n\n\0",
    )
    .await;
    let f = text(&frame(&mut ws).await);
    assert!(f.contains("heart-beat:500,"), "{f}");
    for _ in 0..2 {
        assert_eq!(frame(&mut ws).await, b"\n");
    }
}

#[tokio::test]
async fn bad_frames_get_an_error_and_the_cap_counts_websockets_with_tcp() {
    let server = Server::builder()
        .env("LISTENERS__STOMP__MAX_CONNECTIONS", "1")
        .env("PROTOCOL__MAX_FRAME_SIZE", "1KiB")
        .env("PROTOCOL__MAX_CONNECT_FRAME", "1KiB")
        .start();
    let (mut ws, _) = open(&server, "v12.stomp").await;
    connected(&mut ws).await;
    // The plain listener's one place is taken by this WebSocket: a TCP client is refused.
    let refused =
        stampede_tests::Client::connect_refused(server.addr, &[("accept-version", "1.2")]).await;
    assert_eq!(refused.headers.get("message"), Some("too many connections"));
    // A second WebSocket over the cap is refused in turn, with the same ERROR.
    let (mut second, _) = open(&server, "v12.stomp").await;
    let f = text(&frame(&mut second).await);
    assert!(
        f.starts_with("ERROR\n") && f.contains("too many connections"),
        "{f}"
    );
    assert!(next(&mut second).await.is_none(), "closed after the ERROR");
    let big = "x".repeat(2048);
    send(&mut ws, &format!("SEND\ndestination:/queue/big\n\n{big}\0")).await;
    let f = text(&frame(&mut ws).await);
    assert!(f.starts_with("ERROR\n") && f.contains("frame"), "{f}");
    assert!(next(&mut ws).await.is_none(), "closed after the ERROR");
}

#[tokio::test]
async fn a_message_over_the_websocket_limit_gets_the_oversized_frame_error() {
    // protocol.max_frame_size 1 KiB: WebSocket messages up to 65 KiB, then the transport refuses.
    let server = Server::builder()
        .env("PROTOCOL__MAX_FRAME_SIZE", "1KiB")
        .env("PROTOCOL__MAX_CONNECT_FRAME", "1KiB")
        .start();
    for connect_first in [false, true] {
        let (mut ws, _) = open(&server, "v12.stomp").await;
        if connect_first {
            connected(&mut ws).await;
        }
        let huge = format!(
            "SEND\ndestination:/queue/huge\n\n{}\0",
            "y".repeat(100 * 1024)
        );
        let _ = ws.send(Message::text(huge)).await;
        let f = text(&frame(&mut ws).await);
        assert!(f.starts_with("ERROR\n") && f.contains("size limit"), "{f}");
    }
}

#[tokio::test]
async fn only_older_subprotocols_offered_and_users_mode_logins_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    let hash = crate::auth::passwd("guest");
    std::fs::write(
        &config,
        format!("[auth]\nmode = \"users\"\n[auth.users.guest]\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    let server = Server::builder().config(&config).start();
    let (mut ws, chosen) = open(&server, "v10.stomp, v11.stomp").await;
    assert_eq!(chosen.as_deref(), Some("v11.stomp"));
    send(
        &mut ws,
        "CONNECT\naccept-version:1.1\nhost:/\nlogin:guest\npasscode:wrong\n\n\0",
    )
    .await;
    let f = text(&frame(&mut ws).await);
    assert!(
        f.starts_with("ERROR\n") && f.contains("authentication failed"),
        "{f}"
    );
    let (mut ws, _) = open(&server, "v11.stomp").await;
    send(
        &mut ws,
        "CONNECT\naccept-version:1.1\nhost:/\nlogin:guest\npasscode:guest\n\n\0",
    )
    .await;
    let f = text(&frame(&mut ws).await);
    assert!(
        f.starts_with("CONNECTED\n") && f.contains("version:1.1"),
        "{f}"
    );
}

#[tokio::test]
async fn shutdown_says_goodbye_to_websocket_clients() {
    let mut server = Server::start();
    let (mut ws, _) = open(&server, "v12.stomp").await;
    connected(&mut ws).await;
    let pid = server.pid() as i32;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let f = text(&frame(&mut ws).await);
    assert!(
        f.starts_with("ERROR\n") && f.contains("shutting down"),
        "{f}"
    );
    assert!(next(&mut ws).await.is_none());
    let status = tokio::time::timeout(Duration::from_secs(15), async {
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .unwrap()
    })
    .await
    .expect("the broker exits");
    assert!(status.success(), "{status:?}");
}
