//! Queues: naming, FIFO, competing consumers, bodies and headers, MESSAGE headers, prefetch,
//! redelivery of unsettled messages and subscription errors.

use std::collections::HashSet;

use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Server};

use crate::support_q::{bodies, body, connect, connect_version, h, wait_closed};

#[tokio::test]
async fn three_spellings_name_the_same_queue() {
    let server = Server::start();
    let name = unique("spell");
    let mut p = connect(server.addr).await;
    p.send(&format!("/queue/{name}"), "a").await;
    p.send(&format!("/amq/queue/{name}"), "b").await;
    p.send(&name, "c").await;

    let mut c = connect(server.addr).await;
    c.subscribe(&format!("/amq/queue/{name}"), "s1", "auto")
        .await;
    assert_eq!(c.bodies(3).await, ["a", "b", "c"]);
    c.unsubscribe("s1").await;
    c.subscribe(&name, "s2", "auto").await;
    p.send(&format!("/queue/{name}"), "d").await;
    assert_eq!(c.bodies(1).await, ["d"]);
    c.unsubscribe("s2").await;
    c.subscribe(&format!("/queue/{name}"), "s3", "auto").await;
    p.send(&name, "e").await;
    assert_eq!(c.bodies(1).await, ["e"]);
    c.assert_quiet().await;
}

#[tokio::test]
async fn hundred_messages_arrive_in_fifo_order() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("fifo"));
    let mut p = connect(server.addr).await;
    let mut c = connect(server.addr).await;
    // Half wait in the queue before anyone subscribes, half are dispatched live.
    for i in 0..50 {
        p.send(&q, i.to_string()).await;
    }
    c.subscribe(&q, "s", "auto").await;
    for i in 50..100 {
        p.send(&q, i.to_string()).await;
    }
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(c.bodies(100).await, expected);
    c.assert_quiet().await;
}

#[tokio::test]
async fn competing_consumers_get_distinct_messages_and_together_all() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("compete"));
    let mut a = connect(server.addr).await;
    let mut b = connect(server.addr).await;
    a.subscribe(&q, "s", "auto").await;
    b.subscribe(&q, "s", "auto").await;
    let mut p = connect(server.addr).await;
    for i in 0..20 {
        p.send(&q, format!("{i:02}")).await;
    }
    // Every SEND has its RECEIPT, so all 20 are dispatched: each consumer's share is ahead of its
    // marker.
    let got_a = bodies(&a.quiet().await);
    let got_b = bodies(&b.quiet().await);
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "a {got_a:?} b {got_b:?}"
    );
    for got in [&got_a, &got_b] {
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(&sorted, got, "each consumer sees its share in FIFO order");
    }
    let set_a: HashSet<_> = got_a.iter().cloned().collect();
    let set_b: HashSet<_> = got_b.iter().cloned().collect();
    assert!(set_a.is_disjoint(&set_b), "a {got_a:?} b {got_b:?}");
    let all: HashSet<_> = set_a.union(&set_b).cloned().collect();
    let expected: HashSet<_> = (0..20).map(|i| format!("{i:02}")).collect();
    assert_eq!(all, expected);
    assert_eq!(got_a.len() + got_b.len(), 20);
}

#[tokio::test]
async fn message_sent_before_any_subscriber_waits_in_the_queue() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("early"));
    let mut p = connect(server.addr).await;
    p.send(&q, "early").await;
    p.disconnect().await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    assert_eq!(c.bodies(1).await, ["early"]);
}

#[tokio::test]
async fn body_with_nul_bytes_round_trips_with_content_length() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("nul"));
    let payload: &[u8] = b"\0a\0\0b\nc\0";
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    let mut p = connect(server.addr).await;
    p.send(&q, payload).await;
    p.send(&q, "after").await;
    let m = c.message().await;
    assert_eq!(&m.body[..], payload);
    assert_eq!(h(&m, "content-length"), payload.len().to_string());
    assert_eq!(
        c.bodies(1).await,
        ["after"],
        "framing intact after the NULs"
    );
}

#[tokio::test]
async fn one_mib_body_round_trips() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("big"));
    let payload: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut p = connect(server.addr).await;
    p.send(&q, payload.clone()).await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    let m = c.message().await;
    assert_eq!(m.body.len(), payload.len());
    assert!(m.body[..] == payload[..], "body differs");
}

