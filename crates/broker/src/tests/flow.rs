//! Backlogs beyond the memory window (paged to the store and read back in order), recovery of the
//! head only, non-persistent messages at the window's edge, and producer pacing.

use super::*;
use futures::FutureExt;

fn non_persistent(body: &str) -> NewMessage {
    let mut m = message(body);
    m.persistent = false;
    m
}

/// Takes every remaining message, settling as it goes.
async fn drain_all(c: &mut Conn, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = c.deliveries();
        assert!(
            !batch.is_empty(),
            "stalled after {got:?}: a message was lost"
        );
        for d in batch {
            got.push(String::from_utf8(d.record.body.to_vec()).unwrap());
            match d.ack_id() {
                Some(_) => c.settle(&d, Outcome::Ack).unwrap().await.unwrap(),
                None => c.broker.written(&mut d.auto_ack.into_iter().collect()),
            }
        }
    }
    got
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn a_backlog_beyond_the_window_stays_in_the_store_and_drains_in_order() {
    let env = Env::with_window(10);
    for n in 0..25 {
        send(&env.broker, "q", &n.to_string()).await;
    }
    assert_eq!(env.depth("q"), (25, 0, 0));
    assert_eq!(env.stored(), 25);
    let mut c = env.conn();
    c.subscribe_with("q", "1", AckMode::ClientIndividual, |s| {
        s.prefetch = Some(4)
    });
    assert_eq!(drain_all(&mut c, 25).await, numbers(25));
    assert_eq!(env.stored(), 0);
}

#[tokio::test]
async fn recovery_loads_only_the_head_and_counts_the_rest() {
    let env = Env::with_window(10);
    for n in 0..25 {
        send(&env.broker, "q", &n.to_string()).await;
    }
    let again = env.restart();
    assert_eq!(depth(&again, "q"), (25, 0, 0));
    let mut c = Conn::new(&again);
    c.subscribe("q", "1", AckMode::Auto);
    assert_eq!(drain_all(&mut c, 25).await, numbers(25));
}

