//! The HTTP listener: `/metrics` moves with traffic and parses as Prometheus text, the per-queue
//! series stay capped with thousands of queues, `/healthz` answers, and `/readyz` says "not yet"
//! while the store is being recovered.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::sync::mpsc;

use bytes::Bytes;
use stampede_proto::{Command, Frame};
use stampede_tests::http::{get, Scrape};
use stampede_tests::{command, unique, Client, Server, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn metrics_move_with_traffic_and_parse() {
    let server = Server::start();
    let name = unique("metrics");
    let q = format!("/queue/{name}");
    let mut c = Client::connect(server.addr).await;
    for b in ["a", "b", "c"] {
        c.send(&q, b).await;
    }
    c.subscribe(&q, "s", "client-individual").await;
    let mut acks = Vec::new();
    for _ in 0..3 {
        acks.push(c.message().await.headers.get("ack").unwrap().to_owned());
    }
    for id in &acks[..2] {
        c.request(Frame::new(Command::Ack).header("id", id.as_str()))
            .await;
    }
    c.request(
        Frame::new(Command::Nack)
            .header("id", acks[2].as_str())
            .header("requeue", "false"),
    )
    .await;
    let mut bad = Client::raw(server.addr).await;
    bad.write_all(b"HELLO\n\n\0").await.unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, bad.read_to_end(&mut sink)).await;

    let m = Scrape::take(&server).await;
    let stomp = [("listener", "stomp")];
    assert!(m.value("stampede_connections_total", &stomp) >= 2.0);
    assert!(m.value("stampede_connections_open", &stomp) >= 1.0);
    assert_eq!(
        m.value("stampede_frames_received_total", &[("command", "SEND")]),
        3.0
    );
    assert_eq!(
        m.value("stampede_frames_received_total", &[("command", "ACK")]),
        2.0
    );
    assert_eq!(
        m.value("stampede_frames_received_total", &[("command", "NACK")]),
        1.0
    );
    assert_eq!(
        m.value("stampede_frames_sent_total", &[("command", "MESSAGE")]),
        3.0
    );
    assert!(m.value("stampede_errors_total", &[("kind", "protocol")]) >= 1.0);
    let queue = [("queue", name.as_str())];
    assert_eq!(m.value("stampede_queue_enqueued_total", &queue), 3.0);
    assert_eq!(m.value("stampede_queue_delivered_total", &queue), 3.0);
    assert_eq!(m.value("stampede_queue_acked_total", &queue), 2.0);
    assert_eq!(m.value("stampede_queue_nacked_total", &queue), 1.0);
    assert_eq!(m.value("stampede_queue_dead_lettered_total", &queue), 1.0);
    assert_eq!(m.value("stampede_queue_messages_visible", &queue), 0.0);
    assert_eq!(m.value("stampede_queue_consumers", &queue), 1.0);
    assert_eq!(m.value("stampede_queue_dead_letter_messages", &queue), 1.0);
    let dlq = format!("DLQ.{name}");
    assert_eq!(
        m.value(
            "stampede_queue_messages_visible",
            &[("queue", dlq.as_str())]
        ),
        1.0
    );
    assert!(m.value("stampede_send_receipt_seconds_count", &[]) >= 3.0);
    assert!(m.value("stampede_store_commit_batch_commits_count", &[]) >= 1.0);
    assert!(m.value("stampede_store_fsync_seconds_count", &[]) >= 1.0);
    assert!(m.value("stampede_store_disk_bytes", &[]) > 0.0);
    assert!(m.value("stampede_recovery_seconds", &[]) >= 0.0);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(m.value("stampede_build_info", &[("version", version)]), 1.0);
}

#[tokio::test]
async fn per_queue_series_stay_capped_with_ten_thousand_queues() {
    let server = Server::builder()
        .env("METRICS__MAX_QUEUE_SERIES", "100")
        .start();
    let prefix = unique("many");
    let mut c = Client::connect(server.addr).await;
    for n in 0..10_000 {
        let f = Frame::new(Command::Send)
            .header("destination", format!("/queue/{prefix}-{n:05}"))
            .body(Bytes::from_static(b"x"));
        c.send_frame(f).await;
    }
    // Frames are handled in order: this receipt means all 10,000 are in.
    c.send(&format!("/queue/{prefix}-last"), "x").await;
    let m = Scrape::take(&server).await;
    let enqueued = &m.0["stampede_queue_enqueued_total"];
    assert_eq!(enqueued.len(), 101, "100 queues and _other");
    let total: f64 = enqueued.iter().map(|(_, v)| v).sum();
    assert_eq!(total, 10_001.0);
    let other = m.value("stampede_queue_enqueued_total", &[("queue", "_other")]);
    assert_eq!(other, 9_901.0);
    for family in [
        "stampede_queue_messages_visible",
        "stampede_queue_consumers",
    ] {
        assert_eq!(m.0[family].len(), 101, "{family}");
    }
}

#[tokio::test]
async fn healthz_and_readyz_answer_once_ready() {
    let server = Server::start();
    assert_eq!(
        get(server.http_addr, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    assert_eq!(
        get(server.http_addr, "/readyz").await,
        (200, "ready\n".to_owned())
    );
    assert_eq!(get(server.http_addr, "/nope").await.0, 404);
}

#[tokio::test]
async fn readyz_is_not_ready_while_the_store_is_recovered() {
    // A backlog whose whole head is read back at start-up keeps recovery busy for a while.
    let dir = tempfile::tempdir().unwrap();
    let window = [
        ("BROKER__QUEUE_MEMORY_WINDOW", "400000"),
        ("BROKER__QUEUE_MEMORY_WINDOW_BYTES", "1GiB"),
    ];
    let mut builder = Server::builder().data_dir(dir.path());
    for (k, v) in window {
        builder = builder.env(k, v);
    }
    let mut first = builder.start();
    let mut c = Client::connect(first.addr).await;
    let q = format!("/queue/{}", unique("backlog"));
    for _ in 0..200_000 {
        let f = Frame::new(Command::Send)
            .header("destination", q.as_str())
            .body(Bytes::from_static(b"m"));
        c.send_frame(f).await;
    }
    c.send(&q, "last").await;
    assert!(first.stop().success());

    let mut cmd = command(dir.path());
    for (k, v) in window {
        cmd.env(format!("STAMPEDE__{k}"), v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let field = |line: &str, name: &str| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        Some(v["fields"][name].as_str()?.to_owned())
    };
    let http: SocketAddr = loop {
        let line = rx.recv_timeout(WAIT).expect("HTTP listening line");
        if let Some(a) = field(&line, "http") {
            break a.parse().unwrap();
        }
    };
    let (status, body) = get(http, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "recovering the store\n"));
    loop {
        let line = rx.recv_timeout(WAIT * 3).expect("ready line");
        if field(&line, "message").as_deref() == Some("ready") {
            break;
        }
    }
    assert_eq!(get(http, "/readyz").await.0, 200);
    let _ = child.kill();
    let _ = child.wait();
}
