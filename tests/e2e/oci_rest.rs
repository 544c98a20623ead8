//! The OCI REST API's server-side rules that the SDK suite (tests/oci) cannot see from a client:
//! long polls at shutdown, users-mode authentication, queues that are not created on demand.

use stampede_tests::http::{request, Scrape};
use stampede_tests::{Server, WAIT};

use crate::auth::passwd;

const Q: &str = "ocid1.queue.oc1..e2erest";

fn messages() -> String {
    format!("/20210201/queues/{Q}/messages")
}

/// Waits until `n` long polls wait in queue `Q`, as the broker's metrics tell.
async fn until_long_polls(server: &Server, n: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = Scrape::take(server).await;
        let waiting =
            m.0.get("stampede_queue_long_polls")
                .and_then(|s| {
                    s.iter()
                        .find(|(l, _)| l.get("queue").map(String::as_str) == Some(Q))
                })
                .map_or(0.0, |(_, v)| *v);
        if waiting == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{waiting} long polls, not {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_long_poll_waiting_at_shutdown_answers_empty_and_does_not_hold_the_exit() {
    let mut server = Server::start();
    let http = server.http_addr;
    // Made by its first message; then emptied, so the poll below waits.
    let put = r#"{"messages":[{"content":"x"}]}"#;
    assert_eq!(request(http, "POST", &messages(), &[], put).await.0, 200);
    let (_, got) = request(
        http,
        "GET",
        &format!("{}?visibilityInSeconds=600", messages()),
        &[],
        "",
    )
    .await;
    assert!(got.contains("\"receipt\""), "{got}");
    let poll = tokio::spawn(async move {
        request(
            http,
            "GET",
            &format!("{}?timeoutInSeconds=30", messages()),
            &[],
            "",
        )
        .await
    });
    until_long_polls(&server, 1.0).await;
    let started = std::time::Instant::now();
    let exit = server.stop();
    assert!(exit.success());
    let (status, body) = poll.await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"messages":[]}"#));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the exit waited for the 30 s poll"
    );
}

fn users_broker(extra: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    let text = format!(
        "[auth]\nmode = \"users\"\n[auth.users.app]\npassword_hash = \"{}\"\n{extra}",
        passwd("secret")
    );
    std::fs::write(&file, text).unwrap();
    let server = Server::builder().config(&file).start();
    (dir, server)
}

#[tokio::test]
async fn in_users_mode_a_request_needs_credentials_and_unknown_queues_are_not_made() {
    let (_dir, server) = users_broker("");
    let http = server.http_addr;
    let put = r#"{"messages":[{"content":"x"}]}"#;
    let (status, body) = request(http, "POST", &messages(), &[], put).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"code\":\"NotAuthenticated\""), "{body}");

    // base64("app:wrong") and base64("app:secret")
    let wrong = [("Authorization", "Basic YXBwOndyb25n")];
    assert_eq!(request(http, "POST", &messages(), &wrong, put).await.0, 401);
    let basic = [("Authorization", "Basic YXBwOnNlY3JldA==")];
    let (status, body) = request(http, "POST", &messages(), &basic, put).await;
    assert_eq!(status, 404, "users mode creates no queue on demand: {body}");
    assert!(body.contains("NotAuthorizedOrNotFound"), "{body}");

    let create = r#"{"displayName":"orders","compartmentId":"ocid1.compartment.oc1..c"}"#;
    let (status, _) = request(http, "POST", "/20210201/queues", &basic, create).await;
    assert_eq!(status, 202);
    let (_, list) = request(http, "GET", "/20210201/queues", &basic, "").await;
    let id = list
        .split("\"id\":\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the new queue is listed")
        .to_owned();
    let path = format!("/20210201/queues/{id}/messages");
    let (status, body) = request(http, "POST", &path, &basic, put).await;
    assert_eq!(status, 200, "{body}");
    let (status, stats) = request(
        http,
        "GET",
        &format!("/20210201/queues/{id}/stats"),
        &basic,
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        stats.contains("\"queue\":{\"visibleMessages\":1"),
        "{stats}"
    );
}

#[tokio::test]
async fn auto_create_off_in_open_mode_answers_unknown_queues_with_404() {
    let server = Server::builder().env("OCI__AUTO_CREATE", "false").start();
    let (status, body) = request(server.http_addr, "GET", &messages(), &[], "").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("NotAuthorizedOrNotFound"), "{body}");
}

#[tokio::test]
async fn a_full_batch_of_large_messages_is_taken_and_a_larger_body_refused_as_oci_does() {
    let server = Server::start();
    let content = "x".repeat(120 * 1024);
    let one = format!("{{\"content\":\"{content}\"}}");
    let batch = format!("{{\"messages\":[{}]}}", vec![one; 20].join(","));
    let (status, body) = request(server.http_addr, "POST", &messages(), &[], &batch).await;
    assert_eq!(status, 200, "{}", &body[..body.len().min(300)]);
    // A body beyond any batch OCI takes is refused on its declared length, before it is sent.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        messages(),
        20 * 128 * 1024 * 6 + 65 * 1024
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"code\":\"LimitExceeded\""), "{answer}");
}
