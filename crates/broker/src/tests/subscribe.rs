//! Subscribing and settling: competing consumers, unsubscribing, the durability of client-ack
//! deliveries, late and stale settles.

use super::*;
use crate::BrokerError;

#[tokio::test]
async fn unsubscribing_returns_unacked_messages_for_the_next_consumer() {
    let env = Env::new();
    for b in ["1", "2"] {
        send(&env.broker, "/queue/q", b).await;
    }
    let mut a = env.conn();
    a.subscribe("/queue/q", "s", AckMode::ClientIndividual);
    assert_eq!(a.deliveries().len(), 2);
    a.unsubscribe("s");
    let mut b = env.conn();
    b.subscribe("/queue/q", "s", AckMode::ClientIndividual);
    let got = b.deliveries();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|d| d.redelivered()));
}

#[tokio::test]
async fn dropping_a_connection_requeues_and_detaches_topic_subscribers() {
    let env = Env::new();
    let mut a = env.conn();
    a.subscribe("/topic/t", "1", AckMode::Auto);
    a.subscribe("/queue/q", "2", AckMode::Client);
    send(&env.broker, "/queue/q", "m").await;
    assert_eq!(env.broker.find_topic("t").unwrap().subscriber_count(), 1);
    drop(a);
    assert!(
        env.broker.find_topic("t").is_none(),
        "a topic with no subscribers and no bindings leaves the registry"
    );
    assert_eq!(env.depth("q"), (1, 0, 0));
}

#[tokio::test]
async fn a_client_ack_delivery_waits_on_the_commit_of_its_count_not_on_an_extra_one() {
    let env = Env::new();
    send(&env.broker, "/queue/q", "m").await;
    let before = env.store.commits();
    let mut c = env.conn();
    c.subscribe("/queue/q", "q", AckMode::Client);
    let d = c.deliveries().pop().unwrap();
    let gate = d
        .durable
        .clone()
        .expect("a durable client-ack delivery is gated");
    assert_eq!(
        env.store.commits() - before,
        1,
        "one commit carries the delivery count and opens the gate"
    );
    gate.await.expect("open once the count is committed");
    c.subscribe("/topic/t", "t", AckMode::Client);
    send(&env.broker, "/topic/t", "x").await;
    let topic = c.deliveries().pop().unwrap();
    assert!(
        topic.durable.is_none(),
        "nothing to wait for on a transient queue"
    );
}

#[tokio::test]
async fn acks_delete_durably_and_unknown_or_repeated_ones_are_errors() {
    let env = Env::new();
    send(&env.broker, "q", "m").await;
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::ClientIndividual);
    let d = c.deliveries().pop().unwrap();
    let sub = &c.subs["1"];
    let bogus = DeliveryTag::parse("99-1").unwrap();
    assert!(matches!(
        sub.settle(&bogus, Outcome::Ack),
        Err(BrokerError::UnknownMessage(_))
    ));
    c.settle(&d, Outcome::Ack).unwrap().await.unwrap();
    assert_eq!(env.stored(), 0);
    assert!(
        c.settle(&d, Outcome::Ack).is_err(),
        "second ack of the same message"
    );
}

#[tokio::test]
async fn nack_without_requeue_dead_letters_with_its_reason() {
    let env = Env::new();
    send(&env.broker, "/queue/orders", "m").await;
    let mut c = env.conn();
    c.subscribe("/queue/orders", "1", AckMode::Client);
    let d = c.deliveries().pop().unwrap();
    c.settle(&d, Outcome::Nack { requeue: false })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(env.depth("orders"), (0, 0, 1));
    assert_eq!(env.stored(), 1, "moved, not copied");
    c.subscribe("/queue/DLQ.orders", "2", AckMode::ClientIndividual);
    let dead = c.deliveries().pop().unwrap();
    assert_eq!(dead.record.header("x-death-reason"), Some("nack"));
    assert_eq!(
        dead.record.header("x-original-destination"),
        Some("/queue/orders")
    );
}

#[tokio::test]
async fn a_stale_token_of_an_earlier_delivery_is_rejected() {
    let env = Env::new();
    send(&env.broker, "q", "m").await;
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::ClientIndividual);
    let first = c.deliveries().pop().unwrap();
    c.settle(&first, Outcome::Nack { requeue: true })
        .unwrap()
        .await
        .unwrap();
    let second = c.deliveries().pop().unwrap();
    assert_eq!(second.delivery_count, 2);
    assert!(c.settle(&first, Outcome::Ack).is_err());
    c.settle(&second, Outcome::Ack).unwrap().await.unwrap();
}

#[tokio::test]
async fn a_late_ack_after_the_visibility_timeout_is_harmless() {
    let env = Env::with(|_, p| {
        p.defaults.visibility_timeout = Some(std::time::Duration::from_secs(5));
    });
    send(&env.broker, "q", "m").await;
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::ClientIndividual);
    let first = c.deliveries().pop().unwrap();
    env.advance(5_000);
    let again = c.deliveries().pop().expect("redelivered after the timeout");
    assert_eq!(again.delivery_count, 2);
    let sub = &c.subs["1"];
    let tag = DeliveryTag::parse(&first.ack_id().unwrap()).unwrap();
    assert!(sub.holds(&tag), "it did hold it");
    drop(
        sub.settle(&tag, Outcome::Ack)
            .expect("a late ack is not an error"),
    );
    assert_eq!(env.stored(), 1, "the late ack settles nothing");
    c.settle(&again, Outcome::Ack).unwrap().await.unwrap();
    assert_eq!(env.stored(), 0);
}
