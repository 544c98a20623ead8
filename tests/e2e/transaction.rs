//! BEGIN / COMMIT / ABORT: deferred SENDs and ACKs, and transaction errors.

use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Server};

use crate::support_q::{bodies, body, connect, h, wait_closed};

fn begin(tx: &str) -> Frame {
    Frame::new(Command::Begin).header("transaction", tx)
}

fn commit(tx: &str) -> Frame {
    Frame::new(Command::Commit).header("transaction", tx)
}

fn abort(tx: &str) -> Frame {
    Frame::new(Command::Abort).header("transaction", tx)
}

#[tokio::test]
async fn transactional_sends_are_invisible_until_commit_then_arrive_in_order() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("txsend"));
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    let mut p = connect(server.addr).await;
    p.request(begin("t1")).await;
    for b in ["1", "2", "3"] {
        p.send_with(&q, b, &[("transaction", "t1")]).await;
    }
    p.send(&q, "marker").await;
    assert_eq!(c.bodies(1).await, ["marker"], "nothing before COMMIT");
    p.request(commit("t1")).await;
    let got = c.messages(3).await;
    assert_eq!(bodies(&got), ["1", "2", "3"]);
    assert_eq!(
        got[0].headers.get("transaction"),
        None,
        "the transaction header frames the SEND; it is not forwarded"
    );
    c.assert_quiet().await;
}

#[tokio::test]
async fn abort_discards_transactional_sends() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("txabort"));
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    let mut p = connect(server.addr).await;
    p.request(begin("t1")).await;
    p.send_with(&q, "a", &[("transaction", "t1")]).await;
    p.send_with(&q, "b", &[("transaction", "t1")]).await;
    p.request(abort("t1")).await;
    p.send(&q, "marker").await;
    assert_eq!(c.bodies(1).await, ["marker"]);
    c.assert_quiet().await;
    // The id is free again after ABORT.
    p.request(begin("t1")).await;
    p.send_with(&q, "c", &[("transaction", "t1")]).await;
    p.request(commit("t1")).await;
    assert_eq!(c.bodies(1).await, ["c"]);
}

#[tokio::test]
async fn transactional_ack_takes_effect_at_commit() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("txack"));
    let mut p = connect(server.addr).await;
    p.send(&q, "1").await;
    p.send(&q, "2").await;
    let mut c = connect(server.addr).await;
    c.subscribe_with(&q, "s", "client-individual", &[("prefetch-count", "1")])
        .await;
    let m1 = c.message().await;
    assert_eq!(body(&m1), "1");
    c.request(begin("t")).await;
    let ack = c.settle_frame(Command::Ack, &m1).header("transaction", "t");
    c.request(ack).await;
    let extra = c.quiet().await;
    assert!(
        extra.is_empty(),
        "the ACK is pending, so the prefetch slot is still taken: {extra:?}"
    );
    c.request(commit("t")).await;
    assert_eq!(c.bodies(1).await, ["2"], "COMMIT settled message 1");
    let session = c.drop_connection();
    wait_closed(&server, &session);
    let mut b = connect(server.addr).await;
    b.subscribe(&q, "s", "client-individual").await;
    let m = b.message().await;
    assert_eq!(body(&m), "2", "message 1 stays acked");
    b.assert_quiet().await;
}

#[tokio::test]
async fn aborted_ack_leaves_the_message_unacked() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("txackabort"));
    let mut p = connect(server.addr).await;
    p.send(&q, "m").await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let m = c.message().await;
    c.request(begin("t")).await;
    let ack = c.settle_frame(Command::Ack, &m).header("transaction", "t");
    c.request(ack).await;
    c.request(abort("t")).await;
    let session = c.drop_connection();
    wait_closed(&server, &session);
    p.send(&q, "marker").await;
    let mut b = connect(server.addr).await;
    b.subscribe(&q, "s", "client-individual").await;
    let again = b.message().await;
    assert_eq!(body(&again), "m", "redelivered ahead of the marker");
    assert_eq!(h(&again, "redelivered"), "true");
    assert_eq!(h(&again, "delivery-count"), "2");
    assert_eq!(b.bodies(1).await, ["marker"]);
}

