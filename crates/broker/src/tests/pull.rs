//! Long polls and batch puts: what OCI's GetMessages and PutMessages need from the engine.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::{send, Env};
use crate::{Broker, BrokerError, NewMessage, Pulled};

const Q: &str = "ocid1.queue.oc1..longpoll";

/// A long poll of up to `wait`, running on its own task.
fn poll(broker: &Arc<Broker>, channel: Option<&str>, wait: Duration) -> JoinHandle<Vec<Pulled>> {
    let (broker, channel) = (broker.clone(), channel.map(str::to_owned));
    tokio::spawn(async move {
        let (pulled, ticket) = broker
            .pull_wait(Q, 10, None, channel.as_deref(), wait)
            .await
            .unwrap();
        ticket.await.unwrap();
        pulled
    })
}

fn long_polls(broker: &Broker) -> u64 {
    broker.queue_view(Q).map_or(0, |v| v.long_polls)
}

/// Lets the spawned polls run until `n` of them wait in the queue.
async fn until_waiting(broker: &Broker, n: u64) {
    while long_polls(broker) != n {
        tokio::task::yield_now().await;
    }
}

/// Puts one message into `channel` of the queue.
async fn put_in(broker: &Broker, channel: &str, body: &str) {
    let mut m = NewMessage::new(body.to_owned());
    m.channel = Some(channel.to_owned());
    broker
        .put_messages(Q, vec![m])
        .await
        .unwrap()
        .1
        .await
        .unwrap();
}