async fn headers_round_trip(version: &str, tricky: &str) {
    let server = Server::start();
    let q = format!("/queue/{}", unique("hdr"));
    let mut c = connect_version(server.addr, version).await;
    c.subscribe(&q, "s", "auto").await;
    let mut p = connect_version(server.addr, version).await;
    p.send_with(
        &q,
        "{}",
        &[
            ("x-tricky", tricky),
            ("x-plain", "plain value"),
            ("content-type", "application/json;charset=utf-8"),
        ],
    )
    .await;
    let m = c.message().await;
    assert_eq!(h(&m, "x-tricky"), tricky);
    assert_eq!(h(&m, "x-plain"), "plain value");
    assert_eq!(h(&m, "content-type"), "application/json;charset=utf-8");
    assert_eq!(body(&m), "{}");
}

#[tokio::test]
async fn escaped_header_values_round_trip_in_1_2() {
    headers_round_trip("1.2", "a:b\nc\\d\re:").await;
}

#[tokio::test]
async fn escaped_header_values_round_trip_in_1_1() {
    headers_round_trip("1.1", "a:b\nc\\d:").await;
}

#[tokio::test]
async fn message_carries_subscription_message_id_destination_and_ack() {
    let server = Server::start();
    let name = unique("mhdr");
    let q = format!("/queue/{name}");
    let mut p = connect(server.addr).await;
    p.send(&q, "one").await;

    let mut c = connect(server.addr).await;
    c.subscribe(&q, "sub-ci", "client-individual").await;
    let m = c.message().await;
    assert_eq!(h(&m, "subscription"), "sub-ci");
    assert_eq!(h(&m, "destination"), q);
    assert!(!h(&m, "message-id").is_empty());
    assert!(!h(&m, "ack").is_empty(), "1.2 client modes carry `ack`");
    assert_eq!(h(&m, "delivery-count"), "1");
    assert_eq!(m.headers.get("redelivered"), None);
    c.ack(&m).await;
    c.unsubscribe("sub-ci").await;

    p.send(&q, "two").await;
    c.subscribe(&q, "sub-auto", "auto").await;
    let m2 = c.message().await;
    assert_eq!(body(&m2), "two");
    assert_eq!(h(&m2, "subscription"), "sub-auto");
    assert_ne!(h(&m2, "message-id"), h(&m, "message-id"));
    assert_eq!(m2.headers.get("ack"), None, "auto mode has nothing to ack");
}

#[tokio::test]
async fn v1_0_subscribe_without_id_uses_the_destination_as_subscription() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("v10"));
    let mut c = connect_version(server.addr, "1.0").await;
    c.request(Frame::new(Command::Subscribe).header("destination", &q))
        .await;
    let mut p = connect(server.addr).await;
    p.send(&q, "hello").await;
    let m = c.message().await;
    assert_eq!(body(&m), "hello");
    assert_eq!(h(&m, "subscription"), q);
    // UNSUBSCRIBE by destination ends it.
    c.request(Frame::new(Command::Unsubscribe).header("destination", &q))
        .await;
    p.send(&q, "later").await;
    c.assert_quiet().await;
}

async fn prefetch_bounds_unacked(header: &str) {
    let server = Server::start();
    let q = format!("/queue/{}", unique("prefetch"));
    let mut p = connect(server.addr).await;
    for b in ["1", "2", "3", "4"] {
        p.send(&q, b).await;
    }
    let mut c = connect(server.addr).await;
    c.subscribe_with(&q, "s", "client-individual", &[(header, "2")])
        .await;
    let first = c.messages(2).await;
    assert_eq!(bodies(&first), ["1", "2"]);
    let extra = c.quiet().await;
    assert!(extra.is_empty(), "{header}: more than 2 unacked: {extra:?}");
    c.ack(&first[0]).await;
    assert_eq!(c.bodies(1).await, ["3"], "{header}: an ACK frees one slot");
    let extra = c.quiet().await;
    assert!(
        extra.is_empty(),
        "{header}: exactly one slot freed: {extra:?}"
    );
}

#[tokio::test]
async fn prefetch_count_bounds_unacked_deliveries() {
    prefetch_bounds_unacked("prefetch-count").await;
}

#[tokio::test]
async fn activemq_prefetch_size_bounds_unacked_deliveries() {
    prefetch_bounds_unacked("activemq.prefetchSize").await;
}

