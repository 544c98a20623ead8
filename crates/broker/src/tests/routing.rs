//! Routing beyond one name: virtual-topic consumer queues bound by their names, wildcard
//! patterns, named queues with RabbitMQ's flags, durable subscriptions with one subscriber.

use super::*;
use crate::{BrokerError, Lifecycle, TopicQueue};

#[tokio::test]
async fn a_virtual_topic_reaches_its_consumer_queues_in_one_commit_also_after_a_restart() {
    let env = Env::new();
    let mut a = env.conn();
    a.subscribe("Consumer.a.VirtualTopic.t", "a", AckMode::Auto);
    send(&env.broker, "Consumer.b.VirtualTopic.t", "direct").await;
    let commits = env.store.commits();
    send(&env.broker, "/topic/VirtualTopic.t", "v1").await;
    assert_eq!(
        env.store.commits() - commits,
        1,
        "the fan-out is one commit"
    );
    assert_eq!(a.bodies(), ["v1"]);
    assert_eq!(env.depth("Consumer.b.VirtualTopic.t"), (2, 0, 0));
    drop(a);
    let again = env.restart();
    send(&again, "/topic/VirtualTopic.t", "v2").await;
    assert_eq!(depth(&again, "Consumer.a.VirtualTopic.t"), (1, 0, 0));
    assert_eq!(depth(&again, "Consumer.b.VirtualTopic.t"), (3, 0, 0));
}

#[tokio::test]
async fn a_queue_bound_to_a_topic_and_to_a_pattern_matching_it_takes_one_copy() {
    let env = Env::new();
    env.broker
        .bind("prices.eu", "audit")
        .unwrap()
        .await
        .unwrap();
    env.broker.bind("prices.*", "audit").unwrap().await.unwrap();
    env.broker.bind("prices.#", "all").unwrap().await.unwrap();
    let mut c = env.conn();
    c.subscribe("/topic/prices.>", "s", AckMode::Auto);
    send(&env.broker, "/topic/prices.eu", "p").await;
    send(&env.broker, "/topic/prices.eu.de", "q").await;
    assert_eq!(env.depth("audit"), (1, 0, 0));
    assert_eq!(env.depth("all"), (2, 0, 0));
    let got = c.deliveries();
    let to: Vec<&str> = got.iter().map(|d| &*d.destination).collect();
    assert_eq!(to, ["/topic/prices.eu", "/topic/prices.eu.de"]);
    let again = env.restart();
    send(&again, "/topic/prices.fr", "r").await;
    assert_eq!(
        depth(&again, "audit"),
        (2, 0, 0),
        "pattern bindings are recovered"
    );
}

#[tokio::test]
async fn a_pattern_left_unused_leaves_the_trie() {
    let env = Env::new();
    let mut c = env.conn();
    c.subscribe("/topic/a.*", "s", AckMode::Auto);
    assert!(!env.broker.patterns.read().is_empty());
    c.unsubscribe("s");
    assert!(env.broker.patterns.read().is_empty());
    assert!(env.broker.find_topic("a.*").is_none());
}

