//! What survives a restart besides messages: queue numbers (so message ids are stable), settings
//! changed at run time, dead-letter routing, topic bindings, durable subscriptions, and the
//! removal of queues.

use super::*;
use crate::SettingsOverride;
use std::time::Duration;

#[tokio::test]
async fn message_ids_are_stable_across_restarts_and_never_reused() {
    let env = Env::new();
    send(&env.broker, "ids", "first").await;
    send(&env.broker, "other", "x").await;
    send(&env.broker, "ids", "second").await;
    let mut c = env.conn();
    c.subscribe("ids", "1", AckMode::ClientIndividual);
    let before: Vec<String> = c.deliveries().iter().map(|d| d.message_id()).collect();
    drop(c);
    let again = env.restart();
    let mut c = Conn::new(&again);
    c.subscribe("ids", "1", AckMode::ClientIndividual);
    let got = c.deliveries();
    let after: Vec<String> = got.iter().map(|d| d.message_id()).collect();
    assert_eq!(after, before, "the same messages keep their ids");
    for d in &got {
        c.settle(d, Outcome::Ack).unwrap().await.unwrap();
    }
    drop(c);
    let third = env.restart();
    send(&third, "ids", "third").await;
    let mut c = Conn::new(&third);
    c.subscribe("ids", "1", AckMode::ClientIndividual);
    let new_id = c.deliveries().pop().unwrap().message_id();
    assert!(
        !before.contains(&new_id),
        "{new_id} was used before a restart"
    );
}

#[tokio::test]
async fn settings_changed_at_run_time_outlive_a_restart_over_the_configuration() {
    let env = Env::with(|_, p| p.defaults.max_deliveries = Some(5));
    let change = SettingsOverride {
        max_deliveries: Some(Some(2)),
        visibility_timeout: Some(None),
        ..SettingsOverride::default()
    };
    env.broker
        .update_queue("tuned", &change)
        .unwrap()
        .await
        .unwrap();
    let view = env.broker.queue_view("tuned").unwrap();
    assert_eq!(view.settings.max_deliveries, Some(2));
    assert_eq!(view.settings.visibility_timeout, None);
    assert_eq!(
        view.settings.retention,
        Duration::from_secs(7 * 86_400),
        "what the change leaves alone keeps the configuration's value"
    );
    let again = env.restart();
    let view = again.queue_view("tuned").unwrap();
    assert_eq!(view.settings.max_deliveries, Some(2));
    assert_eq!(view.settings.visibility_timeout, None);
}

#[tokio::test]
async fn a_dead_letter_queue_named_by_a_subscriber_is_the_queues_one_source_of_truth() {
    let env = Env::new();
    send(&env.broker, "work", "m").await;
    let mut c = env.conn();
    c.subscribe_with("work", "1", AckMode::ClientIndividual, |s| {
        s.dead_letter_queue = Some("parked".into())
    });
    let d = c.deliveries().pop().unwrap();
    c.settle(&d, Outcome::Nack { requeue: false })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(env.depth("parked"), (1, 0, 0));
    let view = env.broker.queue_view("work").unwrap();
    assert_eq!(view.dead_letter_queue.as_deref(), Some("parked"));
    drop(c);
    let again = env.restart();
    assert_eq!(
        again
            .queue_view("work")
            .unwrap()
            .dead_letter_queue
            .as_deref(),
        Some("parked"),
        "kept across a restart"
    );
}

