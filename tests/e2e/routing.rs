//! Routing the peers' way (docs/protocol.md "Topics, bindings and durable subscriptions"):
//! ActiveMQ virtual topics, RabbitMQ `x-queue-name` bindings with their queue flags and the
//! `amq.topic` exchange, durable topic subscriptions in the three header dialects — what each
//! keeps while its consumers are away, across a restart and across a `kill -9` mid fan-out.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Server};

use crate::durability::{recovered, start_on};
use crate::support_q::{bodies, body, connect, connect_client, h, wait_closed};

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test]
async fn a_virtual_topic_fills_every_consumer_queue_also_while_its_consumers_are_away() {
    let server = Server::start();
    let x = unique("vt");
    let topic = format!("/topic/VirtualTopic.{x}");
    let qa = format!("/queue/Consumer.A.VirtualTopic.{x}");
    let qb = format!("/queue/Consumer.B.VirtualTopic.{x}");
    let mut a = connect(server.addr).await;
    a.subscribe(&qa, "a", "client-individual").await;
    let mut b = connect(server.addr).await;
    b.subscribe(&qb, "b", "auto").await;
    // B's queue exists from its first SUBSCRIBE; B leaves.
    let gone = b.drop_connection();
    wait_closed(&server, &gone);
    let mut plain = connect(server.addr).await;
    plain.subscribe(&topic, "t", "auto").await;

    let mut p = connect(server.addr).await;
    for m in texts("m", 3) {
        p.send(&topic, m).await;
    }
    let got = a.messages(3).await;
    assert_eq!(bodies(&got), texts("m", 3));
    assert_eq!(
        h(&got[0], "destination"),
        qa,
        "delivered from the consumer queue"
    );
    assert_eq!(
        plain.bodies(3).await,
        texts("m", 3),
        "plain subscribers get copies too"
    );

    let mut b = connect(server.addr).await;
    b.subscribe(&qb, "b", "auto").await;
    assert_eq!(b.bodies(3).await, texts("m", 3), "kept while B was away");
    for m in &got {
        a.ack(m).await;
    }
    a.assert_quiet().await;
    b.assert_quiet().await;
}

#[tokio::test]
async fn x_queue_name_and_the_virtual_topic_rule_end_in_the_same_queue() {
    // django-stomp subscribes to `/topic/VirtualTopic.X` with `x-queue-name` on RabbitMQ and to
    // the consumer queue itself on ActiveMQ; both must compete for one queue.
    let server = Server::start();
    let x = unique("both");
    let topic = format!("/topic/VirtualTopic.{x}");
    let queue = format!("Consumer.app.VirtualTopic.{x}");
    let mut rabbit_style = connect(server.addr).await;
    rabbit_style
        .subscribe_with(
            &topic,
            "r",
            "auto",
            &[
                ("x-queue-name", &queue),
                ("durable", "true"),
                ("auto-delete", "false"),
                ("exclusive", "False"),
            ],
        )
        .await;
    let mut activemq_style = connect(server.addr).await;
    activemq_style
        .subscribe(&format!("/queue/{queue}"), "q", "auto")
        .await;
    let mut p = connect(server.addr).await;
    for m in texts("n", 4) {
        p.send(&topic, m).await;
    }
    let r = rabbit_style.quiet().await;
    let q = activemq_style.quiet().await;
    let mut all: Vec<String> = bodies(&r).into_iter().chain(bodies(&q)).collect();
    all.sort();
    assert_eq!(
        all,
        texts("n", 4),
        "each message once, across the two consumers"
    );
    if let Some(m) = r.first() {
        assert_eq!(
            h(m, "destination"),
            topic,
            "the subscription's own destination"
        );
    }
}

