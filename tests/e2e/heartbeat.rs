//! Heart-beating against a broker that offers 200ms: negotiation in CONNECTED, EOLs from an idle
//! broker, and closing a client that promised heart-beats and went quiet. Timing is asserted only
//! as lower bounds (nothing happens too early); the upper bound is the harness deadline.

use std::time::{Duration, Instant};

use stampede_proto::{Command, Frame, Version};
use stampede_tests::{unique, Client, Server, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::errors::{decode_all, frames_until_closed, lossy, read_until_closed, single_error};

/// The interval the broker offers in these tests.
const HB: Duration = Duration::from_millis(200);

fn server() -> Server {
    Server::builder()
        .env("PROTOCOL__HEARTBEAT", "200ms")
        .start()
}

/// Sends a 1.2 CONNECT with `heart_beat` on a raw socket; returns the socket, the CONNECTED frame
/// and any bytes that arrived after it.
async fn raw_connect(server: &Server, heart_beat: &str) -> (TcpStream, Frame, Vec<u8>) {
    let mut s = Client::raw(server.addr).await;
    s.write_all(
        format!("CONNECT\naccept-version:1.2\nhost:x\nheart-beat:{heart_beat}\n\n\0").as_bytes(),
    )
    .await
    .unwrap();
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(i) = bytes.iter().position(|b| *b == 0) {
            break i + 1;
        }
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("CONNECTED in time")
            .unwrap();
        assert!(n > 0, "closed before CONNECTED: {:?}", lossy(&bytes));
        bytes.extend_from_slice(&chunk[..n]);
    };
    let connected = decode_all(&bytes[..end], Version::V1_0).remove(0);
    assert_eq!(connected.command, Command::Connected, "{connected:?}");
    (s, connected, bytes[end..].to_vec())
}

#[tokio::test]
async fn connected_carries_the_negotiated_heart_beats() {
    let server = server();
    // (client cx,cy) → (server sx,sy): each direction is the larger of the two, or 0 if either is 0.
    let cases = [
        (Some("100,100"), "200,200"),
        (Some("0,0"), "0,0"),
        (Some("0,500"), "500,0"),
        (Some("500,0"), "0,500"),
        (Some("1000,300"), "300,1000"),
        (None, "0,0"),
    ];
    for (client, expected) in cases {
        let mut headers = vec![("accept-version", "1.2")];
        if let Some(hb) = client {
            headers.push(("heart-beat", hb));
        }
        let c = Client::connect_with(server.addr, &headers).await.unwrap();
        assert_eq!(
            c.connected.headers.get("heart-beat"),
            Some(expected),
            "client heart-beat {client:?}"
        );
    }
}

#[tokio::test]
async fn idle_broker_sends_eol_heart_beats_only_to_clients_that_asked() {
    let server = server();
    // Wants beats every 100ms: the broker can only do 200ms, so that is the interval.
    let (mut wants, connected, mut rest) = raw_connect(&server, "0,100").await;
    assert_eq!(connected.headers.get("heart-beat"), Some("200,0"));
    // Wants none.
    let (mut none, connected, early) = raw_connect(&server, "0,0").await;
    assert_eq!(connected.headers.get("heart-beat"), Some("0,0"));
    assert!(early.is_empty(), "{early:?}");

    let since_connected = Instant::now();
    let mut arrivals = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        assert!(
            rest.iter().all(|b| *b == b'\n'),
            "idle broker sent something other than EOLs: {:?}",
            lossy(&rest)
        );
        arrivals.resize(arrivals.len() + rest.len(), since_connected.elapsed());
        if arrivals.len() >= 4 {
            break;
        }
        let n = tokio::time::timeout(WAIT, wants.read(&mut chunk))
            .await
            .expect("heart-beat in time")
            .unwrap();
        assert!(n > 0, "broker closed the connection");
        rest = chunk[..n].to_vec();
    }
    // The broker waits a full interval after each write, so four beats take at least four
    // intervals from CONNECTED; one interval of slack covers a late CONNECTED read here.
    assert!(
        arrivals[3] >= 3 * HB,
        "four heart-beats within {:?}: {arrivals:?}",
        arrivals[3]
    );

    // Meanwhile the client that asked for none got nothing: its next bytes are our RECEIPT.
    none.write_all(b"DISCONNECT\nreceipt:bye\n\n\0")
        .await
        .unwrap();
    let bytes = read_until_closed(&mut none).await;
    assert!(bytes.starts_with(b"RECEIPT\n"), "{:?}", lossy(&bytes));
}

#[tokio::test]
async fn client_that_goes_silent_is_sent_an_error_and_closed() {
    let server = server();
    let started = Instant::now();
    // Promises a beat every 100ms; the broker expects one every 200ms and allows 1.5x.
    let (mut s, connected, _) = raw_connect(&server, "100,0").await;
    assert_eq!(connected.headers.get("heart-beat"), Some("0,200"));
    let frames = frames_until_closed(&mut s, Version::V1_2).await;
    let elapsed = started.elapsed();
    single_error(&frames, &["heart-beat"]);
    assert!(
        elapsed >= HB,
        "closed after {elapsed:?}, within one interval"
    );
}

#[tokio::test]
async fn client_that_keeps_sending_heart_beats_stays_connected() {
    let server = server();
    let mut c = Client::connect_with(
        server.addr,
        &[("accept-version", "1.2"), ("heart-beat", "50,0")],
    )
    .await
    .unwrap();
    assert_eq!(c.connected.headers.get("heart-beat"), Some("0,200"));
    // 20 beats 50ms apart: about five intervals, over three times the 300ms the broker tolerates.
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..20 {
        tick.tick().await;
        c.write_raw(b"\n").await;
    }
    tick.tick().await;
    assert!(started.elapsed() >= 4 * HB);
    // Still connected: a receipted SEND goes through (an ERROR or a close would fail here).
    c.send(&unique("/queue/hb"), "still here").await;
}
