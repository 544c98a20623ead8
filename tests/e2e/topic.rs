//! Topics: a copy for every current subscriber, nothing for late or departed ones, client acks.

use stampede_tests::{unique, Server};

use crate::support_q::{body, connect, h};

#[tokio::test]
async fn every_current_subscriber_gets_a_copy() {
    let server = Server::start();
    let t = format!("/topic/{}", unique("fan"));
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut c = connect(server.addr).await;
        c.subscribe(&t, &format!("s{i}"), "auto").await;
        subs.push(c);
    }
    let mut p = connect(server.addr).await;
    for b in ["1", "2", "3"] {
        p.send(&t, b).await;
    }
    for (i, c) in subs.iter_mut().enumerate() {
        let got = c.messages(3).await;
        assert_eq!(
            crate::support_q::bodies(&got),
            ["1", "2", "3"],
            "subscriber {i}"
        );
        assert_eq!(h(&got[0], "subscription"), format!("s{i}"));
        assert_eq!(h(&got[0], "destination"), t);
        c.assert_quiet().await;
    }
}

#[tokio::test]
async fn a_late_subscriber_does_not_get_earlier_messages() {
    let server = Server::start();
    let t = format!("/topic/{}", unique("late"));
    let mut early = connect(server.addr).await;
    early.subscribe(&t, "s", "auto").await;
    let mut p = connect(server.addr).await;
    p.send(&t, "before").await;
    let mut late = connect(server.addr).await;
    late.subscribe(&t, "s", "auto").await;
    p.send(&t, "after").await;
    assert_eq!(early.bodies(2).await, ["before", "after"]);
    assert_eq!(
        late.bodies(1).await,
        ["after"],
        "its first message is the one sent after it joined"
    );
    late.assert_quiet().await;
}

#[tokio::test]
async fn an_unsubscribed_subscriber_gets_nothing_more() {
    let server = Server::start();
    let t = format!("/topic/{}", unique("unsub"));
    let mut a = connect(server.addr).await;
    let mut b = connect(server.addr).await;
    a.subscribe(&t, "s", "auto").await;
    b.subscribe(&t, "s", "auto").await;
    let mut p = connect(server.addr).await;
    p.send(&t, "1").await;
    assert_eq!(a.bodies(1).await, ["1"]);
    a.unsubscribe("s").await;
    p.send(&t, "2").await;
    assert_eq!(b.bodies(2).await, ["1", "2"], "the topic still publishes");
    a.assert_quiet().await;
}

#[tokio::test]
async fn topic_subscription_with_client_ack() {
    let server = Server::start();
    let t = format!("/topic/{}", unique("tack"));
    let mut c = connect(server.addr).await;
    c.subscribe_with(&t, "s", "client-individual", &[("prefetch-count", "1")])
        .await;
    let mut p = connect(server.addr).await;
    p.send(&t, "1").await;
    p.send(&t, "2").await;
    let m1 = c.message().await;
    assert_eq!(body(&m1), "1");
    assert!(!h(&m1, "ack").is_empty());
    let extra = c.quiet().await;
    assert!(
        extra.is_empty(),
        "prefetch 1 holds back the second: {extra:?}"
    );
    // NACK redelivers at once, as on a queue.
    c.nack(&m1).await;
    let again = c.message().await;
    assert_eq!(body(&again), "1");
    assert_eq!(h(&again, "redelivered"), "true");
    assert_eq!(h(&again, "delivery-count"), "2");
    c.ack(&again).await;
    let m2 = c.message().await;
    assert_eq!(body(&m2), "2", "the ACK freed the slot");
    c.ack(&m2).await;
    c.assert_quiet().await;
}
