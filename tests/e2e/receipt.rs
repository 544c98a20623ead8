//! `receipt` on every client frame, and `receipt-id` on the ERROR for a frame that asked for one.

use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Server};

use crate::support_q::{body, connect, h};

#[tokio::test]
async fn every_client_frame_type_gets_a_receipt_with_its_id() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("rcpt"));
    let mut c = connect(server.addr).await;
    // request_id asserts the RECEIPT carries exactly this receipt-id.
    c.request_id(
        Frame::new(Command::Send)
            .header("destination", &q)
            .body("1"),
        "r-send",
    )
    .await;
    c.request_id(
        Frame::new(Command::Send)
            .header("destination", &q)
            .body("2"),
        "r-send-2",
    )
    .await;
    c.request_id(
        Frame::new(Command::Subscribe)
            .header("destination", &q)
            .header("id", "s")
            .header("ack", "client-individual"),
        "r-subscribe",
    )
    .await;
    let m1 = c.message().await;
    let m2 = c.message().await;
    assert_eq!((body(&m1).as_str(), body(&m2).as_str()), ("1", "2"));
    c.request_id(c.settle_frame(Command::Ack, &m1), "r-ack")
        .await;
    c.request_id(c.settle_frame(Command::Nack, &m2), "r-nack")
        .await;
    let again = c.message().await;
    assert_eq!(body(&again), "2");
    c.request_id(
        Frame::new(Command::Begin).header("transaction", "t1"),
        "r-begin",
    )
    .await;
    c.request_id(
        Frame::new(Command::Commit).header("transaction", "t1"),
        "r-commit",
    )
    .await;
    c.request_id(
        Frame::new(Command::Begin).header("transaction", "t2"),
        "r-begin-2",
    )
    .await;
    c.request_id(
        Frame::new(Command::Abort).header("transaction", "t2"),
        "r-abort",
    )
    .await;
    c.request_id(
        Frame::new(Command::Unsubscribe).header("id", "s"),
        "r-unsubscribe",
    )
    .await;
    // DISCONNECT: RECEIPT, then the broker closes the connection.
    c.request_id(Frame::new(Command::Disconnect), "r-disconnect")
        .await;
    c.assert_closed().await;
}

#[tokio::test]
async fn error_for_a_broker_refusal_carries_the_receipt_id() {
    let server = Server::start();
    let mut c = connect(server.addr).await;
    c.send_frame(
        Frame::new(Command::Unsubscribe)
            .header("id", "nope")
            .header("receipt", "r-bad-unsub"),
    )
    .await;
    let err = c.recv().await;
    assert_eq!(err.command, Command::Error, "{err:?}");
    assert_eq!(h(&err, "receipt-id"), "r-bad-unsub");
    assert!(!h(&err, "message").is_empty());
    c.assert_closed().await;
}

#[tokio::test]
async fn error_for_a_malformed_frame_carries_the_receipt_id() {
    let server = Server::start();
    let mut c = connect(server.addr).await;
    // SEND without a destination fails validation, before the broker sees it.
    c.send_frame(
        Frame::new(Command::Send)
            .header("receipt", "r-no-dest")
            .body("x"),
    )
    .await;
    let err = c.recv().await;
    assert_eq!(err.command, Command::Error, "{err:?}");
    assert_eq!(h(&err, "receipt-id"), "r-no-dest");
    assert!(h(&err, "message").contains("destination"), "{err:?}");
    c.assert_closed().await;
}

#[tokio::test]
async fn error_for_a_frame_without_receipt_has_no_receipt_id() {
    let server = Server::start();
    let c = connect(server.addr).await;
    let err = c
        .expect_error(Frame::new(Command::Commit).header("transaction", "nope"))
        .await;
    assert_eq!(err.headers.get("receipt-id"), None, "{err:?}");
}