#[tokio::test]
async fn rabbitmq_queue_flags_decide_what_a_named_queue_outlives() {
    let server = Server::start();
    let t = format!("/topic/{}", unique("flags"));
    let mut p = connect(server.addr).await;

    // No flags: RabbitMQ's defaults for a topic's queue, not durable and auto-deleted.
    let transient = unique("auto");
    let mut c = connect(server.addr).await;
    c.subscribe_with(&t, "s", "auto", &[("x-queue-name", &transient)])
        .await;
    c.unsubscribe("s").await;
    p.send(&t, "lost").await;
    // Kept: durable and not auto-deleted.
    let kept = unique("kept");
    let flags = [
        ("x-queue-name", kept.as_str()),
        ("durable", "true"),
        ("auto-delete", "false"),
    ];
    c.subscribe_with(&t, "k", "auto", &flags).await;
    c.unsubscribe("k").await;
    p.send(&t, "kept").await;

    c.subscribe(&format!("/queue/{transient}"), "again", "auto")
        .await;
    c.assert_quiet().await;
    c.subscribe(&format!("/queue/{kept}"), "k2", "auto").await;
    assert_eq!(c.bodies(1).await, ["kept"]);

    // Exclusive: only the declaring connection consumes it.
    let mine = unique("mine");
    c.subscribe_with(
        &t,
        "x",
        "auto",
        &[("x-queue-name", &mine), ("exclusive", "true")],
    )
    .await;
    let other = connect(server.addr).await;
    let err = other
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", format!("/queue/{mine}"))
                .header("id", "o"),
        )
        .await;
    assert!(h(&err, "message").contains("exclusive"), "{err:?}");
}

#[tokio::test]
async fn the_amq_topic_exchange_is_the_topic_namespace() {
    let server = Server::start();
    let key = unique("ex");
    let mut c = connect(server.addr).await;
    c.subscribe(&format!("/exchange/amq.topic/{key}"), "e", "auto")
        .await;
    let mut p = connect(server.addr).await;
    p.send(&format!("/topic/{key}"), "via-topic").await;
    p.send(&format!("/exchange/amq.topic/{key}"), "via-exchange")
        .await;
    assert_eq!(c.bodies(2).await, ["via-topic", "via-exchange"]);
    let err = p
        .expect_error(
            Frame::new(Command::Send)
                .header("destination", "/exchange/amq.direct/k")
                .body("x"),
        )
        .await;
    assert!(h(&err, "message").contains("amq.direct"), "{err:?}");
    c.assert_quiet().await;
}

/// How one peer's clients name a durable subscription: whether it needs the connection's
/// `client-id`, and the headers that name it on SUBSCRIBE — the same headers on UNSUBSCRIBE remove
/// it, in every dialect.
type Headers = Vec<(&'static str, &'static str)>;

fn dialects() -> [(&'static str, bool, Headers); 5] {
    [
        (
            "ActiveMQ",
            true,
            vec![("activemq.subscriptionName", "audit")],
        ),
        (
            "ActiveMQ as django-stomp misspells it",
            true,
            vec![("activemq.subcriptionName", "audit")],
        ),
        (
            "Artemis",
            true,
            vec![("durable-subscription-name", "audit")],
        ),
        (
            "Artemis, subscriber spelling",
            true,
            vec![("durable-subscriber-name", "audit")],
        ),
        (
            "RabbitMQ",
            false,
            vec![("durable", "true"), ("auto-delete", "false")],
        ),
    ]
}

#[tokio::test]
async fn durable_subscriptions_keep_messages_while_away_in_every_dialect() {
    let server = Server::start();
    for (dialect, needs_client_id, names) in dialects() {
        let t = format!("/topic/{}", unique("dur"));
        let client = unique("client");
        let id = unique("sub");
        let conn = || async {
            if needs_client_id {
                connect_client(server.addr, &client).await
            } else {
                connect(server.addr).await
            }
        };
        let mut c = conn().await;
        c.subscribe_with(&t, &id, "client-individual", &names).await;
        let gone = c.drop_connection();
        wait_closed(&server, &gone);
        let mut p = connect(server.addr).await;
        p.send(&t, "away-1").await;
        p.send(&t, "away-2").await;

        let mut c = conn().await;
        c.subscribe_with(&t, &id, "auto", &names).await;
        assert_eq!(c.bodies(2).await, ["away-1", "away-2"], "{dialect}");
        let mut remove = Frame::new(Command::Unsubscribe).header("id", &id);
        for (k, v) in &names {
            remove = remove.header(k, *v);
        }
        c.request(remove).await;
        p.send(&t, "after-removal").await;
        c.subscribe_with(&t, &id, "auto", &names).await;
        c.assert_quiet().await;
        p.send(&t, "new").await;
        assert_eq!(
            c.bodies(1).await,
            ["new"],
            "{dialect}: a fresh subscription"
        );
    }
}

#[tokio::test]
async fn activemq_durable_subscriptions_have_one_subscriber_and_need_a_client_id() {
    let server = Server::start();
    let t = format!("/topic/{}", unique("one"));
    let client = unique("client");
    let name = [("activemq.subscriptionName", "only")];
    let mut first = connect_client(server.addr, &client).await;
    first.subscribe_with(&t, "s", "auto", &name).await;
    let second = connect_client(server.addr, &client).await;
    let err = second
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", &t)
                .header("id", "s")
                .header("activemq.subscriptionName", "only"),
        )
        .await;
    let msg = h(&err, "message");
    assert!(msg.contains("only") && msg.contains(&client), "{msg}");

    let anonymous = connect(server.addr).await;
    let err = anonymous
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", &t)
                .header("id", "s")
                .header("durable-subscription-name", "x"),
        )
        .await;
    assert!(h(&err, "message").contains("client-id"), "{err:?}");

    // The first subscriber was not disturbed.
    let mut p = connect(server.addr).await;
    p.send(&t, "still").await;
    assert_eq!(first.bodies(1).await, ["still"]);
}

