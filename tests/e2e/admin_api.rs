//! The admin API's first routes (docs/admin-api.md): listing queues with their depths and
//! dead letters, paged and filtered; one queue's settings and consumers; peeking without
//! consuming; purging; `{error, message}` 4xx answers for bad input; and the users-mode gate.

use serde_json::Value;
use stampede_proto::Command;
use stampede_tests::http::request;
use stampede_tests::{unique, Server};

use crate::support_q::{body, connect};

pub(crate) async fn get(server: &Server, path: &str, auth: Option<&str>) -> (u16, Value) {
    call(server, "GET", path, auth).await
}

pub(crate) async fn call(
    server: &Server,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
    let (status, text) = request(server.http_addr, method, path, &headers, "").await;
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

fn names(list: &Value) -> Vec<String> {
    list["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn queues_are_listed_shown_peeked_and_purged() {
    let server = Server::start();
    let prefix = unique("admin");
    let (a, b) = (format!("{prefix}.a"), format!("{prefix}.b"));
    let mut c = connect(server.addr).await;
    // b made first: the listing sorts by name, not by age.
    c.send(&format!("/queue/{b}"), "b0").await;
    for i in 0..3 {
        c.send_with(&format!("/queue/{a}"), format!("a{i}"), &[("x-k", "v:1")])
            .await;
    }
    // One of b's messages dead-lettered by a NACK that does not requeue.
    c.send(&format!("/queue/{b}"), "b1").await;
    c.subscribe_with(
        &format!("/queue/{b}"),
        "s",
        "client-individual",
        &[("prefetch-count", "1")],
    )
    .await;
    let m = c.message().await;
    assert_eq!(body(&m), "b0");
    let nack = c.settle_frame(Command::Nack, &m).header("requeue", "false");
    c.request(nack).await;
    let held = c.message().await;
    assert_eq!(body(&held), "b1");

    let (status, list) = get(&server, &format!("/api/queues?prefix={prefix}"), None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list), [a.clone(), b.clone()]);
    let qa = &list["queues"][0];
    assert_eq!(
        (qa["visible"].as_u64(), qa["in_flight"].as_u64()),
        (Some(3), Some(0))
    );
    let qb = &list["queues"][1];
    assert_eq!(qb["in_flight"].as_u64(), Some(1));
    assert_eq!(qb["consumers"].as_u64(), Some(1));
    assert_eq!(qb["dead_letter_queue"].as_str(), Some(&*format!("DLQ.{b}")));
    assert_eq!(qb["dead_letters"].as_u64(), Some(1));

    // Paged: one at a time, the second page after the first's `next`.
    let (_, page) = get(
        &server,
        &format!("/api/queues?prefix={prefix}&limit=1"),
        None,
    )
    .await;
    assert_eq!(names(&page), [a.as_str()]);
    let next = page["next"].as_str().expect("a next page").to_owned();
    let path = format!("/api/queues?prefix={prefix}&limit=1&after={next}");
    let (_, page) = get(&server, &path, None).await;
    assert_eq!(names(&page), [b.as_str()]);
    assert!(page.get("next").is_none(), "{page}");

    let (status, shown) = get(&server, &format!("/api/queues/{b}"), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(
        shown["settings"]["visibility_timeout_s"].as_f64(),
        Some(30.0)
    );
    assert_eq!(shown["settings"]["max_deliveries"].as_u64(), Some(5));
    assert_eq!(shown["consumers"].as_u64(), Some(1));
    assert_eq!(
        shown["subscriptions"][0]["ack"].as_str(),
        Some("client-individual")
    );
    assert_eq!(shown["counters"]["nacked"].as_u64(), Some(1));

    // Peeking shows messages with their headers and leaves them where they are.
    let (status, peeked) = get(&server, &format!("/api/queues/{a}/messages?limit=2"), None).await;
    assert_eq!(status, 200, "{peeked}");
    let msgs = peeked["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["body_preview"].as_str(), Some("a0"));
    let has = |m: &Value, k: &str, v: &str| {
        m["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0].as_str() == Some(k) && h[1].as_str() == Some(v))
    };
    assert!(has(&msgs[0], "x-k", "v:1"), "{}", msgs[0]);
    let (_, dlq) = get(&server, &format!("/api/queues/DLQ.{b}/messages"), None).await;
    let dead = &dlq["messages"][0];
    assert_eq!(dead["body_preview"].as_str(), Some("b0"));
    assert!(
        has(dead, "x-original-destination", &format!("/queue/{b}")),
        "{dead}"
    );
    let (_, again) = get(&server, &format!("/api/queues?prefix={prefix}"), None).await;
    assert_eq!(again["queues"][0]["visible"].as_u64(), Some(3));

    let (status, purged) = call(
        &server,
        "DELETE",
        &format!("/api/queues/{a}/messages"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{purged}");
    assert_eq!(purged["purged"].as_u64(), Some(3));
    let (_, after) = get(&server, &format!("/api/queues/{a}"), None).await;
    assert_eq!(after["visible"].as_u64(), Some(0));
    // The in-flight message of b is not touched by a purge of a.
    c.ack(&held).await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_error_and_message_and_changes_nothing() {
    let server = Server::start();
    let q = unique("admin-bad");
    let mut c = connect(server.addr).await;
    c.send(&format!("/queue/{q}"), "kept").await;
    for (method, path, status, error) in [
        (
            "GET",
            "/api/queues/no-such-queue".to_owned(),
            404,
            "NotFound",
        ),
        (
            "GET",
            "/api/queues/no-such-queue/messages".to_owned(),
            404,
            "NotFound",
        ),
        (
            "DELETE",
            "/api/queues/no-such-queue/messages".to_owned(),
            404,
            "NotFound",
        ),
        (
            "GET",
            "/api/queues?limit=0".to_owned(),
            400,
            "InvalidParameter",
        ),
        (
            "GET",
            "/api/queues?limit=abc".to_owned(),
            400,
            "InvalidParameter",
        ),
        (
            "GET",
            "/api/queues?colour=red".to_owned(),
            400,
            "InvalidParameter",
        ),
        (
            "GET",
            format!("/api/queues/{q}/messages?limit=100000"),
            400,
            "InvalidParameter",
        ),
    ] {
        let (got, answer) = call(&server, method, &path, None).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_eq!(
            answer["error"].as_str(),
            Some(error),
            "{method} {path}: {answer}"
        );
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let (_, shown) = get(&server, &format!("/api/queues/{q}"), None).await;
    assert_eq!(shown["visible"].as_u64(), Some(1));
}

/// A broker in users mode with two users: `ops` (password `ops-secret`, no permissions table, so
/// everything) and `app` (`app-secret`, read and write on everything, no admin). `auth` is more
/// of the `[auth]` section.
pub(crate) fn start_ops_and_app(auth: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nmode = \"users\"\n{auth}\
             [auth.users.ops]\npassword_hash = \"{}\"\n\
             [auth.users.app]\npassword_hash = \"{}\"\n\
             [auth.users.app.permissions]\nread = [\"*\"]\nwrite = [\"*\"]\n",
            crate::auth::passwd("ops-secret"),
            crate::auth::passwd("app-secret"),
        ),
    )
    .unwrap();
    // The broker reads its configuration at start; the file may go once it is ready.
    Server::builder().config(&config).start()
}

#[tokio::test]
async fn in_users_mode_the_api_needs_read_and_admin_on_everything() {
    let server = start_ops_and_app("anonymous_user = \"ops\"\n");
    let (status, answer) = get(&server, "/api/queues", None).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"].as_str(), Some("NotAuthenticated"));
    // base64("app:app-secret"): a user who may read everything but administer nothing.
    let (status, answer) = get(&server, "/api/queues", Some("Basic YXBwOmFwcC1zZWNyZXQ=")).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = call(
        &server,
        "DELETE",
        "/api/queues/x/messages",
        Some("Basic YXBwOmFwcC1zZWNyZXQ="),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    // Every route that reads or changes anything is behind the same gate; the OpenAPI document
    // names no queue and is open.
    for (method, path) in [
        ("GET", "/api/overview"),
        ("PATCH", "/api/queues/x"),
        ("PUT", "/api/queues/x"),
        ("DELETE", "/api/queues/x"),
        ("POST", "/api/queues/DLQ.x/redrive"),
        ("GET", "/api/topics"),
        ("GET", "/api/bindings"),
        ("PUT", "/api/bindings/t/x"),
        ("DELETE", "/api/bindings/t/x"),
        ("GET", "/api/connections"),
        ("DELETE", "/api/connections/1"),
        ("POST", "/api/messages"),
    ] {
        let (status, answer) = call(&server, method, path, None).await;
        assert_eq!(status, 401, "{method} {path}: {answer}");
        let app = Some("Basic YXBwOmFwcC1zZWNyZXQ=");
        let (status, answer) = call(&server, method, path, app).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
    }
    let (status, _) = request(server.http_addr, "GET", "/api/openapi.json", &[], "").await;
    assert_eq!(status, 200);
    // A wrong password, and no user name at all (which must not become the anonymous user).
    for wrong in ["Basic b3BzOndyb25n", "Basic Om9wcy1zZWNyZXQ="] {
        let (status, answer) = get(&server, "/api/queues", Some(wrong)).await;
        assert_eq!(status, 401, "{wrong}: {answer}");
    }
    // base64("ops:ops-secret"): no permissions table, so everything.
    let (status, answer) = get(&server, "/api/queues", Some("Basic b3BzOm9wcy1zZWNyZXQ=")).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_stomp_listener_in_users_mode_puts_the_api_behind_logins_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[listeners.stomp]\nauth = \"users\"\n[auth.users.ops]\npassword_hash = \"{}\"\n",
            crate::auth::passwd("ops-secret"),
        ),
    )
    .unwrap();
    let server = Server::builder().config(&config).start();
    let (status, answer) = get(&server, "/api/queues", None).await;
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = get(&server, "/api/queues", Some("Basic b3BzOm9wcy1zZWNyZXQ=")).await;
    assert_eq!(status, 200, "{answer}");
}