fn bodies(pulled: &[Pulled]) -> Vec<&[u8]> {
    pulled.iter().map(|p| &p.record.body[..]).collect()
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_on_an_empty_queue_returns_nothing_when_its_time_is_up() {
    let env = Env::new();
    let started = tokio::time::Instant::now();
    let pulled = poll(&env.broker, None, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(pulled.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(long_polls(&env.broker), 0, "it left the waiter list");
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_takes_a_message_the_moment_it_arrives() {
    let env = Env::new();
    let started = tokio::time::Instant::now();
    let waiter = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    send(&env.broker, Q, "hello").await;
    let pulled = waiter.await.unwrap();
    assert_eq!(bodies(&pulled), [b"hello"]);
    assert_eq!(pulled[0].delivery_count, 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn waiting_long_polls_are_served_in_the_order_they_came() {
    let env = Env::new();
    let first = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    let second = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 2).await;
    send(&env.broker, Q, "one").await;
    assert_eq!(bodies(&first.await.unwrap()), [b"one"]);
    assert_eq!(long_polls(&env.broker), 1, "the second still waits");
    send(&env.broker, Q, "two").await;
    assert_eq!(bodies(&second.await.unwrap()), [b"two"]);
}

#[tokio::test(start_paused = true)]
async fn a_channel_long_poll_is_woken_only_by_its_channel() {
    let env = Env::new();
    let a = poll(&env.broker, Some("a"), Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    let b = poll(&env.broker, Some("b"), Duration::from_secs(30));
    until_waiting(&env.broker, 2).await;
    put_in(&env.broker, "b", "for b").await;
    assert_eq!(bodies(&b.await.unwrap()), [b"for b"]);
    assert_eq!(long_polls(&env.broker), 1, "a still waits");
    put_in(&env.broker, "a", "for a").await;
    assert_eq!(bodies(&a.await.unwrap()), [b"for a"]);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_long_poll_leaves_and_takes_nothing() {
    let env = Env::new();
    let gone = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    let stays = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 2).await;
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    assert_eq!(long_polls(&env.broker), 1);
    send(&env.broker, Q, "m").await;
    assert_eq!(bodies(&stays.await.unwrap()), [b"m"]);
}

#[tokio::test(start_paused = true)]
async fn a_message_back_from_its_visibility_timeout_wakes_a_long_poll() {
    let env = Env::new();
    send(&env.broker, Q, "m").await;
    let (first, _) = env
        .broker
        .pull(Q, 1, Some(Duration::from_secs(5)), None)
        .unwrap();
    let waiter = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    env.advance(5_000);
    let again = waiter.await.unwrap();
    assert_eq!(again[0].seq, first[0].seq);
    assert_eq!(again[0].delivery_count, 2);
    assert_ne!(
        again[0].receipt, first[0].receipt,
        "a new receipt per delivery"
    );
}

#[tokio::test(start_paused = true)]
async fn deleting_a_queue_ends_its_long_polls() {
    let env = Env::new();
    send(&env.broker, Q, "m").await;
    let _ = env.broker.purge(Q).unwrap();
    let waiter = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    let started = tokio::time::Instant::now();
    env.broker.delete_queue(Q).unwrap().await.unwrap();
    assert!(waiter.await.unwrap().is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn a_batch_put_stores_all_in_order_or_nothing() {
    let env = Env::with(|_, p| p.defaults.max_messages = Some(3));
    let batch = |n: usize| (0..n).map(|i| NewMessage::new(format!("m{i}"))).collect();
    let err = env.broker.put_messages(Q, batch(4)).await.unwrap_err();
    assert!(matches!(err, BrokerError::QueueFull { .. }), "{err:?}");
    assert_eq!(env.depth(Q).0, 0, "none of a refused batch is put");
    assert_eq!(env.stored(), 0);

    let (put, ticket) = env.broker.put_messages(Q, batch(3)).await.unwrap();
    ticket.await.unwrap();
    assert_eq!(
        put.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(env.stored(), 3);
    let (pulled, _) = env.broker.pull(Q, 10, None, None).unwrap();
    assert_eq!(bodies(&pulled), [b"m0", b"m1", b"m2"]);
}

#[tokio::test]
async fn channel_counts_and_the_list_of_channels() {
    let env = Env::new();
    for (c, body) in [("a", "1"), ("a", "22"), ("b", "333")] {
        put_in(&env.broker, c, body).await;
    }
    let (pulled, _) = env.broker.pull(Q, 1, None, Some("a")).unwrap();
    assert_eq!(bodies(&pulled), [b"1"]);
    let a = env.broker.channel_view(Q, "a").unwrap();
    assert_eq!((a.visible, a.in_flight), (1, 1));
    assert!(a.bytes > 3);
    assert_eq!(env.broker.channel_view(Q, "b").unwrap().visible, 1);
    assert_eq!(env.broker.channel_view(Q, "c").unwrap(), Default::default());
    assert_eq!(env.broker.channels(Q), ["a", "b"]);
}

#[tokio::test(start_paused = true)]
async fn a_channel_prefix_takes_its_channels_oldest_first_and_wakes_for_them() {
    let env = Env::new();
    for (c, body) in [("ch-eu", "eu"), ("other", "o"), ("ch-us", "us")] {
        put_in(&env.broker, c, body).await;
    }
    let (pulled, _) = env.broker.pull(Q, 10, None, Some("ch-*")).unwrap();
    assert_eq!(bodies(&pulled), [b"eu", b"us"]);
    let waiter = poll(&env.broker, Some("ch-*"), Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    put_in(&env.broker, "other", "o2").await;
    assert_eq!(
        long_polls(&env.broker),
        1,
        "not woken by a channel it does not match"
    );
    put_in(&env.broker, "ch-ap", "ap").await;
    assert_eq!(bodies(&waiter.await.unwrap()), [b"ap"]);
}

#[tokio::test(start_paused = true)]
async fn waiters_for_one_channel_do_not_use_up_the_wake_up_of_a_waiter_for_another() {
    let env = Env::new();
    put_in(&env.broker, "x", "x").await;
    put_in(&env.broker, "y", "y").await;
    let (held, _) = env
        .broker
        .pull(Q, 2, Some(Duration::from_secs(5)), None)
        .unwrap();
    assert_eq!(held.len(), 2);
    let a = poll(&env.broker, Some("x"), Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    let b = poll(&env.broker, Some("x"), Duration::from_secs(30));
    until_waiting(&env.broker, 2).await;
    let any = poll(&env.broker, None, Duration::from_secs(30));
    until_waiting(&env.broker, 3).await;
    let started = tokio::time::Instant::now();
    // Both come back at once: one x, one y.
    env.advance(5_000);
    assert_eq!(bodies(&a.await.unwrap()), [b"x"]);
    assert_eq!(bodies(&any.await.unwrap()), [b"y"]);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(long_polls(&env.broker), 1, "the second x waiter waits on");
    b.abort();
}

#[tokio::test(start_paused = true)]
async fn a_channel_long_poll_is_woken_by_its_message_behind_a_paged_backlog() {
    let env = super::Env::with_window(4);
    for i in 0..8 {
        put_in(&env.broker, "big", &format!("b{i}")).await;
    }
    let waiter = poll(&env.broker, Some("x"), Duration::from_secs(30));
    until_waiting(&env.broker, 1).await;
    let started = tokio::time::Instant::now();
    put_in(&env.broker, "x", "for x").await;
    assert_eq!(bodies(&waiter.await.unwrap()), [b"for x"]);
    assert!(started.elapsed() < Duration::from_secs(1));
}
