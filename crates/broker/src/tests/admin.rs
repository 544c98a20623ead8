//! The admin operations: views, peeking, purging, moving (redrive), labels, and the pull front end
//! used without a session.

use super::*;
use crate::{BoundQueue, BrokerError};
use std::time::Duration;

#[tokio::test]
async fn peek_shows_waiting_messages_in_memory_and_in_the_store_without_delivering() {
    let env = Env::with_window(2);
    for n in 0..5 {
        send(&env.broker, "q", &n.to_string()).await;
    }
    let peeked = env.broker.peek("q", 4).await.unwrap();
    let bodies: Vec<&[u8]> = peeked.iter().map(|m| &m.record.body[..]).collect();
    assert_eq!(bodies, [b"0", b"1", b"2", b"3"]);
    assert_eq!(
        peeked[0].message_id,
        format!("{}-1", env.broker.queue_view("q").unwrap().number)
    );
    assert_eq!(env.depth("q"), (5, 0, 0), "nothing was delivered");
    assert!(env.broker.peek("nope", 1).await.is_err());
}

#[tokio::test]
async fn purge_removes_waiting_messages_in_one_commit_and_keeps_those_in_flight() {
    let env = Env::with_window(3);
    for n in 0..10 {
        send(&env.broker, "q", &n.to_string()).await;
    }
    let mut c = env.conn();
    c.subscribe_with("q", "1", AckMode::ClientIndividual, |s| {
        s.prefetch = Some(2)
    });
    let held = c.deliveries();
    assert_eq!(held.len(), 2);
    let commits = env.store.commits();
    let (purged, ticket) = env.broker.purge("q").unwrap();
    ticket.await.unwrap();
    assert_eq!(
        purged, 8,
        "3 in memory and 5 in the store, not the 2 in flight"
    );
    assert_eq!(env.store.commits() - commits, 1);
    assert_eq!(env.depth("q"), (0, 2, 1));
    assert_eq!(env.stored(), 2, "the in-flight ones are still stored");
    c.settle(&held[0], Outcome::Ack).unwrap().await.unwrap();
    assert_eq!(env.stored(), 1, "settled as usual after the purge");
    drop(c);
    let again = env.restart();
    assert_eq!(
        depth(&again, "q"),
        (1, 0, 0),
        "the other one survives a restart"
    );
    send(&again, "q", "after").await;
    assert_eq!(depth(&again, "q"), (2, 0, 0));
}

fn all_to(to: &str, max: usize) -> Redrive {
    Redrive {
        ids: None,
        to: Some(to.to_owned()),
        max,
    }
}

#[tokio::test]
async fn moving_messages_to_a_named_queue_takes_one_commit() {
    let env = Env::new();
    for b in ["a", "b", "c"] {
        send(&env.broker, "DLQ.orders", b).await;
    }
    let commits = env.store.commits();
    let (moved, ticket) = env
        .broker
        .redrive("DLQ.orders", &all_to("orders", 2))
        .unwrap();
    ticket.await.unwrap();
    assert_eq!((moved.moved, moved.remaining), (2, 1));
    assert_eq!(
        env.store.commits() - commits,
        2,
        "the target's creation, then the move"
    );
    assert_eq!((env.depth("DLQ.orders").0, env.depth("orders").0), (1, 2));
    let again = env.restart();
    assert_eq!(
        (depth(&again, "DLQ.orders").0, depth(&again, "orders").0),
        (1, 2)
    );
    let mut c = Conn::new(&again);
    c.subscribe("orders", "1", AckMode::Auto);
    assert_eq!(c.bodies(), ["a", "b"]);
    assert!(matches!(
        again.redrive("DLQ.orders", &all_to("DLQ.orders", 1)),
        Err(BrokerError::InvalidName { .. })
    ));
}