#[tokio::test]
async fn empty_segments_in_virtual_topic_names_are_refused_and_harm_nobody() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("bystander"));
    let mut bystander = connect(server.addr).await;
    bystander.subscribe(&q, "b", "auto").await;
    for (command, destination) in [
        (Command::Send, "/topic/VirtualTopic."),
        (Command::Send, "/topic/VirtualTopic.a..b"),
        (Command::Subscribe, "/queue/Consumer..VirtualTopic.x"),
        (Command::Subscribe, "/queue/Consumer.VirtualTopic.x"),
    ] {
        let c = connect(server.addr).await;
        let err = c
            .expect_error(
                Frame::new(command)
                    .header("destination", destination)
                    .header("id", "s")
                    .body("x"),
            )
            .await;
        assert!(
            h(&err, "message").contains("virtual-topic"),
            "{destination}: {err:?}"
        );
    }
    let mut p = connect(server.addr).await;
    p.send(&q, "fine").await;
    assert_eq!(bystander.bodies(1).await, ["fine"]);
}

/// docs/protocol.md "Topics, bindings and durable subscriptions": a topic takes any number of
/// bindings; one SEND stores a copy in each in one commit, and its RECEIPT means all are durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bindings_on_one_topic_take_one_send_in_one_commit() {
    const BINDINGS: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let x = unique("many");
    let topic = format!("/topic/{x}");
    let queue = |i: usize| format!("{x}.q{i}");
    let bystander_q = format!("/queue/{x}.bystander");
    let mut server = start_on(&data, &[]);
    let mut bystander = connect(server.addr).await;
    bystander.subscribe(&bystander_q, "b", "auto").await;

    let mut c = connect(server.addr).await;
    // Pipelined: the last SUBSCRIBE's RECEIPT comes after every earlier one was handled.
    for i in 0..BINDINGS {
        let name = queue(i);
        let mut f = Frame::new(Command::Subscribe)
            .header("destination", &topic)
            .header("id", format!("s{i}"))
            .header("ack", "client-individual")
            .header("x-queue-name", &name)
            .header("durable", "true")
            .header("auto-delete", "false");
        if i + 1 == BINDINGS {
            c.request(f).await;
        } else {
            f = f.header("prefetch-count", "1");
            c.send_frame(f).await;
        }
    }
    let gone = c.drop_connection();
    wait_closed(&server, &gone);

    let mut p = connect(server.addr).await;
    p.send(&topic, "to all").await;
    p.send(&bystander_q, "unaffected").await;
    assert_eq!(bystander.bodies(1).await, ["unaffected"]);
    server.stop();

    let server = start_on(&data, &[]);
    let (queues, messages) = recovered(&server);
    assert!(queues as usize >= BINDINGS, "{queues} queues recovered");
    assert_eq!(messages as usize, BINDINGS, "one copy in every bound queue");
    let mut c = connect(server.addr).await;
    for i in [0, BINDINGS / 2, BINDINGS - 1] {
        c.subscribe(&format!("/queue/{}", queue(i)), &format!("s{i}"), "auto")
            .await;
        assert_eq!(c.bodies(1).await, ["to all"], "{}", queue(i));
    }
    c.assert_quiet().await;
}

