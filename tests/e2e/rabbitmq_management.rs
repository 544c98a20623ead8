//! RabbitMQ's management API on its own listener (docs/rabbitmq-management.md): off unless
//! configured; the overview, queues, bindings, channels and consumers in RabbitMQ's shapes after
//! real STOMP traffic; `get` as a peek and as a take; purge; RabbitMQ's error shapes for unknown
//! queues, virtual hosts, routes and bad bodies; and the `/api` gate in users mode.

use std::net::SocketAddr;

use serde_json::{json, Value};
use stampede_tests::http::request;
use stampede_tests::{unique, Server};

use crate::support_q::{body, connect, wait_closed};

/// base64("guest:guest"), what RabbitMQ clients send by default.
const GUEST: &str = "Basic Z3Vlc3Q6Z3Vlc3Q=";

fn with_management() -> Server {
    Server::builder()
        .env("LISTENERS__RABBITMQ_MANAGEMENT__BIND", "127.0.0.1:0")
        .start()
}

fn management(server: &Server) -> SocketAddr {
    server.listener("rabbitmq_management")
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
    let (status, text) = request(addr, method, path, &headers, body).await;
    if text.is_empty() {
        return (status, Value::Null);
    }
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let (status, answer) = call(addr, "GET", path, Some(GUEST), "").await;
    assert_eq!(status, 200, "GET {path}: {answer}");
    answer
}

async fn get_messages(addr: SocketAddr, queue: &str, body: Value) -> Value {
    let path = format!("/api/queues/%2F/{queue}/get");
    let (status, answer) = call(addr, "POST", &path, Some(GUEST), &body.to_string()).await;
    assert_eq!(status, 200, "{body}: {answer}");
    answer
}

fn not_found() -> Value {
    json!({"error": "Object Not Found", "reason": "Not Found"})
}

#[tokio::test]
async fn the_listener_is_off_unless_configured() {
    let server = Server::start();
    // The ready line comes after every listener has logged its address.
    server.wait_for_log(&["\"ready\""]);
    assert!(
        !server
            .logs()
            .iter()
            .any(|l| l.contains("rabbitmq_management")),
        "a RabbitMQ management listener without configuration"
    );
}

