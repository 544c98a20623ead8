//! ACK modes, ACK/NACK header forms per version, NACK redelivery and dead-lettering, and the
//! ERROR for an ACK of an unknown message.

use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Server};

use crate::support_q::{bodies, body, connect, connect_version, h, wait_closed, Conn};

/// Sends `marker` to `q` and subscribes a fresh consumer; returns it with the bodies it got up to
/// and including the marker, which shows exactly what was left in the queue.
async fn leftovers(server: &Server, q: &str) -> (Conn, Vec<String>) {
    let mut p = connect(server.addr).await;
    p.send(q, "marker").await;
    let mut c = connect(server.addr).await;
    c.subscribe(q, "check", "client-individual").await;
    let mut got = Vec::new();
    loop {
        let b = body(&c.message().await);
        let done = b == "marker";
        got.push(b);
        if done {
            return (c, got);
        }
    }
}

#[tokio::test]
async fn auto_acked_messages_are_settled_when_delivered() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("auto"));
    let mut p = connect(server.addr).await;
    p.send(&q, "1").await;
    p.send(&q, "2").await;
    let mut a = connect(server.addr).await;
    a.subscribe(&q, "s", "auto").await;
    assert_eq!(a.bodies(2).await, ["1", "2"]);
    let session = a.drop_connection();
    wait_closed(&server, &session);
    let (_, got) = leftovers(&server, &q).await;
    assert_eq!(got, ["marker"]);
}

#[tokio::test]
async fn client_ack_is_cumulative() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("cumul"));
    let mut p = connect(server.addr).await;
    for b in ["1", "2", "3", "4", "5"] {
        p.send(&q, b).await;
    }
    let mut a = connect(server.addr).await;
    a.subscribe(&q, "s", "client").await;
    let got = a.messages(5).await;
    assert_eq!(bodies(&got), ["1", "2", "3", "4", "5"]);
    a.ack(&got[2]).await;
    a.unsubscribe("s").await;
    let (_, left) = leftovers(&server, &q).await;
    assert_eq!(left, ["4", "5", "marker"], "ACK of 3 settled 1..3 only");
}

#[tokio::test]
async fn client_individual_ack_settles_only_the_named_message() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("indiv"));
    let mut p = connect(server.addr).await;
    for b in ["1", "2", "3"] {
        p.send(&q, b).await;
    }
    let mut a = connect(server.addr).await;
    a.subscribe(&q, "s", "client-individual").await;
    let got = a.messages(3).await;
    a.ack(&got[1]).await;
    a.unsubscribe("s").await;
    let (_, left) = leftovers(&server, &q).await;
    assert_eq!(left, ["1", "3", "marker"]);
}

/// A client of `version` acks the first of two messages the way its version names it.
async fn ack_in_version(version: &str, ack_mode: &str) {
    let server = Server::start();
    let q = format!("/queue/{}", unique("ver"));
    let mut p = connect(server.addr).await;
    p.send(&q, "1").await;
    p.send(&q, "2").await;
    let mut a = connect_version(server.addr, version).await;
    a.subscribe(&q, "s", ack_mode).await;
    let got = a.messages(2).await;
    if version == "1.2" {
        assert_ne!(h(&got[0], "ack"), "", "1.2 MESSAGE carries `ack`");
    } else {
        assert_eq!(got[0].headers.get("ack"), None, "`ack` header is 1.2 only");
    }
    // settle_frame picks `id` (1.2), `message-id`+`subscription` (1.1) or `message-id` (1.0).
    a.ack(&got[0]).await;
    a.unsubscribe("s").await;
    let (_, left) = leftovers(&server, &q).await;
    assert_eq!(left, ["2", "marker"], "{version}");
}

#[tokio::test]
async fn ack_by_id_in_1_2() {
    ack_in_version("1.2", "client-individual").await;
}

#[tokio::test]
async fn ack_by_message_id_and_subscription_in_1_1() {
    ack_in_version("1.1", "client-individual").await;
}

#[tokio::test]
async fn ack_by_message_id_alone_in_1_0() {
    ack_in_version("1.0", "client").await;
}

#[tokio::test]
async fn nack_redelivers_at_once_with_redelivered_and_delivery_count() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("nack"));
    let mut p = connect(server.addr).await;
    p.send(&q, "m").await;
    let mut a = connect(server.addr).await;
    a.subscribe(&q, "s", "client-individual").await;
    let first = a.message().await;
    assert_eq!(h(&first, "delivery-count"), "1");
    a.nack(&first).await;
    let again = a.message().await;
    assert_eq!(body(&again), "m");
    assert_eq!(h(&again, "message-id"), h(&first, "message-id"));
    assert_eq!(h(&again, "redelivered"), "true");
    assert_eq!(h(&again, "delivery-count"), "2");
    a.ack(&again).await;
    a.unsubscribe("s").await;
    let (_, left) = leftovers(&server, &q).await;
    assert_eq!(left, ["marker"]);
}