#[tokio::test]
async fn a_bound_queue_stores_topic_messages_while_nobody_listens_and_after_a_restart() {
    let env = Env::new();
    env.broker
        .bind("prices", "prices.audit")
        .unwrap()
        .await
        .unwrap();
    let mut live = env.conn();
    live.subscribe("/topic/prices", "1", AckMode::Auto);
    let commits = env.store.commits();
    send(&env.broker, "/topic/prices", "p1").await;
    assert_eq!(
        env.store.commits() - commits,
        1,
        "the fan-out is one commit"
    );
    assert_eq!(live.bodies(), ["p1"]);
    assert_eq!(env.depth("prices.audit"), (1, 0, 0));
    drop(live);
    let again = env.restart();
    send(&again, "/topic/prices", "p2").await;
    assert_eq!(depth(&again, "prices.audit"), (2, 0, 0));
    again.unbind("prices", "prices.audit").await.unwrap();
    send(&again, "/topic/prices", "p3").await;
    assert_eq!(
        depth(&again, "prices.audit"),
        (2, 0, 0),
        "unbound: no more copies"
    );
    let third = env.restart();
    send(&third, "/topic/prices", "p4").await;
    assert_eq!(
        depth(&third, "prices.audit"),
        (2, 0, 0),
        "the unbinding was kept"
    );
}

#[tokio::test]
async fn a_full_bound_queue_refuses_the_whole_topic_message() {
    let env = Env::with(|_, p| {
        p.patterns.push((
            "small".into(),
            SettingsOverride {
                max_messages: Some(Some(1)),
                ..SettingsOverride::default()
            },
        ))
    });
    env.broker.bind("t", "small").unwrap().await.unwrap();
    env.broker.bind("t", "big").unwrap().await.unwrap();
    send(&env.broker, "/topic/t", "1").await;
    assert!(env
        .broker
        .publish(&to("/topic/t"), message("2"))
        .await
        .is_err());
    assert_eq!(
        (env.depth("small").0, env.depth("big").0),
        (1, 1),
        "no copy anywhere"
    );
}

#[tokio::test]
async fn a_durable_subscription_keeps_receiving_while_away_and_across_restarts() {
    let env = Env::new();
    let (queue, ticket) = env
        .broker
        .durable_subscription("client-1", "audit", "orders")
        .unwrap();
    ticket.await.unwrap();
    assert_eq!(&*queue, "durable.client-1.audit");
    send(&env.broker, "/topic/orders", "o1").await;
    let again = env.restart();
    send(&again, "/topic/orders", "o2").await;
    let (same, _) = again
        .durable_subscription("client-1", "audit", "orders")
        .unwrap();
    assert_eq!(same, queue);
    let mut c = Conn::new(&again);
    c.subscribe(&format!("/queue/{queue}"), "1", AckMode::Auto);
    assert_eq!(c.bodies(), ["o1", "o2"]);
    drop(c);
    again
        .drop_durable_subscription("client-1", "audit")
        .unwrap()
        .await
        .unwrap();
    send(&again, "/topic/orders", "o3").await;
    assert!(again.queue_view(&queue).is_none());
    let third = env.restart();
    assert!(third.queue_view(&queue).is_none(), "gone for good");
    send(&third, "/topic/orders", "o4").await;
    assert!(third.queue_view(&queue).is_none());
}

#[tokio::test]
async fn a_deleted_queue_takes_its_messages_and_bindings_and_stays_deleted() {
    let env = Env::new();
    env.broker.bind("t", "doomed").unwrap().await.unwrap();
    for b in ["1", "2"] {
        send(&env.broker, "doomed", b).await;
    }
    let mut c = env.conn();
    c.subscribe("doomed", "1", AckMode::Auto);
    assert!(matches!(
        env.broker.delete_queue("doomed"),
        Err(crate::BrokerError::QueueInUse { consumers: 1, .. })
    ));
    c.unsubscribe("1");
    c.bodies();
    env.broker.delete_queue("doomed").unwrap().await.unwrap();
    assert!(env.broker.queue_view("doomed").is_none());
    assert_eq!(env.stored(), 0);
    let again = env.restart();
    assert!(again.queue_view("doomed").is_none());
    send(&again, "/topic/t", "unbound").await;
    assert!(
        again.queue_view("doomed").is_none(),
        "its binding went with it"
    );
    send(&again, "doomed", "new life").await;
    assert_eq!(depth(&again, "doomed"), (1, 0, 0), "a SEND makes it anew");
}