#[tokio::test]
async fn sending_to_a_wildcard_is_refused() {
    let env = Env::new();
    let err = env
        .broker
        .publish(
            &Destination::parse("/topic/a.#").unwrap(),
            NewMessage::new("x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::InvalidName { .. }), "{err}");
}

fn named(c: &mut Conn, topic: &str, queue: &str, life: Lifecycle, session: u64) {
    c.subscribe_with(topic, queue, AckMode::Auto, |s| {
        s.topic_queue = TopicQueue::Named(queue.to_owned());
        s.lifecycle = life;
        s.session = session;
    });
}

#[tokio::test]
async fn an_auto_delete_queue_goes_with_its_last_consumer_and_a_temporary_one_at_restart() {
    let env = Env::new();
    let auto = Lifecycle {
        durable: true,
        auto_delete: true,
        exclusive: false,
    };
    let temporary = Lifecycle {
        durable: false,
        auto_delete: false,
        exclusive: false,
    };
    let mut c = env.conn();
    named(&mut c, "/topic/t", "auto", auto, 1);
    named(&mut c, "/topic/t", "temp", temporary, 1);
    let mut d = env.conn();
    named(&mut d, "/topic/t", "auto", auto, 2);
    c.unsubscribe("auto");
    send(&env.broker, "/topic/t", "1").await;
    assert_eq!(d.bodies(), ["1"], "one consumer left: the queue stays");
    assert_eq!(c.bodies(), ["1"], "through the temporary queue");
    d.unsubscribe("auto");
    assert!(env.broker.find_queue("auto").is_none());
    c.unsubscribe("temp");
    send(&env.broker, "/topic/t", "2").await;
    assert_eq!(
        env.depth("temp"),
        (1, 0, 0),
        "not auto-delete: kept while running"
    );
    let again = env.restart();
    assert!(
        again.find_queue("temp").is_none(),
        "not durable: gone at restart"
    );
    send(&again, "/topic/t", "3").await;
    assert!(
        again.find_queue("temp").is_none(),
        "and its binding with it"
    );
}

#[tokio::test]
async fn an_exclusive_queue_refuses_other_sessions_and_goes_with_its_owner() {
    let env = Env::new();
    let exclusive = Lifecycle {
        durable: true,
        auto_delete: false,
        exclusive: true,
    };
    let mut owner = env.conn();
    named(&mut owner, "/topic/t", "mine", exclusive, 7);
    let spec = SubscribeSpec::new(
        Destination::Queue("mine".into()),
        "/queue/mine",
        "x",
        AckMode::Auto,
    );
    let other = env
        .broker
        .subscribe(&Principal::new("other"), spec, env.conn().outbox.clone());
    assert!(
        matches!(other, Err(BrokerError::ExclusiveQueue(_))),
        "{other:?}"
    );
    let mut spec = SubscribeSpec::new(
        Destination::Topic("elsewhere".into()),
        "/topic/elsewhere",
        "y",
        AckMode::Auto,
    );
    spec.topic_queue = TopicQueue::Named("mine".into());
    spec.session = 8;
    let refused = env
        .broker
        .subscribe(&Principal::new("other"), spec, env.conn().outbox.clone());
    assert!(
        matches!(refused, Err(BrokerError::ExclusiveQueue(_))),
        "another session's x-queue-name is refused: {refused:?}"
    );
    send(&env.broker, "/topic/elsewhere", "x").await;
    let (visible, in_flight, _) = env.depth("mine");
    assert_eq!(visible + in_flight, 0, "and leaves no binding behind");
    owner.unsubscribe("mine");
    assert!(env.broker.find_queue("mine").is_none());
}

#[tokio::test]
async fn a_sole_durable_subscription_refuses_a_second_subscriber() {
    let env = Env::new();
    let durable = |s: &mut SubscribeSpec| {
        s.topic_queue = TopicQueue::Durable {
            client: "app".into(),
            name: "audit".into(),
            sole: true,
        }
    };
    let mut first = env.conn();
    first.subscribe_with("/topic/t", "1", AckMode::Auto, durable);
    let mut spec = SubscribeSpec::new(
        Destination::Topic("t".into()),
        "/topic/t",
        "2",
        AckMode::Auto,
    );
    durable(&mut spec);
    let second = env
        .broker
        .subscribe(&Principal::new("p"), spec, env.conn().outbox.clone());
    match second {
        Err(BrokerError::DurableSubscriptionActive { client, name }) => {
            assert_eq!((client.as_str(), name.as_str()), ("app", "audit"))
        }
        other => panic!("{other:?}"),
    }
    // Refused for another topic too, and the subscription stays where it was.
    let mut spec = SubscribeSpec::new(
        Destination::Topic("other".into()),
        "/topic/other",
        "3",
        AckMode::Auto,
    );
    durable(&mut spec);
    let moved = env
        .broker
        .subscribe(&Principal::new("p"), spec, env.conn().outbox.clone());
    assert!(
        matches!(moved, Err(BrokerError::DurableSubscriptionActive { .. })),
        "{moved:?}"
    );
    send(&env.broker, "/topic/t", "m").await;
    assert_eq!(first.bodies(), ["m"]);
}