#[tokio::test]
async fn nack_without_requeue_moves_the_message_to_the_dead_letter_queue() {
    let server = Server::start();
    let name = unique("dlq");
    let q = format!("/queue/{name}");
    let payload: &[u8] = b"body\0with nul";
    let mut p = connect(server.addr).await;
    p.send_with(
        &q,
        payload,
        &[("x-custom", "kept"), ("content-type", "text/x")],
    )
    .await;
    let mut a = connect(server.addr).await;
    a.subscribe(&q, "s", "client-individual").await;
    let m = a.message().await;
    let nack = a.settle_frame(Command::Nack, &m).header("requeue", "false");
    a.request(nack).await;
    a.assert_quiet().await;

    a.subscribe(&format!("/queue/DLQ.{name}"), "dead", "auto")
        .await;
    let dead = a.message().await;
    assert_eq!(&dead.body[..], payload);
    assert_eq!(h(&dead, "x-original-destination"), q);
    assert_eq!(h(&dead, "x-death-reason"), "nack");
    assert_eq!(h(&dead, "x-custom"), "kept");
    assert_eq!(h(&dead, "content-type"), "text/x");

    a.unsubscribe("s").await;
    let (_, left) = leftovers(&server, &q).await;
    assert_eq!(left, ["marker"], "gone from the source queue");
}

#[tokio::test]
async fn ack_of_an_unknown_id_is_an_error_and_releases_held_messages() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("bogus"));
    let mut p = connect(server.addr).await;
    p.send(&q, "1").await;
    p.send(&q, "2").await;
    let mut a = connect(server.addr).await;
    a.subscribe(&q, "s", "client-individual").await;
    assert_eq!(a.bodies(2).await, ["1", "2"]);
    let err = a
        .expect_error(Frame::new(Command::Ack).header("id", "no-such-ack-42"))
        .await;
    assert!(
        h(&err, "message").contains("no-such-ack-42"),
        "the ERROR names the id: {err:?}"
    );
    let mut b = connect(server.addr).await;
    b.subscribe(&q, "s", "client-individual").await;
    let got = b.messages(2).await;
    assert_eq!(bodies(&got), ["1", "2"]);
    assert!(got.iter().all(|m| h(m, "redelivered") == "true"));
}

/// Two subscriptions of one connection compete for one queue; an ACK that names only the message
/// (1.2 `id`, 1.0 `message-id`) must settle it on the subscription that holds it.
async fn ack_with_two_subscriptions_on_one_queue(version: &str) {
    let server = Server::start();
    let q = format!("/queue/{}", unique("twosubs"));
    let mut a = connect_version(server.addr, version).await;
    a.subscribe(&q, "s1", "client-individual").await;
    a.subscribe(&q, "s2", "client-individual").await;
    let mut p = connect(server.addr).await;
    p.send(&q, "1").await;
    p.send(&q, "2").await;
    let got = a.messages(2).await;
    let subs: std::collections::HashSet<_> = got.iter().map(|m| h(m, "subscription")).collect();
    assert_eq!(subs.len(), 2, "one message per subscription: {got:?}");
    for m in &got {
        a.ack(m).await;
    }
    a.unsubscribe("s1").await;
    a.unsubscribe("s2").await;
    let (_, left) = leftovers(&server, &q).await;
    assert_eq!(left, ["marker"]);
}

#[tokio::test]
async fn ack_by_id_finds_the_holding_subscription_among_two_on_one_queue() {
    ack_with_two_subscriptions_on_one_queue("1.2").await;
}

#[tokio::test]
async fn ack_by_message_id_finds_the_holding_subscription_among_two_on_one_queue_in_1_0() {
    ack_with_two_subscriptions_on_one_queue("1.0").await;
}

#[tokio::test]
async fn a_nacked_message_waits_out_the_redelivery_delay_or_its_x_delay() {
    let server = Server::builder()
        .env("QUEUES__DEFAULTS__REDELIVERY_DELAY", "300ms")
        .start();
    let q = format!("/queue/{}", unique("backoff"));
    let mut c = connect(server.addr).await;
    c.send(&q, "m").await;
    c.subscribe(&q, "s", "client-individual").await;
    let m = c.message().await;
    c.nack(&m).await;
    let nacked = std::time::Instant::now();
    let again = c.message().await;
    assert!(
        nacked.elapsed() >= std::time::Duration::from_millis(300),
        "redelivered after {:?}, before the 300 ms delay",
        nacked.elapsed()
    );
    assert_eq!(h(&again, "delivery-count"), "2");

    // x-delay on the NACK: a long one keeps it delayed (counted apart from visible), 0 at once.
    let long = c
        .settle_frame(Command::Nack, &again)
        .header("x-delay", "60000");
    c.request(long).await;
    let name = q.trim_start_matches("/queue/");
    let (_, shown) = crate::admin_api::get(&server, &format!("/api/queues/{name}"), None).await;
    assert_eq!(
        (shown["delayed"].as_u64(), shown["visible"].as_u64()),
        (Some(1), Some(0)),
        "{shown}"
    );
    c.send(&q, "n").await;
    let n = c.message().await;
    assert_eq!(
        body(&n),
        "n",
        "newer messages are not held up behind a delayed one"
    );
    let now = c.settle_frame(Command::Nack, &n).header("x-delay", "0");
    c.request(now).await;
    assert_eq!(body(&c.message().await), "n");

    for bad in ["abc", "-5", "99999999999"] {
        let mut b = connect(server.addr).await;
        b.subscribe(&q, "b", "client-individual").await;
        let err = b
            .expect_error(
                Frame::new(Command::Nack)
                    .header("id", "1-1-1")
                    .header("x-delay", bad),
            )
            .await;
        assert!(h(&err, "message").contains("x-delay"), "{bad}: {err:?}");
    }
}