#[tokio::test]
async fn consumer_window_size_bounds_unacked_bytes() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("window"));
    let mut p = connect(server.addr).await;
    // 1000-byte bodies: a 2500-byte window holds three (sent while below it), not four.
    for n in 0..6 {
        p.send(&q, n.to_string().repeat(1000)).await;
    }
    let mut c = connect(server.addr).await;
    c.subscribe_with(
        &q,
        "s",
        "client-individual",
        &[("consumer-window-size", "2500")],
    )
    .await;
    let first = c.messages(3).await;
    c.assert_quiet().await;
    c.ack(&first[0]).await;
    assert_eq!(c.messages(1).await.len(), 1, "an ACK frees its bytes");
    c.assert_quiet().await;

    // 0: one at a time; -1: unbounded (the count's default still applies).
    let mut one = connect(server.addr).await;
    let q0 = format!("/queue/{}", unique("window0"));
    for b in ["a", "b"] {
        p.send(&q0, b).await;
    }
    one.subscribe_with(
        &q0,
        "s",
        "client-individual",
        &[("consumer-window-size", "0")],
    )
    .await;
    let m = one.message().await;
    one.assert_quiet().await;
    one.ack(&m).await;
    assert_eq!(one.bodies(1).await, ["b"]);
    let mut all = connect(server.addr).await;
    all.subscribe_with(
        &q,
        "s",
        "client-individual",
        &[("consumer-window-size", "-1")],
    )
    .await;
    assert_eq!(all.messages(2).await.len(), 2);

    let bad = connect(server.addr).await;
    let err = bad
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", q.as_str())
                .header("id", "x")
                .header("consumer-window-size", "lots"),
        )
        .await;
    assert!(
        h(&err, "message").contains("consumer-window-size"),
        "{err:?}"
    );
}

/// Sends m1..m4, lets a client-individual consumer with prefetch 2 hold m1 and m2, and returns the
/// producer, the consumer and the queue.
async fn hold_two_of_four(
    server: &Server,
) -> (crate::support_q::Conn, crate::support_q::Conn, String) {
    let q = format!("/queue/{}", unique("held"));
    let mut p = connect(server.addr).await;
    for b in ["m1", "m2", "m3", "m4"] {
        p.send(&q, b).await;
    }
    let mut a = connect(server.addr).await;
    a.subscribe_with(&q, "s", "client-individual", &[("prefetch-count", "2")])
        .await;
    assert_eq!(a.bodies(2).await, ["m1", "m2"]);
    (p, a, q)
}

async fn expect_returned_ahead_of_newer(c: &mut crate::support_q::Conn) {
    let got = c.messages(4).await;
    assert_eq!(bodies(&got), ["m1", "m2", "m3", "m4"]);
    for m in &got[..2] {
        assert_eq!(m.headers.get("redelivered"), Some("true"), "{m:?}");
        assert_eq!(h(m, "delivery-count"), "2", "{m:?}");
    }
    for m in &got[2..] {
        assert_eq!(m.headers.get("redelivered"), None, "{m:?}");
        assert_eq!(h(m, "delivery-count"), "1", "{m:?}");
    }
}

#[tokio::test]
async fn unacked_messages_of_a_dropped_connection_return_ahead_of_newer_ones() {
    let server = Server::start();
    let (_p, a, q) = hold_two_of_four(&server).await;
    let session = a.drop_connection();
    wait_closed(&server, &session);
    let mut b = connect(server.addr).await;
    b.subscribe(&q, "s", "client-individual").await;
    expect_returned_ahead_of_newer(&mut b).await;
}

#[tokio::test]
async fn unacked_messages_of_an_unsubscribe_return_ahead_of_newer_ones() {
    let server = Server::start();
    let (_p, mut a, q) = hold_two_of_four(&server).await;
    a.unsubscribe("s").await;
    let mut b = connect(server.addr).await;
    b.subscribe(&q, "s", "client-individual").await;
    expect_returned_ahead_of_newer(&mut b).await;
    a.assert_quiet().await;
}

#[tokio::test]
async fn duplicate_subscription_id_is_an_error() {
    let server = Server::start();
    let mut c = connect(server.addr).await;
    c.subscribe(&format!("/queue/{}", unique("dup")), "same", "auto")
        .await;
    let err = c
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", format!("/queue/{}", unique("dup")))
                .header("id", "same"),
        )
        .await;
    assert!(h(&err, "message").contains("same"), "{err:?}");
}

#[tokio::test]
async fn unsubscribe_of_an_unknown_id_is_an_error() {
    let server = Server::start();
    let c = connect(server.addr).await;
    let err = c
        .expect_error(Frame::new(Command::Unsubscribe).header("id", "never-subscribed"))
        .await;
    assert!(h(&err, "message").contains("never-subscribed"), "{err:?}");
}
