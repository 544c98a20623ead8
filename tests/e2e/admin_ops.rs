//! The admin API routes that change things (docs/admin-api.md): deleting a queue, run-time
//! settings that outlive a restart, redriving dead letters intact to where they died, bindings,
//! listing and closing connections, test messages, the overview, and the OpenAPI document naming
//! every route that is served.

use serde_json::{json, Value};
use stampede_proto::Command;
use stampede_tests::http::request;
use stampede_tests::{unique, Server};

use crate::admin_api::{call, get};
use crate::support_q::{body, connect, h};

async fn send_json(server: &Server, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = request(server.http_addr, method, path, &[], &body.to_string()).await;
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

#[tokio::test]
async fn settings_change_at_run_time_and_outlive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let q = unique("set");
    let mut server = Server::builder().data_dir(dir.path()).start();
    let path = format!("/api/queues/{q}");
    // PATCH needs the queue; PUT makes it.
    let change = json!({"max_deliveries": 2, "visibility_timeout_s": 7.5, "max_messages": null});
    let (status, answer) = send_json(&server, "PATCH", &path, &change).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("NotFound")));
    let (status, answer) = send_json(&server, "PUT", &path, &change).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["settings"]["max_deliveries"], 2);
    assert_eq!(answer["settings"]["visibility_timeout_s"], 7.5);
    let (status, answer) = send_json(
        &server,
        "PATCH",
        &path,
        &json!({"visibility_timeout_s": null, "max_bytes": 1024}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["settings"]["visibility_timeout_s"], Value::Null);
    assert_eq!(answer["settings"]["max_deliveries"], 2, "kept");
    let backoff =
        json!({"redelivery_delay_s": 0.5, "redelivery_multiplier": 2, "redelivery_delay_max_s": 4});
    let (status, answer) = send_json(&server, "PATCH", &path, &backoff).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["settings"]["redelivery_delay_s"], 0.5);
    assert_eq!(answer["settings"]["redelivery_delay_max_s"], 4.0);
    // Refused changes change nothing.
    for (bad, error) in [
        (json!({"max_deliveries": 5000}), "InvalidParameter"),
        (json!({"retention_s": 0}), "InvalidParameter"),
        (json!({"visibility_timeout_s": -1}), "InvalidParameter"),
        (json!({"dead_letter_queue": "/queue/x"}), "InvalidParameter"),
        (json!({"redelivery_multiplier": 20}), "InvalidParameter"),
        (json!({"redelivery_delay_s": 50000}), "InvalidParameter"),
        (json!({"max_deliverys": 1}), "InvalidJson"),
        (json!({"max_deliveries": "two"}), "InvalidJson"),
    ] {
        let (status, answer) = send_json(&server, "PATCH", &path, &bad).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{bad}: {answer}"
        );
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, text) = request(server.http_addr, "PATCH", &path, &[], "{not json").await;
    assert_eq!(status, 400, "{text}");

    server.stop();
    let server = Server::builder().data_dir(dir.path()).start();
    let (_, shown) = get(&server, &path, None).await;
    let s = &shown["settings"];
    assert_eq!(
        (s["max_deliveries"].as_u64(), s["max_bytes"].as_u64()),
        (Some(2), Some(1024)),
        "{shown}"
    );
    assert_eq!(s["visibility_timeout_s"], Value::Null);
    assert_eq!(s["redelivery_multiplier"], 2.0, "{shown}");
    // The limit is live: a SEND over max_bytes is refused.
    let c = connect(server.addr).await;
    let big = "x".repeat(2048);
    let err = c
        .expect_error(
            stampede_proto::Frame::new(Command::Send)
                .header("destination", format!("/queue/{q}"))
                .body(big),
        )
        .await;
    assert!(h(&err, "message").contains("full"), "{err:?}");
}