/// Dead-letters every message of `queue` with a NACK that does not requeue.
async fn kill_all(env: &Env, queue: &str, n: usize) {
    let mut c = env.conn();
    c.subscribe_with(queue, "k", AckMode::ClientIndividual, |s| {
        s.prefetch = Some(n as u32)
    });
    for d in c.deliveries() {
        c.settle(&d, Outcome::Nack { requeue: false })
            .unwrap()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn redrive_sends_each_dead_letter_back_where_it_died_as_it_was_sent() {
    let env = Env::new();
    for (q, b) in [("a", "a1"), ("b", "b1"), ("a", "a2")] {
        send(&env.broker, q, b).await;
    }
    kill_all(&env, "a", 2).await;
    kill_all(&env, "b", 1).await;
    // One message of DLQ.a came from nowhere: it names no original queue.
    send(&env.broker, "DLQ.a", "stray").await;
    let dlq = env.broker.peek("DLQ.a", 10).await.unwrap();
    assert_eq!(dlq.len(), 3);
    assert!(dlq[0]
        .record
        .headers
        .iter()
        .any(|(k, v)| k == "x-original-destination" && v == "/queue/a"));

    let every = Redrive {
        ids: None,
        to: None,
        max: 100,
    };
    let commits = env.store.commits();
    let (r, ticket) = env.broker.redrive("DLQ.a", &every).unwrap();
    ticket.await.unwrap();
    assert_eq!(env.store.commits() - commits, 1, "one commit for the batch");
    assert_eq!((r.moved, r.skipped, r.remaining), (2, 1, 1));
    assert_eq!(r.by_destination.get("a"), Some(&2));
    let back = env.broker.peek("a", 10).await.unwrap();
    let bodies: Vec<&[u8]> = back.iter().map(|m| &m.record.body[..]).collect();
    assert_eq!(bodies, [b"a1", b"a2"]);
    assert!(
        back.iter().all(|m| m.deliveries == 0
            && !m.record.headers.iter().any(|(k, _)| k.starts_with("x-")
                && (k == "x-death-reason" || k == "x-original-destination"))),
        "{back:?}"
    );

    // By id: only the one named; an id of another queue or not an id is missing.
    let b_dlq = env.broker.peek("DLQ.b", 10).await.unwrap();
    let by_id = Redrive {
        ids: Some(vec![
            b_dlq[0].message_id.clone(),
            back[0].message_id.clone(),
            "nonsense".into(),
        ]),
        to: None,
        max: 100,
    };
    let (r, ticket) = env.broker.redrive("DLQ.b", &by_id).unwrap();
    ticket.await.unwrap();
    assert_eq!(r.moved, 1);
    assert_eq!(r.missing.len(), 2, "{r:?}");
    assert_eq!(env.depth("b").0, 1);

    // A queue nobody dead-letters to is no dead-letter queue; with a target it may still move.
    assert!(matches!(
        env.broker.redrive("a", &every),
        Err(BrokerError::NotADeadLetterQueue(_))
    ));
    let again = env.restart();
    assert_eq!((depth(&again, "a").0, depth(&again, "DLQ.a").0), (2, 1));
}

#[tokio::test]
async fn views_report_consumers_counters_and_the_dead_letter_queue() {
    let env = Env::new();
    send(&env.broker, "v", "m").await;
    let mut c = env.conn();
    c.subscribe("v", "sub-7", AckMode::Client);
    let view = env.broker.queue_view("v").unwrap();
    assert_eq!((view.visible, view.in_flight), (0, 1));
    assert_eq!(view.counters.enqueued, 1);
    assert_eq!(view.counters.delivered, 1);
    assert_eq!(&*view.consumers[0].subscription, "sub-7");
    assert_eq!(&*view.consumers[0].principal, "tester");
    assert_eq!(view.dead_letter_queue.as_deref(), Some("DLQ.v"));
    assert_eq!(env.broker.queues().len(), 1);
}

#[tokio::test]
async fn labels_are_kept_with_the_queue() {
    let env = Env::new();
    send(&env.broker, "ocid1.queue.x", "m").await;
    env.broker
        .set_labels("ocid1.queue.x", &[("displayName", Some("orders"))])
        .unwrap()
        .await
        .unwrap();
    let again = env.restart();
    assert_eq!(
        again.labels("ocid1.queue.x").unwrap(),
        [("displayName".to_owned(), "orders".to_owned())]
    );
}

#[tokio::test]
async fn the_pull_front_end_works_without_a_session() {
    let env = Env::new();
    for b in ["a", "b"] {
        send(&env.broker, "ocid1.queue.p", b).await;
    }
    let (pulled, ticket) = env
        .broker
        .pull("ocid1.queue.p", 10, Some(Duration::from_secs(30)), None)
        .unwrap();
    ticket.await.unwrap();
    assert_eq!(pulled.len(), 2);
    assert_eq!(pulled[0].seq, 1);
    env.broker
        .delete_pulled("ocid1.queue.p", &pulled[0].receipt)
        .unwrap()
        .await
        .unwrap();
    assert!(env
        .broker
        .delete_pulled("ocid1.queue.p", &pulled[0].receipt)
        .is_err());
    let visible_at = env
        .broker
        .extend_pulled("ocid1.queue.p", &pulled[1].receipt, Duration::from_secs(1))
        .unwrap();
    assert_eq!(visible_at, T0 + 1_000);
    env.advance(1_000);
    let (again, _) = env.broker.pull("ocid1.queue.p", 10, None, None).unwrap();
    assert_eq!((again[0].seq, again[0].delivery_count), (2, 2));
}

#[tokio::test]
async fn idle_queues_cost_the_timer_nothing_until_a_deadline_comes() {
    let env = Env::new();
    for n in 0..200 {
        send(&env.broker, &format!("idle-{n}"), "m").await;
    }
    assert_eq!(
        env.broker.pending_wakeups(),
        200,
        "one wake-up each: its message's retention"
    );
    env.advance(60_000);
    assert_eq!(
        env.broker.pending_wakeups(),
        200,
        "nothing was due, nothing was visited"
    );
    env.advance(7 * 86_400_000);
    assert_eq!(env.broker.pending_wakeups(), 0);
    assert_eq!(env.stored(), 0, "retention removed them all");
}

#[tokio::test]
async fn topics_show_their_subscribers_and_bound_queues_stored_or_by_name() {
    let env = Env::new();
    env.broker.bind("prices", "audit").unwrap().await.unwrap();
    send(&env.broker, "Consumer.A.VirtualTopic.prices", "m").await;
    let mut c = env.conn();
    c.subscribe("/topic/prices", "t", AckMode::Auto);
    let topics = env.broker.topics();
    let names: Vec<&str> = topics.iter().map(|t| &*t.name).collect();
    assert!(names.contains(&"prices"), "{names:?}");
    let prices = topics.iter().find(|t| &*t.name == "prices").unwrap();
    assert_eq!(prices.subscribers, 1);
    assert_eq!(
        prices.bound,
        [BoundQueue {
            queue: "audit".into(),
            by_name: false
        }]
    );
    let vt = topics
        .iter()
        .find(|t| &*t.name == "VirtualTopic.prices")
        .unwrap();
    assert!(vt.bound[0].by_name);
    assert_eq!(
        env.broker.bindings_of("audit"),
        [("prices".to_owned(), false)]
    );
    assert_eq!(
        env.broker.bindings_of("Consumer.A.VirtualTopic.prices"),
        [("VirtualTopic.prices".to_owned(), true)]
    );
    assert!(env.broker.bindings_of("nothing").is_empty());
}

#[tokio::test]
async fn take_removes_waiting_messages_in_one_commit_and_returns_them() {
    let env = Env::new();
    for b in ["a", "b", "c"] {
        send(&env.broker, "t", b).await;
    }
    let commits = env.store.commits();
    let (taken, ticket) = env.broker.take("t", 2).unwrap();
    ticket.await.unwrap();
    let bodies: Vec<&[u8]> = taken.iter().map(|m| &m.record.body[..]).collect();
    assert_eq!(bodies, [b"a", b"b"]);
    assert_eq!(taken[0].deliveries, 0);
    assert_eq!(env.store.commits() - commits, 1);
    assert_eq!(env.depth("t"), (1, 0, 0));
    let view = env.broker.queue_view("t").unwrap();
    assert_eq!(view.counters.delivered, 0, "taken, not delivered");
    assert_eq!(view.lifecycle, crate::Lifecycle::DURABLE);
    let again = env.restart();
    assert_eq!(depth(&again, "t"), (1, 0, 0), "the take is durable");
    assert!(again.take("nope", 1).is_err());
}