#[tokio::test]
async fn publishes_out_of_sequence_order_at_the_window_edge_are_not_lost() {
    // Producers allocate sequence numbers before they publish, so the queue can see 3 before
    // 1. Message 1, arriving when the window is full, is older than what memory holds: it
    // must not be counted as paged (page-in only reads above the newest message in memory).
    let env = Env::with_window(2);
    let q = env.broker.queue("q");
    let mut staged = Vec::new();
    for body in ["a", "b", "c"] {
        let mut fx = crate::effects::Effects::new();
        let record = Arc::new(stampede_store::MessageRecord {
            headers: vec![],
            body: Bytes::copy_from_slice(body.as_bytes()),
            enqueued_at_ms: T0,
            expires_at_ms: None,
        });
        q.stage(record, true, None, &mut fx).unwrap();
        staged.push(fx);
    }
    let a = staged.remove(0);
    staged.push(a);
    for fx in staged {
        env.broker.apply(fx).await.unwrap();
    }
    assert_eq!(env.stored(), 3);
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::Auto);
    let mut got = drain_all(&mut c, 3).await;
    got.sort();
    assert_eq!(got, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_non_persistent_message_beyond_the_window_is_stored_and_drains_in_order() {
    let env = Env::with_window(2);
    for b in ["a", "b", "c", "d"] {
        env.broker
            .publish(&to("q"), non_persistent(b))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(env.stored(), 2, "c and d arrived beyond the window");
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::Auto);
    assert_eq!(drain_all(&mut c, 4).await, ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn a_non_persistent_message_behind_paged_ones_waits_on_disk_behind_them() {
    // Staged together (a transaction), published one by one: B is paged out when the window
    // fills, and C, not stored when it was staged, must not jump ahead of B into memory.
    let env = Env::with_window(2);
    send(&env.broker, "q", "first").await;
    let mut tx = crate::Transaction::new();
    tx.publish(to("q"), message("A"));
    tx.publish(to("q"), message("B"));
    tx.publish(to("q"), non_persistent("C"));
    env.broker.commit(tx).await.unwrap().await.unwrap();
    assert_eq!(env.stored(), 4, "C went to disk behind B");
    let mut c = env.conn();
    c.subscribe("q", "1", AckMode::Auto);
    assert_eq!(drain_all(&mut c, 4).await, ["first", "A", "B", "C"]);
}

/// A queue with a window of 4 (producers wait from 3 waiting messages until fewer than 2, and not
/// at 8 or more) and one client-individual consumer holding one message, with `waiting` more
/// behind it (beyond 4 they go to the store).
async fn crowded_queue(waiting: usize) -> (Env, Conn, Vec<Delivery>) {
    let env = Env::with_window(4);
    let mut c = env.conn();
    c.subscribe_with("q", "1", AckMode::ClientIndividual, |s| {
        s.prefetch = Some(1)
    });
    for n in 0..=waiting {
        queue_quickly(&env, &n.to_string());
    }
    let held = c.deliveries();
    assert_eq!(held.len(), 1);
    (env, c, held)
}

/// Publishes without pacing (as producers already past the check would).
fn queue_quickly(env: &Env, body: &str) {
    let mut tx = crate::Transaction::new();
    tx.publish(to("/queue/q"), non_persistent(body));
    let ready = env.broker.prepare(tx).unwrap();
    drop(env.broker.execute(ready));
}

async fn ack_next(c: &mut Conn, pending: &mut Vec<Delivery>) {
    pending.extend(c.deliveries());
    let d = pending.remove(0);
    c.settle(&d, Outcome::Ack).unwrap().await.unwrap();
}

#[tokio::test]
async fn a_producer_waits_while_a_crowded_queue_drains_to_its_low_water_mark() {
    let (env, mut c, mut pending) = crowded_queue(3).await;
    let q = to("/queue/q");
    let mut wait = Box::pin(env.broker.publish(&q, non_persistent("next")));
    assert!(
        (&mut wait).now_or_never().is_none(),
        "3 waiting: three quarters of the window"
    );
    ack_next(&mut c, &mut pending).await;
    assert!(
        (&mut wait).now_or_never().is_none(),
        "2 waiting: not below half the window"
    );
    ack_next(&mut c, &mut pending).await;
    drop(wait.now_or_never().expect("1 waiting: room").unwrap());
    assert_eq!(env.broker.stats().waits_for_consumers(), 1);
    let other = env
        .broker
        .publish(&to("/queue/elsewhere"), non_persistent("x"))
        .now_or_never();
    assert!(other.is_some(), "another queue is not held up");
}

#[tokio::test]
async fn pacing_counts_the_backlog_on_disk_and_leaves_bulk_backlogs_alone() {
    let (env, mut c, mut pending) = crowded_queue(7).await;
    // 4 in memory, 3 paged out: 7 waiting, within twice the window.
    assert!(
        env.broker
            .publish(&to("/queue/q"), non_persistent("7b"))
            .now_or_never()
            .is_none(),
        "a backlog paged to disk still holds producers"
    );
    queue_quickly(&env, "8");
    assert!(
        env.broker
            .publish(&to("/queue/q"), non_persistent("9"))
            .now_or_never()
            .is_some(),
        "9 waiting is a bulk backlog: producers go on"
    );
    ack_next(&mut c, &mut pending).await;
    ack_next(&mut c, &mut pending).await;
    ack_next(&mut c, &mut pending).await;
    assert!(
        env.broker
            .publish(&to("/queue/q"), non_persistent("10"))
            .now_or_never()
            .is_none(),
        "6 waiting: paced again"
    );
}

#[tokio::test(start_paused = true)]
async fn stalled_consumers_stop_pacing_until_they_catch_up() {
    let (env, mut c, mut pending) = crowded_queue(4).await;
    // Nobody acks: the wait ends after the stall time (the paused clock jumps to it).
    drop(
        env.broker
            .publish(&to("/queue/q"), non_persistent("waited"))
            .await
            .unwrap(),
    );
    assert_eq!(env.broker.stats().waits_for_consumers(), 1);
    for n in 0..20 {
        let next = env
            .broker
            .publish(&to("/queue/q"), non_persistent(&format!("more {n}")))
            .now_or_never();
        assert!(next.is_some(), "stalled: no wait");
    }
    // The consumer catches up below the low-water mark: pacing resumes.
    while env.depth("q").0 >= 2 {
        ack_next(&mut c, &mut pending).await;
    }
    for n in 0..2 {
        queue_quickly(&env, &format!("last {n}"));
    }
    assert!(
        env.broker
            .publish(&to("/queue/q"), non_persistent("paced"))
            .now_or_never()
            .is_none(),
        "paced again"
    );
}

#[tokio::test]
async fn publish_now_hands_the_message_back_when_it_would_have_to_wait() {
    let (env, mut c, mut pending) = crowded_queue(3).await;
    let back = env
        .broker
        .publish_now(&to("/queue/q"), non_persistent("held"))
        .unwrap()
        .expect_err("a crowded queue holds producers back");
    assert_eq!(&back.body[..], b"held", "the message comes back untouched");
    assert_eq!(env.depth("q").0, 3, "and nothing was published");
    ack_next(&mut c, &mut pending).await;
    ack_next(&mut c, &mut pending).await;
    let ticket = env
        .broker
        .publish_now(&to("/queue/q"), back)
        .unwrap()
        .expect("room again");
    ticket.await.unwrap();
    assert_eq!(env.depth("q").0, 2);
}

/// Publishes `body` to `channel` of queue `q` and waits until it is durable.
async fn send_channel(env: &Env, q: &str, channel: &str, body: &str) {
    let mut m = message(body);
    m.channel = Some(channel.to_owned());
    env.broker.publish(&to(q), m).await.unwrap().await.unwrap();
}

#[tokio::test]
async fn a_channel_behind_another_channels_deep_backlog_still_reaches_its_consumer() {
    let env = Env::with_window(10);
    let q = "ocid1.queue.oc1.phx.deep";
    for n in 0..30 {
        send_channel(&env, q, "eu", &format!("eu {n}")).await;
    }
    for n in 0..3 {
        send_channel(&env, q, "us", &format!("us {n}")).await;
    }
    // Memory holds the first ten eu messages; us is all on disk behind the rest of eu.
    let mut us = env.conn();
    us.subscribe_with(q, "us", AckMode::ClientIndividual, |s| {
        s.channel = Some("us".into());
        s.prefetch = Some(3);
    });
    // Held unsettled while the rest drains: in flight, and still in the store.
    let held = us.deliveries();
    let bodies: Vec<String> = held
        .iter()
        .map(|d| String::from_utf8(d.record.body.to_vec()).unwrap())
        .collect();
    assert_eq!(bodies, ["us 0", "us 1", "us 2"]);
    // A whole-queue consumer then gets eu, in order, once each: the sequential reads skip what
    // the channel scan brought in.
    let mut all = env.conn();
    all.subscribe_with(q, "all", AckMode::ClientIndividual, |s| {
        s.prefetch = Some(4)
    });
    let eu: Vec<String> = (0..30).map(|n| format!("eu {n}")).collect();
    assert_eq!(drain_all(&mut all, 30).await, eu);
    assert!(all.deliveries().is_empty() && us.deliveries().is_empty());
    for d in &held {
        us.settle(d, Outcome::Ack).unwrap().await.unwrap();
    }
    assert_eq!(env.stored(), 0);
    assert_eq!(env.depth(q), (0, 0, 2));
}

#[tokio::test]
async fn after_a_restart_a_channel_deep_on_disk_is_found_and_nothing_comes_twice() {
    let env = Env::with_window(10);
    let q = "ocid1.queue.oc1.phx.deeper";
    for n in 0..15 {
        send_channel(&env, q, "eu", &format!("eu {n}")).await;
        if n % 5 == 4 {
            send_channel(&env, q, "us", &format!("us {}", n / 5)).await;
        }
    }
    let again = env.restart();
    let mut us = Conn::new(&again);
    us.subscribe_with(q, "us", AckMode::ClientIndividual, |s| {
        s.channel = Some("us".into());
    });
    assert_eq!(drain_all(&mut us, 3).await, ["us 0", "us 1", "us 2"]);
    let mut all = Conn::new(&again);
    all.subscribe(q, "all", AckMode::ClientIndividual);
    let eu: Vec<String> = (0..15).map(|n| format!("eu {n}")).collect();
    assert_eq!(drain_all(&mut all, 15).await, eu);
    assert!(all.deliveries().is_empty());
    assert_eq!(depth(&again, q), (0, 0, 2));
}

#[tokio::test]
async fn every_starved_channel_is_scanned_for_in_turn_a_quota_at_a_time() {
    // Window 8: a scan keeps at most 2 messages, so five take several scans.
    let env = Env::with_window(8);
    let q = "ocid1.queue.oc1.phx.turns";
    for n in 0..20 {
        send_channel(&env, q, "eu", &format!("eu {n}")).await;
    }
    for n in 0..5 {
        send_channel(&env, q, "us", &format!("us {n}")).await;
    }
    // A channel with nothing at all is starved too, first in turn; it must not block us's scans.
    let mut none = env.conn();
    none.subscribe_with(q, "none", AckMode::ClientIndividual, |s| {
        s.channel = Some("none".into());
    });
    let mut us = env.conn();
    us.subscribe_with(q, "us", AckMode::ClientIndividual, |s| {
        s.channel = Some("us".into());
        s.prefetch = Some(10);
    });
    let want: Vec<String> = (0..5).map(|n| format!("us {n}")).collect();
    assert_eq!(drain_all(&mut us, 5).await, want);
    assert!(none.deliveries().is_empty());
    let mut all = env.conn();
    all.subscribe(q, "all", AckMode::ClientIndividual);
    let eu: Vec<String> = (0..20).map(|n| format!("eu {n}")).collect();
    assert_eq!(drain_all(&mut all, 20).await, eu);
    assert_eq!(env.stored(), 0);
}
