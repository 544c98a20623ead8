//! CONNECT/STOMP negotiation and the CONNECTED frame.

use stampede_proto::{Command, Frame};
use stampede_tests::{Client, Server};

#[tokio::test]
async fn negotiates_the_highest_common_version() {
    let server = Server::start();
    for (accept, expected) in [
        ("1.0,1.1,1.2", "1.2"),
        ("1.1", "1.1"),
        ("1.0", "1.0"),
        ("1.2,1.1", "1.2"),
    ] {
        let c = Client::connect_with(server.addr, &[("accept-version", accept), ("host", "x")])
            .await
            .unwrap();
        assert_eq!(
            c.connected.headers.get("version"),
            Some(expected),
            "accept {accept}"
        );
    }
    let c = Client::connect_with(server.addr, &[]).await.unwrap();
    assert_eq!(
        c.connected.headers.get("version"),
        Some("1.0"),
        "no accept-version is 1.0"
    );
}

#[tokio::test]
async fn connected_names_server_session_and_heart_beat() {
    let server = Server::start();
    let a = Client::connect(server.addr).await;
    let b = Client::connect(server.addr).await;
    let server_header = a.connected.headers.get("server").unwrap();
    assert!(server_header.starts_with("Stampede/"), "{server_header}");
    assert_eq!(a.connected.headers.get("heart-beat"), Some("0,0"));
    assert_ne!(
        a.connected.headers.get("session"),
        b.connected.headers.get("session")
    );
}

#[tokio::test]
async fn stomp_frame_with_credentials_and_any_host_is_accepted_in_open_mode() {
    let server = Server::start();
    let mut raw = Client::raw(server.addr).await;
    let frame = Frame::new(Command::Stomp)
        .header("accept-version", "1.2")
        .header("host", "cell-1.queue.messaging.example.oci.oraclecloud.com")
        .header("login", "tenancy/user")
        .header("passcode", "c2VjcmV0");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(&stampede_tests::client::encode(
        &frame,
        stampede_proto::Version::V1_2,
    ))
    .await
    .unwrap();
    let mut buf = vec![0u8; 512];
    let n = raw.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"CONNECTED\n"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn unsupported_version_is_refused_with_an_error() {
    let server = Server::start();
    let err = Client::connect_with(server.addr, &[("accept-version", "2.0")])
        .await
        .err()
        .expect("refused");
    assert_eq!(err.command, Command::Error);
    assert!(err.headers.get("message").unwrap().contains("1.0,1.1,1.2"));
}
