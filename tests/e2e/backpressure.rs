//! A client that sends frames asking for receipts and never reads them is held back by TCP
//! backpressure: the broker stops reading from it once its unwritten replies reach a bound,
//! instead of queueing replies without limit. Other clients are unaffected.

use std::time::Duration;

use stampede_proto::{Command, Frame, Version};
use stampede_tests::{client::encode, unique, Client, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

#[tokio::test]
async fn a_client_that_never_reads_its_receipts_is_stalled_not_buffered() {
    let server = Server::start();
    let socket = TcpSocket::new_v4().unwrap();
    // A small receive buffer: the broker's writes to us block early.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(server.addr).await.unwrap();
    let connect = Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("host", "x");
    s.write_all(&encode(&connect, Version::V1_2)).await.unwrap();
    let mut hello = [0u8; 64];
    let _ = s.read(&mut hello).await.unwrap();

    // Topic SENDs need no store write, so the broker answers each at once: only the bound on
    // unwritten replies can stop it from reading.
    let q = format!("/topic/{}", unique("flood"));
    let frame = Frame::new(Command::Send)
        .header("destination", q.as_str())
        .header("receipt", "r")
        .body(&b"m"[..]);
    let chunk = encode(&frame, Version::V1_2).repeat(1000);
    let limit: usize = 512 * 1024 * 1024;
    let mut written = 0usize;
    loop {
        // No progress for a second means the broker stopped reading from us.
        match tokio::time::timeout(Duration::from_secs(1), s.write_all(&chunk)).await {
            Ok(Ok(())) => written += chunk.len(),
            Ok(Err(e)) => panic!("connection failed: {e}"),
            Err(_) => break,
        }
        assert!(
            written < limit,
            "the broker kept reading {written} bytes without us reading any reply"
        );
    }
    assert!(
        written < 64 * 1024 * 1024,
        "stalled only after {written} bytes"
    );

    // Everyone else is fine.
    let mut other = Client::connect(server.addr).await;
    other
        .send(&format!("/queue/{}", unique("other")), "ok")
        .await;
}