#[tokio::test]
async fn a_queue_is_deleted_unless_consumed_and_its_bindings_go_with_it() {
    let server = Server::start();
    let (q, busy, topic) = (unique("del"), unique("busy"), unique("t"));
    let mut c = connect(server.addr).await;
    c.send(&format!("/queue/{q}"), "m").await;
    let (status, answer) = call(&server, "PUT", &format!("/api/bindings/{topic}/{q}"), None).await;
    assert_eq!(status, 201, "{answer}");
    let (_, shown) = get(&server, &format!("/api/queues/{q}"), None).await;
    assert_eq!(
        shown["bindings"],
        json!([{"topic": topic, "virtual": false}])
    );
    c.subscribe(&format!("/queue/{busy}"), "s", "auto").await;
    let (status, answer) = call(&server, "DELETE", &format!("/api/queues/{busy}"), None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("QueueInUse")),
        "{answer}"
    );

    let (status, answer) = call(&server, "DELETE", &format!("/api/queues/{q}"), None).await;
    assert_eq!(
        (status, answer["deleted"].as_str()),
        (200, Some(&*q)),
        "{answer}"
    );
    let (status, _) = get(&server, &format!("/api/queues/{q}"), None).await;
    assert_eq!(status, 404);
    let (_, bindings) = get(&server, "/api/bindings", None).await;
    assert!(
        !bindings["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["queue"] == *q),
        "{bindings}"
    );
    let (status, _) = call(&server, "DELETE", &format!("/api/queues/{q}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bindings_route_a_topic_into_a_queue_until_unbound() {
    let server = Server::start();
    let (topic, q) = (unique("prices"), unique("audit"));
    let vq = format!("Consumer.A.VirtualTopic.{topic}");
    let mut c = connect(server.addr).await;
    c.send(&format!("/queue/{vq}"), "made").await;
    let bind = format!("/api/bindings/{topic}/{q}");
    let (status, answer) = call(&server, "PUT", &bind, None).await;
    assert_eq!(status, 201, "{answer}");
    c.send(&format!("/topic/{topic}"), "p1").await;
    let (_, shown) = get(&server, &format!("/api/queues/{q}"), None).await;
    assert_eq!(shown["visible"], 1, "{shown}");
    let (_, topics) = get(&server, "/api/topics", None).await;
    let t = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == *topic)
        .unwrap_or_else(|| panic!("{topics}"));
    assert_eq!(t["bound"], json!([q]));
    let (_, all) = get(&server, "/api/bindings", None).await;
    let virtual_topic = format!("VirtualTopic.{topic}");
    assert!(
        all["bindings"].as_array().unwrap().contains(&json!({
            "topic": virtual_topic, "queue": vq, "virtual": true
        })),
        "{all}"
    );
    // A binding by name cannot be removed; one that does not exist is not found.
    let (status, answer) = call(
        &server,
        "DELETE",
        &format!("/api/bindings/{virtual_topic}/{vq}"),
        None,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = call(
        &server,
        "DELETE",
        &format!("/api/bindings/{topic}/nope"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    let (status, answer) = call(&server, "DELETE", &bind, None).await;
    assert_eq!(status, 200, "{answer}");
    c.send(&format!("/topic/{topic}"), "p2").await;
    let (_, shown) = get(&server, &format!("/api/queues/{q}"), None).await;
    assert_eq!(shown["visible"], 1, "no longer routed: {shown}");
}

#[tokio::test]
async fn redrive_restores_dead_letters_intact_to_their_queues() {
    let server = Server::start();
    let (a, b) = (unique("rd-a"), unique("rd-b"));
    let mut c = connect(server.addr).await;
    let headers = [
        ("x-order", "17:a"),
        ("content-type", "text/plain"),
        ("x-ünï", "cödé"),
    ];
    for (q, m) in [(&a, "a1"), (&b, "b1"), (&a, "a2")] {
        c.send_with(&format!("/queue/{q}"), m.to_owned(), &headers)
            .await;
    }
    // Each dies by a NACK that does not requeue.
    for q in [&a, &b] {
        let mut k = connect(server.addr).await;
        k.subscribe_with(&format!("/queue/{q}"), "k", "client-individual", &[])
            .await;
        let n = if q == &a { 2 } else { 1 };
        for m in k.messages(n).await {
            let nack = k.settle_frame(Command::Nack, &m).header("requeue", "false");
            k.request(nack).await;
        }
    }
    let dlq_a = format!("DLQ.{a}");
    let (_, peeked) = get(&server, &format!("/api/queues/{dlq_a}/messages"), None).await;
    let dead = peeked["messages"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{peeked}");
    assert!(
        dead[0]["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["x-death-reason", "nack"])),
        "{peeked}"
    );

    // Not a dead-letter queue: refused, nothing moves.
    let (status, answer) = send_json(
        &server,
        "POST",
        &format!("/api/queues/{a}/redrive"),
        &json!({}),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("NotADeadLetterQueue")),
        "{answer}"
    );
    let (status, answer) = send_json(
        &server,
        "POST",
        &format!("/api/queues/{dlq_a}/redrive"),
        &json!({"limit": 0}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = send_json(&server, "POST", "/api/queues/no-such/redrive", &json!({})).await;
    assert_eq!(status, 404);

    // One at a time: the batch limit and `remaining`.
    let (status, r) = send_json(
        &server,
        "POST",
        &format!("/api/queues/{dlq_a}/redrive"),
        &json!({"limit": 1}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["moved"].as_u64(), r["remaining"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    // By id, with an id that names nothing.
    let id = dead[1]["message_id"].as_str().unwrap();
    let (_, r) = send_json(
        &server,
        "POST",
        &format!("/api/queues/{dlq_a}/redrive"),
        &json!({"message_ids": [id, "1-999999"]}),
    )
    .await;
    assert_eq!(r["moved"], 1, "{r}");
    assert_eq!(r["missing"], json!(["1-999999"]));
    assert_eq!(r["by_destination"], json!({a.clone(): 1}));
    // The other dead-letter queue: its message goes to its own queue.
    let (_, r) = call(
        &server,
        "POST",
        &format!("/api/queues/DLQ.{b}/redrive"),
        None,
    )
    .await;
    assert_eq!(r["by_destination"], json!({b.clone(): 1}), "{r}");

    // Consumed again, as first sent: same body, same headers, no death headers, first delivery.
    c.subscribe(&format!("/queue/{a}"), "again", "auto").await;
    let back = c.messages(2).await;
    assert_eq!([body(&back[0]), body(&back[1])], ["a1", "a2"]);
    for m in &back {
        for (k, v) in headers {
            assert_eq!(m.headers.get(k), Some(v), "{m:?}");
        }
        assert_eq!(m.headers.get("x-death-reason"), None, "{m:?}");
        assert_eq!(m.headers.get("x-original-destination"), None, "{m:?}");
        assert_eq!(m.headers.get("redelivered"), None, "{m:?}");
    }
    let (_, shown) = get(&server, &format!("/api/queues/{dlq_a}"), None).await;
    assert_eq!(shown["visible"], 0);
}

#[tokio::test]
async fn connections_are_listed_with_their_subscriptions_and_closed_by_id() {
    let server = Server::start();
    let q = unique("conn");
    let mut c = connect(server.addr).await;
    c.subscribe(&format!("/queue/{q}"), "sub-1", "client").await;
    let session: u64 = c.session().parse().unwrap();
    let (status, list) = get(&server, "/api/connections", None).await;
    assert_eq!(status, 200, "{list}");
    let mine = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == session)
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    assert_eq!(mine["transport"], "tcp");
    assert_eq!(mine["listener"], "stomp");
    assert_eq!(mine["version"], "1.2");
    assert_eq!(
        mine["subscriptions"],
        json!([{"id": "sub-1", "destination": format!("/queue/{q}"), "ack": "client"}])
    );
    c.unsubscribe("sub-1").await;
    let (_, list) = get(&server, "/api/connections", None).await;
    let mine = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == session)
        .unwrap()
        .clone();
    assert_eq!(mine["subscriptions"], json!([]));

    for (path, status) in [
        ("/api/connections/abc", 400),
        ("/api/connections/999999", 404),
    ] {
        let (got, answer) = call(&server, "DELETE", path, None).await;
        assert_eq!(got, status, "{path}: {answer}");
    }
    let (status, answer) = call(
        &server,
        "DELETE",
        &format!("/api/connections/{session}"),
        None,
    )
    .await;
    assert_eq!(
        (status, answer["closed"].as_u64()),
        (200, Some(session)),
        "{answer}"
    );
    let err = c.recv().await;
    assert_eq!(err.command, Command::Error);
    assert!(h(&err, "message").contains("operator"), "{err:?}");
    c.assert_closed().await;
    server.wait_for_log(&[
        "\"closed by an operator\"",
        &format!("\"session\":{session}}}"),
    ]);
    let (_, list) = get(&server, "/api/connections", None).await;
    assert!(!list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == session));
}

#[tokio::test]
async fn a_test_message_is_sent_as_a_stomp_send_would_be_and_counted_in_the_overview() {
    let server = Server::start();
    let q = unique("send");
    let mut c = connect(server.addr).await;
    c.subscribe(&format!("/queue/{q}"), "s", "auto").await;
    let msg = json!({"destination": format!("/queue/{q}"), "body": "héllo",
                     "headers": {"x-test": "1", "content-type": "text/plain"}});
    let (status, answer) = send_json(&server, "POST", "/api/messages", &msg).await;
    assert_eq!(status, 201, "{answer}");
    let m = c.message().await;
    assert_eq!(body(&m), "héllo");
    assert_eq!(h(&m, "x-test"), "1");
    for (bad, error) in [
        (
            json!({"destination": "/nowhere/x", "body": ""}),
            "InvalidParameter",
        ),
        (
            json!({"destination": format!("/queue/{q}"), "headers": {"message-id": "x"}}),
            "InvalidParameter",
        ),
        (json!({"body": "no destination"}), "InvalidJson"),
        (
            json!({"destination": format!("/queue/{q}"), "colour": "red"}),
            "InvalidJson",
        ),
    ] {
        let (status, answer) = send_json(&server, "POST", "/api/messages", &bad).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{bad}: {answer}"
        );
    }
    c.assert_quiet().await;
    let (status, o) = get(&server, "/api/overview", None).await;
    assert_eq!(status, 200, "{o}");
    assert!(o["queues"].as_u64() >= Some(1), "{o}");
    assert!(o["connections"].as_u64() >= Some(1), "{o}");
    assert_eq!(o["store"]["failure"], Value::Null);
    assert!(o["version"].as_str().is_some_and(|v| !v.is_empty()));
}

#[tokio::test]
async fn the_openapi_document_names_exactly_the_routes_served() {
    let server = Server::start();
    let (status, text) = request(server.http_addr, "GET", "/api/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in ["get", "put", "post", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    // Every documented route is served: neither "no such route" nor "method not allowed".
    for (method, path) in &documented {
        let concrete = path
            .replace("{name}", "no-such-queue")
            .replace("{topic}", "t")
            .replace("{queue}", "no-such-queue")
            .replace("{id}", "999999");
        let (status, text) = request(server.http_addr, method, &concrete, &[], "").await;
        assert_ne!(status, 405, "{method} {path}: {text}");
        assert!(
            !text.contains("no admin API route"),
            "{method} {path}: {text}"
        );
    }
    // Every route of the reference (docs/admin-api.md) is documented, and nothing else.
    let reference = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/admin-api.md"),
    )
    .unwrap();
    let mut listed: Vec<(String, String)> = reference
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(route, _)| route.to_owned()))
        .filter_map(|route| {
            let (method, path) = route.split_once(' ')?;
            Some((method.to_owned(), path.split('?').next()?.to_owned()))
        })
        .collect();
    listed.sort();
    listed.dedup();
    documented.sort();
    assert_eq!(listed, documented);
}