#[tokio::test]
async fn repeated_headers_reach_the_subscriber_in_order_and_broker_headers_cannot_be_forged() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("rep"));
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    let mut p = connect(server.addr).await;
    p.send_with(
        &q,
        "x",
        &[
            ("x-rep", "first"),
            ("correlation-id", "c-1"),
            ("x-rep", "second"),
            ("message-id", "forged"),
            ("subscription", "forged"),
            ("redelivered", "true"),
            ("x-rep", "third"),
        ],
    )
    .await;
    let m = c.message().await;
    let reps: Vec<&str> = m
        .headers
        .iter()
        .filter(|(k, _)| *k == "x-rep")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(reps, ["first", "second", "third"]);
    assert_eq!(h(&m, "correlation-id"), "c-1");
    for reserved in ["message-id", "subscription", "redelivered"] {
        let values: Vec<&str> = m
            .headers
            .iter()
            .filter(|(k, _)| *k == reserved)
            .map(|(_, v)| v)
            .collect();
        assert!(
            values.len() <= 1 && !values.contains(&"forged") && !values.contains(&"true"),
            "{reserved}: {values:?}"
        );
    }
}

#[tokio::test]
async fn bindings_and_durable_subscriptions_survive_a_restart_and_temporary_queues_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let x = unique("restart");
    let vt = format!("/topic/VirtualTopic.{x}");
    let consumer_queue = format!("/queue/Consumer.A.VirtualTopic.{x}");
    let bound_topic = format!("/topic/{x}.bound");
    let bound_queue = format!("{x}.bound-q");
    let durable_topic = format!("/topic/{x}.durable");
    let temp_topic = format!("/topic/{x}.temp");
    let temp_queue = format!("{x}.temp-q");
    let client = unique("client");
    {
        let mut server = start_on(&data, &[]);
        let mut c = connect_client(server.addr, &client).await;
        c.subscribe(&consumer_queue, "vt", "auto").await;
        let keep = [
            ("x-queue-name", bound_queue.as_str()),
            ("durable", "true"),
            ("auto-delete", "false"),
        ];
        c.subscribe_with(&bound_topic, "b", "auto", &keep).await;
        c.subscribe_with(
            &durable_topic,
            "d",
            "auto",
            &[("activemq.subscriptionName", "d")],
        )
        .await;
        let not_durable = [
            ("x-queue-name", temp_queue.as_str()),
            ("durable", "false"),
            ("auto-delete", "false"),
        ];
        c.subscribe_with(&temp_topic, "t", "auto", &not_durable)
            .await;
        let gone = c.drop_connection();
        wait_closed(&server, &gone);
        let mut p = connect(server.addr).await;
        for t in [&vt, &bound_topic, &durable_topic, &temp_topic] {
            p.send(t, "before").await;
        }
        server.stop();
    }
    let server = start_on(&data, &[]);
    server.wait_for_log(&["temporary queue removed at start", &temp_queue]);
    let mut p = connect(server.addr).await;
    for t in [&vt, &bound_topic, &durable_topic, &temp_topic] {
        p.send(t, "after").await;
    }
    let mut c = connect_client(server.addr, &client).await;
    c.subscribe(&consumer_queue, "vt", "auto").await;
    assert_eq!(c.bodies(2).await, ["before", "after"], "virtual topic");
    c.subscribe(&format!("/queue/{bound_queue}"), "b", "auto")
        .await;
    assert_eq!(
        c.bodies(2).await,
        ["before", "after"],
        "x-queue-name binding"
    );
    c.subscribe_with(
        &durable_topic,
        "d",
        "auto",
        &[("activemq.subscriptionName", "d")],
    )
    .await;
    assert_eq!(
        c.bodies(2).await,
        ["before", "after"],
        "durable subscription"
    );
    c.subscribe(&format!("/queue/{temp_queue}"), "t", "auto")
        .await;
    c.assert_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_a_virtual_topic_fan_out_keeps_every_receipted_copy_in_every_queue() {
    const QUEUES: usize = 5;
    const BEFORE_KILL: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let x = unique("fan");
    let topic = format!("/topic/VirtualTopic.{x}");
    let queues: Vec<String> = (0..QUEUES)
        .map(|i| format!("/queue/Consumer.c{i}.VirtualTopic.{x}"))
        .collect();
    let mut server = start_on(&data, &[]);
    let mut c = connect(server.addr).await;
    for (i, q) in queues.iter().enumerate() {
        c.subscribe(q, &format!("s{i}"), "auto").await;
    }
    let gone = c.drop_connection();
    wait_closed(&server, &gone);

    let receipted = Arc::new(Mutex::new(Vec::new()));
    let enough = Arc::new(tokio::sync::Notify::new());
    let producer = {
        let (receipted, enough, addr, topic) = (
            receipted.clone(),
            enough.clone(),
            server.addr,
            topic.clone(),
        );
        tokio::spawn(async move {
            let mut p = connect(addr).await;
            for i in 0.. {
                let m = format!("m{i}");
                p.send(&topic, m.clone()).await;
                let mut r = receipted.lock().unwrap();
                r.push(m);
                if r.len() == BEFORE_KILL {
                    enough.notify_one();
                }
            }
        })
    };
    enough.notified().await;
    server.kill();
    // The producer's next receipt never comes: it fails on the closed connection.
    assert!(producer.await.is_err());
    let receipted: BTreeSet<String> = receipted.lock().unwrap().iter().cloned().collect();
    assert!(receipted.len() >= BEFORE_KILL);

    let server = start_on(&data, &[]);
    let (_, messages) = recovered(&server);
    assert_eq!(
        messages as usize % QUEUES,
        0,
        "every queue holds the same copies"
    );
    let per_queue = messages as usize / QUEUES;
    let mut c = connect(server.addr).await;
    let mut first: Option<BTreeSet<String>> = None;
    for (i, q) in queues.iter().enumerate() {
        c.subscribe(q, &format!("s{i}"), "auto").await;
        let got: BTreeSet<String> = c.messages(per_queue).await.iter().map(body).collect();
        assert!(
            got.is_superset(&receipted),
            "{q}: receipted but missing: {:?}",
            receipted.difference(&got).collect::<Vec<_>>()
        );
        match &first {
            None => first = Some(got),
            Some(f) => assert_eq!(&got, f, "{q} differs from the first queue"),
        }
    }
    c.assert_quiet().await;
}

