//! Publishing to queues and topics: stored, then visible; copies to topic subscribers; limits.

use super::*;
use crate::BrokerError;

#[tokio::test]
async fn a_message_to_a_queue_is_stored_then_delivered() {
    let env = Env::new();
    send(&env.broker, "/queue/a", "hello").await;
    assert_eq!(env.stored(), 1);
    let mut c = env.conn();
    c.subscribe("/queue/a", "1", AckMode::Auto);
    assert_eq!(c.bodies(), ["hello"]);
    assert_eq!(
        env.stored(),
        0,
        "an auto-ack delivery is settled once written"
    );
}

#[tokio::test]
async fn topic_copies_go_to_current_subscribers_only_and_are_not_stored() {
    let env = Env::new();
    send(&env.broker, "/topic/t", "before").await;
    let mut a = env.conn();
    let mut b = env.conn();
    a.subscribe("/topic/t", "1", AckMode::Auto);
    b.subscribe("/topic/t", "x", AckMode::Auto);
    send(&env.broker, "/topic/t", "after").await;
    assert_eq!(a.bodies(), ["after"]);
    assert_eq!(b.bodies(), ["after"]);
    assert_eq!(env.stored(), 0);
}

#[tokio::test]
async fn a_full_queue_refuses_with_an_error_naming_the_limit() {
    let env = Env::with(|_, p| p.defaults.max_messages = Some(2));
    send(&env.broker, "q", "1").await;
    send(&env.broker, "q", "2").await;
    let err = env
        .broker
        .publish(&to("q"), message("3"))
        .await
        .expect_err("full");
    assert!(
        matches!(
            err,
            BrokerError::QueueFull {
                limit: "max_messages",
                value: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(env.stored(), 2);
}

#[tokio::test]
async fn the_storage_alarm_refuses_queue_messages_and_clears() {
    let env = Env::new();
    env.broker
        .set_storage_alarm(Some("disk nearly full".into()));
    let err = env
        .broker
        .publish(&to("q"), message("m"))
        .await
        .unwrap_err();
    assert!(err.is_storage(), "{err}");
    send(&env.broker, "/topic/nobody", "fine").await;
    env.broker.set_storage_alarm(None);
    send(&env.broker, "q", "m").await;
    assert_eq!(env.stored(), 1);
}

#[tokio::test]
async fn an_expired_message_is_kept_in_the_dead_letter_queue_without_its_expiry() {
    let env = Env::new();
    let mut m = message("m");
    m.expires_at_ms = Some(T0 + 500);
    env.broker
        .publish(&to("q"), m)
        .await
        .unwrap()
        .await
        .unwrap();
    env.advance(500);
    env.advance(60_000);
    assert_eq!(env.depth("q"), (0, 0, 0));
    assert_eq!(env.depth("DLQ.q"), (1, 0, 0));
    assert_eq!(env.stored(), 1, "moved, not copied");
    let mut c = env.conn();
    c.subscribe("DLQ.q", "1", AckMode::ClientIndividual);
    let d = c.deliveries().pop().expect("dead letter delivered");
    assert_eq!(d.record.header("x-death-reason"), Some("expired"));
    assert_eq!(d.record.header("x-original-destination"), Some("/queue/q"));
    assert_eq!(d.record.expires_at_ms, None);
}

#[tokio::test]
async fn a_non_persistent_message_within_the_window_never_touches_the_store() {
    let env = Env::new();
    let mut fast = message("fast");
    fast.persistent = false;
    env.broker
        .publish(&to("q"), fast)
        .await
        .unwrap()
        .await
        .unwrap();
    send(&env.broker, "q", "safe").await;
    assert_eq!(env.stored(), 1, "only the persistent one is stored");
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::ClientIndividual);
    let got = c.deliveries();
    assert_eq!(got.len(), 2);
    assert!(got[0].durable.is_none(), "no delivery count to wait for");
    assert!(got[1].durable.is_some());
    for d in &got {
        c.settle(d, Outcome::Ack).unwrap().await.unwrap();
    }
    assert_eq!(env.stored(), 0);
    assert_eq!(env.depth("q"), (0, 0, 1), "empty, one consumer");
}