#[tokio::test]
async fn queues_overview_channels_and_consumers_in_rabbitmq_shapes() {
    let server = with_management();
    let api = management(&server);
    let q = unique("rmq-q");
    let mut c = connect(server.addr).await;
    for i in 0..3 {
        c.send(&format!("/queue/{q}"), format!("m{i}")).await;
    }
    c.subscribe_with(
        &format!("/queue/{q}"),
        "sub-1",
        "client-individual",
        &[("prefetch-count", "1")],
    )
    .await;
    let held = c.message().await;
    assert_eq!(body(&held), "m0");

    let shown = get(api, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(shown["name"], q.as_str());
    assert_eq!(shown["vhost"], "/");
    assert_eq!(
        (
            &shown["durable"],
            &shown["auto_delete"],
            &shown["exclusive"]
        ),
        (&json!(true), &json!(false), &json!(false))
    );
    assert_eq!(
        (
            &shown["messages"],
            &shown["messages_ready"],
            &shown["messages_unacknowledged"]
        ),
        (&json!(3), &json!(2), &json!(1))
    );
    assert_eq!(shown["consumers"], 1);
    assert_eq!(shown["message_stats"]["publish"], 3);
    assert_eq!(shown["message_stats"]["deliver_get"], 1);
    assert_eq!(
        shown["arguments"],
        json!({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": format!("DLQ.{q}")})
    );
    let consumer = &shown["consumer_details"][0];
    assert_eq!(consumer["consumer_tag"], "T_sub-1");
    assert_eq!(consumer["prefetch_count"], 1);
    assert_eq!(consumer["ack_required"], true);
    assert_eq!(consumer["queue"]["name"], q.as_str());
    let channel_name = format!("stomp session {} (1)", c.session());
    assert_eq!(consumer["channel_details"]["name"], channel_name.as_str());

    // Listed, filtered by a part of the name as RabbitMQ's UI filters (without credentials too:
    // open mode admits everyone, as /api does).
    let (status, listed) = call(
        api,
        "GET",
        &format!("/api/queues?name={q}&use_regex=false"),
        None,
        "",
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().expect("an array of queues");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["messages"], 3);
    assert!(listed[0].get("consumer_details").is_none());
    let in_vhost = get(api, "/api/queues/%2F").await;
    assert!(in_vhost
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == q.as_str()));

    let overview = get(api, "/api/overview").await;
    assert!(
        overview["rabbitmq_version"].as_str().is_some(),
        "{overview}"
    );
    assert!(overview["management_version"].as_str().is_some());
    assert_eq!(overview["product_name"], "Stampede");
    assert_eq!(overview["queue_totals"]["messages"], 3);
    assert_eq!(overview["queue_totals"]["messages_unacknowledged"], 1);
    assert_eq!(overview["object_totals"]["consumers"], 1);
    assert_eq!(overview["object_totals"]["channels"], 1);
    assert_eq!(overview["message_stats"]["publish"], 3);

    // Channels as django-stomp reads them: the list, then one by its connection's name + " (1)".
    let channels = get(api, "/api/channels").await;
    let [channel] = channels.as_array().unwrap().as_slice() else {
        panic!("one channel: {channels}");
    };
    assert_eq!(channel["name"], channel_name.as_str());
    assert_eq!(channel["number"], 1);
    assert_eq!(channel["prefetch_count"], 1);
    assert_eq!(channel["consumer_count"], 1);
    assert_eq!(channel["messages_unacknowledged"], 1);
    let connection = channel["connection_details"]["name"].as_str().unwrap();
    let path = format!(
        "/api/channels/{}(1)",
        connection.replace(' ', "%20") + "%20"
    );
    let detail = get(api, &path).await;
    assert_eq!(detail["consumer_details"][0]["consumer_tag"], "T_sub-1");
    assert_eq!(detail["consumer_details"][0]["prefetch_count"], 1);
    let consumers = get(api, "/api/consumers").await;
    assert_eq!(consumers[0]["queue"]["name"], q.as_str());

    // Settled and gone: the counts follow.
    c.ack(&held).await;
    assert_eq!(body(&c.message().await), "m1", "the credit the ACK freed");
    let session = c.session();
    c.disconnect().await;
    wait_closed(&server, &session);
    let shown = get(api, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(
        (&shown["messages"], &shown["consumers"]),
        (&json!(2), &json!(0)),
        "m1 back in the queue, m2 still there: {shown}"
    );
    assert_eq!(shown["message_stats"]["deliver_get"], 2);
    assert_eq!(shown["message_stats"]["ack"], 1);
    assert_eq!(get(api, "/api/channels").await, json!([]));
    let (status, gone) = call(api, "GET", &path, Some(GUEST), "").await;
    assert_eq!((status, gone), (404, not_found()));
}

#[tokio::test]
async fn bindings_are_the_default_exchange_and_the_topics_a_queue_is_bound_to() {
    let server = with_management();
    let api = management(&server);
    let topic = unique("rmq-t");
    let bound = unique("rmq-bound");
    let mut c = connect(server.addr).await;
    c.subscribe_with(
        &format!("/topic/{topic}"),
        "t",
        "auto",
        &[("x-queue-name", &bound)],
    )
    .await;
    let bindings = get(api, &format!("/api/queues/%2F/{bound}/bindings")).await;
    assert_eq!(
        bindings,
        json!([
            {"source": "", "vhost": "/", "destination": bound, "destination_type": "queue",
             "routing_key": bound, "arguments": {}, "properties_key": bound},
            {"source": "amq.topic", "vhost": "/", "destination": bound, "destination_type": "queue",
             "routing_key": topic, "arguments": {}, "properties_key": topic},
        ])
    );
    // A virtual topic's consumer queue is bound by its name.
    let vt = format!("Consumer.app.VirtualTopic.{topic}");
    c.send(&format!("/queue/{vt}"), "x").await;
    let bindings = get(api, &format!("/api/queues/%2F/{vt}/bindings")).await;
    assert_eq!(bindings[1]["source"], "amq.topic");
    assert_eq!(bindings[1]["routing_key"], format!("VirtualTopic.{topic}"));
    assert_eq!(bindings.as_array().unwrap().len(), 2);
    let (status, answer) = call(api, "GET", "/api/queues/%2F/nope/bindings", None, "").await;
    assert_eq!((status, answer), (404, not_found()));
}

#[tokio::test]
async fn get_peeks_with_requeue_takes_without_it_and_purge_empties() {
    let server = with_management();
    let api = management(&server);
    let q = unique("rmq-get");
    let mut c = connect(server.addr).await;
    for i in 0..3 {
        c.send_with(
            &format!("/queue/{q}"),
            format!("{{\"n\":{i}}}"),
            &[
                ("correlation-id", &format!("c-{i}")),
                ("persistent", "true"),
                ("content-type", "application/json"),
                ("tshoot-destination", &q),
            ],
        )
        .await;
    }
    let depth = |v: Value| v["messages"].as_u64();

    let peeked = get_messages(
        api,
        &q,
        json!({"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000}),
    )
    .await;
    let peeked = peeked.as_array().unwrap();
    assert_eq!(peeked.len(), 2);
    let m = &peeked[0];
    assert_eq!(m["payload"], "{\"n\":0}");
    assert_eq!(m["payload_encoding"], "string");
    assert_eq!(m["payload_bytes"], 7);
    assert_eq!(m["redelivered"], false);
    assert_eq!(m["exchange"], "");
    assert_eq!(m["routing_key"], q.as_str());
    assert_eq!(m["message_count"], 2);
    assert_eq!(peeked[1]["message_count"], 1);
    assert_eq!(m["properties"]["correlation_id"], "c-0");
    assert_eq!(m["properties"]["content_type"], "application/json");
    assert_eq!(m["properties"]["delivery_mode"], 2);
    assert_eq!(m["properties"]["headers"]["tshoot-destination"], q.as_str());
    let shown = get(api, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(depth(shown), Some(3), "a requeueing get changes nothing");

    // As django-stomp's helper asks: numbers as strings, ack without requeue.
    let taken = get_messages(
        api,
        &q,
        json!({"vhost": "/", "name": q, "truncate": "50000", "ackmode": "ack_requeue_false",
               "encoding": "auto", "count": "1"}),
    )
    .await;
    assert_eq!(taken[0]["payload"], "{\"n\":0}");
    assert_eq!(taken[0]["message_count"], 2);
    let shown = get(api, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(depth(shown), Some(2), "taken out of the queue");
    let next = get_messages(
        api,
        &q,
        json!({"count": 1, "ackmode": "reject_requeue_true", "encoding": "base64", "truncate": 3}),
    )
    .await;
    assert_eq!(next[0]["payload_encoding"], "base64");
    assert_eq!(
        next[0]["payload"], "eyJu",
        "base64 of the first 3 bytes of {{\"n\":1}}"
    );
    assert_eq!(next[0]["payload_bytes"], 7);

    // A consumer sees what is left, not the message taken.
    c.subscribe(&format!("/queue/{q}"), "s", "auto").await;
    assert_eq!(body(&c.message().await), "{\"n\":1}");
    assert_eq!(body(&c.message().await), "{\"n\":2}");
    c.unsubscribe("s").await;

    let p = unique("rmq-purge");
    for i in 0..4 {
        c.send(&format!("/queue/{p}"), format!("p{i}")).await;
    }
    let path = format!("/api/queues/%2F/{p}/contents");
    let (status, answer) = call(api, "DELETE", &path, Some(GUEST), "").await;
    assert_eq!((status, answer), (204, Value::Null));
    let shown = get(api, &format!("/api/queues/%2F/{p}")).await;
    assert_eq!(depth(shown), Some(0));
    let (status, answer) = call(api, "DELETE", "/api/queues/%2F/nope/contents", None, "").await;
    assert_eq!((status, answer), (404, not_found()));
    // The same purge serves /api.
    c.send(&format!("/queue/{p}"), "again").await;
    let (status, answer) = request(
        server.http_addr,
        "DELETE",
        &format!("/api/queues/{p}/messages"),
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"purged\":1"), "{answer}");
}

#[tokio::test]
async fn bad_input_answers_in_rabbitmq_shapes_and_changes_nothing() {
    let server = with_management();
    let api = management(&server);
    let q = unique("rmq-bad");
    let mut c = connect(server.addr).await;
    c.send(&format!("/queue/{q}"), "kept").await;
    let get_path = format!("/api/queues/%2F/{q}/get");
    let take = r#"{"count":1,"ackmode":"ack_requeue_false","encoding":"auto"}"#;
    for (method, path, body, status, error) in [
        (
            "GET",
            "/api/queues/%2F/nope".to_owned(),
            "",
            404,
            "Object Not Found",
        ),
        (
            "GET",
            format!("/api/queues/other/{q}"),
            "",
            404,
            "Object Not Found",
        ),
        (
            "GET",
            "/api/queues/other".to_owned(),
            "",
            404,
            "Object Not Found",
        ),
        (
            "POST",
            format!("/api/queues/other/{q}/get"),
            take,
            404,
            "Object Not Found",
        ),
        (
            "DELETE",
            format!("/api/queues/vh/{q}/contents"),
            "",
            404,
            "Object Not Found",
        ),
        (
            "GET",
            format!("/api/queues/other/{q}/bindings"),
            "",
            404,
            "Object Not Found",
        ),
        (
            "POST",
            "/api/queues/%2F/nope/get".to_owned(),
            take,
            404,
            "Object Not Found",
        ),
        (
            "GET",
            "/api/exchanges".to_owned(),
            "",
            404,
            "Object Not Found",
        ),
        ("POST", get_path.clone(), "{\"count\":", 400, "bad_request"),
        (
            "POST",
            get_path.clone(),
            "{\"ackmode\":\"ack_requeue_false\"}",
            400,
            "bad_request",
        ),
        (
            "POST",
            get_path.clone(),
            "{\"count\":1,\"ackmode\":\"reject_requeue_false\"}",
            400,
            "bad_request",
        ),
        (
            "POST",
            get_path.clone(),
            "{\"count\":1,\"ackmode\":\"drop\"}",
            400,
            "bad_request",
        ),
        ("GET", get_path.clone(), "", 405, "Method Not Allowed"),
        (
            "GET",
            "/api/queues?use_regex=true&name=x".to_owned(),
            "",
            400,
            "bad_request",
        ),
    ] {
        let (got, answer) = call(api, method, &path, Some(GUEST), body).await;
        assert_eq!(got, status, "{method} {path} {body}: {answer}");
        assert_eq!(answer["error"], error, "{method} {path}: {answer}");
        assert!(
            answer["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{answer}"
        );
    }
    let shown = get(api, &format!("/api/queues/%2F/{q}")).await;
    assert_eq!(shown["messages"], 1, "nothing changed: {shown}");
    assert_eq!(shown["message_stats"]["deliver_get"], 0);
}

#[tokio::test]
async fn in_users_mode_the_api_gate_decides() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[listeners.rabbitmq_management]\nbind = \"127.0.0.1:0\"\n\
             [auth]\nmode = \"users\"\n\
             [auth.users.ops]\npassword_hash = \"{}\"\n\
             [auth.users.app]\npassword_hash = \"{}\"\n\
             [auth.users.app.permissions]\nread = [\"*\"]\nwrite = [\"*\"]\n",
            crate::auth::passwd("ops-secret"),
            crate::auth::passwd("app-secret"),
        ),
    )
    .unwrap();
    let server = Server::builder().config(&config).start();
    let api = management(&server);
    for (auth, status) in [
        (None, 401),
        // guest is no user here.
        (Some(GUEST), 401),
        // ops with a wrong password.
        (Some("Basic b3BzOndyb25n"), 401),
        // app may read and write but administer nothing.
        (Some("Basic YXBwOmFwcC1zZWNyZXQ="), 403),
    ] {
        let (got, answer) = call(api, "GET", "/api/overview", auth, "").await;
        assert_eq!(got, status, "{auth:?}: {answer}");
        assert_eq!(answer["error"], "not_authorized", "{answer}");
        // Refused before the queue is looked at: no 404 tells a stranger what exists.
        let (got, _) = call(api, "DELETE", "/api/queues/%2F/nope/contents", auth, "").await;
        assert_eq!(got, status);
    }
    let (status, answer) = call(
        api,
        "GET",
        "/api/overview",
        Some("Basic b3BzOm9wcy1zZWNyZXQ="),
        "",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
}