#[tokio::test]
async fn wildcards_in_both_syntaxes_for_subscriptions_and_bindings() {
    let server = Server::start();
    let x = unique("wild");
    let mut subs = Vec::new();
    for pattern in ["*", "#", ">", "*.eu"] {
        let mut c = connect(server.addr).await;
        c.subscribe(&format!("/topic/{x}.{pattern}"), "s", "auto")
            .await;
        subs.push((pattern, c));
    }
    let bound = unique("bound");
    let mut b = connect(server.addr).await;
    b.subscribe_with(
        &format!("/topic/{x}.*.eu"),
        "b",
        "auto",
        &[
            ("x-queue-name", &bound),
            ("durable", "true"),
            ("auto-delete", "false"),
        ],
    )
    .await;
    b.unsubscribe("b").await;

    let mut p = connect(server.addr).await;
    for t in ["orders", "orders.eu", "eu"] {
        p.send(&format!("/topic/{x}.{t}"), t).await;
    }
    p.send(&format!("/topic/{x}"), "bare").await;
    let want: [(&str, &[&str]); 4] = [
        ("*", &["orders", "eu"]),
        ("#", &["orders", "orders.eu", "eu", "bare"]),
        (">", &["orders", "orders.eu", "eu", "bare"]),
        ("*.eu", &["orders.eu"]),
    ];
    for ((pattern, c), (_, expected)) in subs.iter_mut().zip(want) {
        let got = c.quiet().await;
        assert_eq!(bodies(&got), expected, "pattern {pattern}");
        for m in &got {
            let sent_to = if body(m) == "bare" {
                format!("/topic/{x}")
            } else {
                format!("/topic/{x}.{}", body(m))
            };
            assert_eq!(h(m, "destination"), sent_to, "the topic it was sent to");
        }
    }
    b.subscribe(&format!("/queue/{bound}"), "q", "auto").await;
    assert_eq!(b.bodies(1).await, ["orders.eu"]);
    b.assert_quiet().await;

    let err = p
        .expect_error(
            Frame::new(Command::Send)
                .header("destination", format!("/topic/{x}.*"))
                .body("?"),
        )
        .await;
    assert!(h(&err, "message").contains("wildcard"), "{err:?}");
}

/// The routable destination a `reply-to` was rewritten to.
fn reply_to(m: &Frame) -> String {
    h(m, "reply-to").to_owned()
}