#[tokio::test]
async fn commit_of_an_unknown_transaction_is_an_error() {
    let server = Server::start();
    let c = connect(server.addr).await;
    let err = c.expect_error(commit("never-begun")).await;
    assert!(h(&err, "message").contains("never-begun"), "{err:?}");
}

#[tokio::test]
async fn abort_of_an_unknown_transaction_is_an_error() {
    let server = Server::start();
    let c = connect(server.addr).await;
    let err = c.expect_error(abort("never-begun")).await;
    assert!(h(&err, "message").contains("never-begun"), "{err:?}");
}

#[tokio::test]
async fn duplicate_begin_is_an_error() {
    let server = Server::start();
    let mut c = connect(server.addr).await;
    c.request(begin("twice")).await;
    let err = c.expect_error(begin("twice")).await;
    assert!(h(&err, "message").contains("twice"), "{err:?}");
}

#[tokio::test]
async fn send_in_an_unknown_transaction_is_an_error() {
    let server = Server::start();
    let c = connect(server.addr).await;
    let err = c
        .expect_error(
            Frame::new(Command::Send)
                .header("destination", format!("/queue/{}", unique("txunk")))
                .header("transaction", "ghost")
                .body("x"),
        )
        .await;
    assert!(h(&err, "message").contains("ghost"), "{err:?}");
}

#[tokio::test]
async fn a_transaction_open_at_disconnect_is_aborted() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("txdrop"));
    let mut p = connect(server.addr).await;
    p.request(begin("t")).await;
    p.send_with(&q, "never", &[("transaction", "t")]).await;
    let session = p.drop_connection();
    wait_closed(&server, &session);
    let mut other = connect(server.addr).await;
    other.send(&q, "marker").await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    assert_eq!(c.bodies(1).await, ["marker"]);
    c.assert_quiet().await;
}

/// A COMMIT that fails (here: the same message ACKed twice in the transaction) applies nothing:
/// the earlier ACK and the SEND of the transaction are discarded with it.
#[tokio::test]
async fn a_failed_commit_applies_nothing() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("txfail"));
    let mut p = connect(server.addr).await;
    p.send(&q, "m").await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let m = c.message().await;
    c.request(begin("t")).await;
    let ack = c.settle_frame(Command::Ack, &m).header("transaction", "t");
    c.request(ack.clone()).await;
    c.request(ack).await;
    c.send_with(&q, "from-tx", &[("transaction", "t")]).await;
    let err = c.expect_error(commit("t")).await;
    assert!(h(&err, "message").contains(h(&m, "message-id")), "{err:?}");
    p.send(&q, "marker").await;
    let mut b = connect(server.addr).await;
    b.subscribe(&q, "s", "client-individual").await;
    let got = b.messages(2).await;
    assert_eq!(
        bodies(&got),
        ["m", "marker"],
        "the first ACK of the failed COMMIT was not applied"
    );
    assert_eq!(h(&got[0], "redelivered"), "true");
}

/// A NACK with `requeue: false` in a COMMIT that then fails must neither lose the message nor
/// dead-letter it.
#[tokio::test]
async fn a_failed_commit_does_not_lose_a_dead_lettered_message() {
    let server = Server::start();
    let name = unique("txfaildlq");
    let q = format!("/queue/{name}");
    let mut p = connect(server.addr).await;
    p.send(&q, "m").await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let m = c.message().await;
    c.request(begin("t")).await;
    let nack = c
        .settle_frame(Command::Nack, &m)
        .header("transaction", "t")
        .header("requeue", "false");
    c.request(nack).await;
    let ack = c.settle_frame(Command::Ack, &m).header("transaction", "t");
    c.request(ack).await;
    c.expect_error(commit("t")).await;
    p.send(&q, "marker").await;
    p.send(&format!("/queue/DLQ.{name}"), "dlq-marker").await;
    let mut b = connect(server.addr).await;
    b.subscribe(&q, "s", "auto").await;
    assert_eq!(b.bodies(2).await, ["m", "marker"], "back in its queue");
    b.subscribe(&format!("/queue/DLQ.{name}"), "d", "auto")
        .await;
    assert_eq!(b.bodies(1).await, ["dlq-marker"], "not dead-lettered");
}