#[tokio::test]
async fn request_reply_through_a_temporary_queue_the_rabbitmq_way_and_the_activemq_way() {
    let server = Server::start();
    let requests = format!("/queue/{}", unique("requests"));
    let mut responder = connect(server.addr).await;
    responder.subscribe(&requests, "r", "auto").await;

    // RabbitMQ: no SUBSCRIBE; the reply-to alone makes the queue and its subscription.
    let mut rabbit = connect(server.addr).await;
    rabbit
        .send_with(&requests, "ping-1", &[("reply-to", "/temp-queue/answers")])
        .await;
    // ActiveMQ: the requester subscribes to its temporary queue first.
    let mut active = connect(server.addr).await;
    active.subscribe("/temp-queue/mine", "own", "auto").await;
    active
        .send_with(&requests, "ping-2", &[("reply-to", "/temp-queue/mine")])
        .await;

    let got = responder.messages(2).await;
    let mut routes = Vec::new();
    for m in &got {
        let to = reply_to(m);
        assert!(to.starts_with("/queue/stampede.temp."), "{to}");
        responder.send(&to, format!("pong to {}", body(m))).await;
        routes.push(to);
    }
    assert_ne!(routes[0], routes[1], "each session its own queue");
    let answer = rabbit.message().await;
    assert_eq!(body(&answer), "pong to ping-1");
    assert_eq!(h(&answer, "subscription"), "/temp-queue/answers");
    let answer = active.message().await;
    assert_eq!(body(&answer), "pong to ping-2");
    assert_eq!(h(&answer, "subscription"), "own", "no second subscription");
    assert_eq!(h(&answer, "destination"), "/temp-queue/mine");
    rabbit.assert_quiet().await;
    active.assert_quiet().await;

    // Private: another connection cannot consume it.
    let thief = connect(server.addr).await;
    let err = thief
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", &routes[1])
                .header("id", "t"),
        )
        .await;
    assert!(h(&err, "message").contains("exclusive"), "{err:?}");

    // Gone with its connection: a late reply is accepted, dropped and counted, and creates
    // nothing.
    let gone = rabbit.drop_connection();
    wait_closed(&server, &gone);
    responder.send(&routes[0], "too late").await;
    responder.send(&routes[0], "too late").await;
    let scrape = stampede_tests::http::Scrape::take(&server).await;
    assert_eq!(
        scrape.value(
            "stampede_dropped_messages_total",
            &[("reason", "temp_queue_gone")]
        ),
        2.0
    );
    let err = connect(server.addr)
        .await
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", &routes[0])
                .header("id", "late"),
        )
        .await;
    assert!(h(&err, "message").contains("no queue named"), "{err:?}");
    let err = connect(server.addr)
        .await
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", "/topic/x")
                .header("id", "b")
                .header("x-queue-name", routes[0].trim_start_matches("/queue/")),
        )
        .await;
    assert!(h(&err, "message").contains("temporary"), "{err:?}");
}

#[tokio::test]
async fn a_temporary_topic_reply_reaches_its_subscriber_and_nobody_else() {
    let server = Server::start();
    // A wildcard subscriber of every topic does not see temporary topics.
    let mut everything = connect(server.addr).await;
    everything.subscribe("/topic/#", "all", "auto").await;
    let requests = format!("/queue/{}", unique("treq"));
    let mut responder = connect(server.addr).await;
    responder.subscribe(&requests, "r", "auto").await;
    let mut requester = connect(server.addr).await;
    requester.subscribe("/temp-topic/news", "n", "auto").await;
    requester
        .send_with(&requests, "q", &[("reply-to", "/temp-topic/news")])
        .await;
    let m = responder.message().await;
    let to = reply_to(&m);
    assert!(to.starts_with("/topic/stampede.temp-topic."), "{to}");
    responder.send(&to, "a").await;
    assert_eq!(requester.bodies(1).await, ["a"]);

    let snoop = connect(server.addr).await;
    let err = snoop
        .expect_error(
            Frame::new(Command::Subscribe)
                .header("destination", &to)
                .header("id", "s"),
        )
        .await;
    assert!(
        h(&err, "message").contains("belongs to another connection"),
        "{err:?}"
    );
    let plain = format!("/topic/{}", unique("plain"));
    responder.send(&plain, "seen").await;
    let got = everything.messages(1).await;
    assert_eq!(
        bodies(&got),
        ["seen"],
        "the reply was not seen, the plain topic was"
    );
    everything.assert_quiet().await;
    responder.send(&to, "b").await;
    assert_eq!(
        requester.bodies(1).await,
        ["b"],
        "the requester is unaffected"
    );
}
