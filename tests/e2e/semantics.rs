//! Queue semantics (docs/behaviour.md "Queue semantics"): visibility timeouts, max deliveries and the
//! dead-letter queue, `expires`, per-queue settings from `[queues.defaults]` and
//! `[queues."PATTERN"]`, queue limits, and what the broker does at start with bad settings, a
//! corrupt store or a data directory another broker holds.
//!
//! Timing tests configure short intervals and assert lower bounds only: a redelivery may be late
//! on a busy machine, never early.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Server};

use crate::durability::{recovered, start_on};
use crate::support_q::{body, connect, h, Conn};

fn redelivered(f: &Frame) -> bool {
    f.headers.get("redelivered") == Some("true")
}

fn count(f: &Frame) -> u32 {
    h(f, "delivery-count")
        .parse()
        .expect("numeric delivery-count")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Proves `c` holds nothing of `q` any more by waiting out one visibility timeout on a probe
/// message: anything of `q` still in flight to `c` (delivered before the probe) would have come
/// back before the probe does.
async fn assert_nothing_comes_back(c: &mut Conn, p: &mut Conn, q: &str) {
    let probe = unique("probe");
    p.send(q, probe.clone()).await;
    let first = c.message().await;
    assert_eq!(body(&first), probe, "{first:?}");
    let again = c.message().await;
    assert_eq!(body(&again), probe, "{again:?}");
    assert!(redelivered(&again));
    c.ack(&again).await;
}

#[tokio::test]
async fn an_unacked_delivery_comes_back_after_the_visibility_timeout_and_a_late_ack_is_harmless() {
    let server = Server::builder()
        .env("QUEUES__DEFAULTS__VISIBILITY_TIMEOUT", "400ms")
        .start();
    let q = format!("/queue/{}", unique("visibility"));
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let mut p = connect(server.addr).await;

    let sent = Instant::now();
    p.send_with(&q, "slow", &[("x-tag", "kept")]).await;
    let first = c.message().await;
    assert_eq!(body(&first), "slow");
    assert_eq!((redelivered(&first), count(&first)), (false, 1));
    // Still connected, never ACKed: it comes back to this very consumer.
    let again = c.message().await;
    let waited = sent.elapsed();
    // The broker keeps deadlines in whole milliseconds of wall-clock time: up to 2ms of rounding.
    assert!(
        waited >= Duration::from_millis(398),
        "redelivered after {waited:?}, before the 400ms visibility timeout"
    );
    assert_eq!(body(&again), "slow");
    assert_eq!((redelivered(&again), count(&again)), (true, 2));
    assert_eq!(h(&again, "message-id"), h(&first, "message-id"));
    assert_eq!(again.headers.get("x-tag"), Some("kept"));
    assert_ne!(h(&again, "ack"), h(&first, "ack"), "a fresh ack token");

    // The ACK of the first delivery comes too late: a RECEIPT, no ERROR, and nothing settled ...
    c.ack(&first).await;
    // ... so the current delivery is still unsettled and can be ACKed.
    c.ack(&again).await;
    assert_nothing_comes_back(&mut c, &mut p, &q).await;
    c.assert_quiet().await;
}

#[tokio::test]
async fn max_deliveries_moves_the_message_to_the_dead_letter_queue_intact() {
    let server = Server::builder()
        .env("QUEUES__DEFAULTS__MAX_DELIVERIES", "2")
        .env("QUEUES__DEFAULTS__VISIBILITY_TIMEOUT", "300ms")
        .start();
    let name = unique("poison");
    let q = format!("/queue/{name}");
    let mut dlq = connect(server.addr).await;
    dlq.subscribe(&format!("/queue/DLQ.{name}"), "d", "client-individual")
        .await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let mut p = connect(server.addr).await;

    let sent = Instant::now();
    let headers = [("x-tag", "poison:pill"), ("content-type", "text/plain")];
    p.send_with(&q, "doomed", &headers).await;
    let d1 = c.message().await;
    assert_eq!((body(&d1), count(&d1)), ("doomed".to_owned(), 1));
    let d2 = c.message().await;
    assert_eq!(
        (body(&d2), count(&d2), redelivered(&d2)),
        ("doomed".to_owned(), 2, true)
    );

    let dead = dlq.message().await;
    let waited = sent.elapsed();
    // Whole milliseconds of wall-clock time in the broker: up to 2ms of rounding.
    assert!(
        waited >= Duration::from_millis(598),
        "dead-lettered after {waited:?}, before two 300ms visibility timeouts"
    );
    assert_eq!(body(&dead), "doomed");
    assert_eq!(h(&dead, "x-death-reason"), "max-deliveries");
    assert_eq!(h(&dead, "x-original-destination"), q);
    assert_eq!(h(&dead, "destination"), format!("/queue/DLQ.{name}"));
    for (k, v) in headers {
        assert_eq!(dead.headers.get(k), Some(v), "{k} of {dead:?}");
    }
    dlq.ack(&dead).await;
    // No third delivery, however long the consumer waits.
    assert_nothing_comes_back(&mut c, &mut p, &q).await;
    c.assert_quiet().await;
    dlq.assert_quiet().await;
}

#[tokio::test]
async fn a_message_past_its_expiry_time_is_never_delivered() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("stale"));
    let mut p = connect(server.addr).await;
    // To a consumer already waiting.
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    let past = (now_ms() - 1_000).to_string();
    p.send_with(&q, "stale", &[("expires", &past)]).await;
    p.send_with(&q, "fresh", &[("expires", "0")]).await;
    assert_eq!(c.bodies(1).await, ["fresh"]);
    c.assert_quiet().await;
    // Waiting in the queue for a consumer that comes later.
    let q2 = format!("/queue/{}", unique("stale"));
    p.send_with(&q2, "stale", &[("expires", &past)]).await;
    let future = (now_ms() + 3_600_000).to_string();
    p.send_with(&q2, "fresh", &[("expires", &future)]).await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q2, "s", "auto").await;
    assert_eq!(c.bodies(1).await, ["fresh"]);
    c.assert_quiet().await;
}

#[tokio::test]
async fn an_expired_message_nobody_consumed_goes_to_the_dead_letter_queue() {
    let server = Server::start();
    let name = unique("expiring");
    let q = format!("/queue/{name}");
    let mut dlq = connect(server.addr).await;
    dlq.subscribe(&format!("/queue/DLQ.{name}"), "d", "auto")
        .await;
    let mut p = connect(server.addr).await;
    let expires = now_ms() + 300;
    p.send_with(
        &q,
        "ephemeral",
        &[("expires", &expires.to_string()), ("x-tag", "e")],
    )
    .await;
    p.send(&q, "stays").await;

    let dead = dlq.message().await;
    assert!(
        now_ms() >= expires,
        "dead-lettered {}ms before its expiry time",
        expires - now_ms()
    );
    assert_eq!(body(&dead), "ephemeral");
    assert_eq!(h(&dead, "x-death-reason"), "expired");
    assert_eq!(h(&dead, "x-original-destination"), q);
    assert_eq!(dead.headers.get("x-tag"), Some("e"));

    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    assert_eq!(c.bodies(1).await, ["stays"]);
    c.assert_quiet().await;
    dlq.assert_quiet().await;
}

#[tokio::test]
async fn an_already_expired_message_goes_to_the_dead_letter_queue_not_the_consumer() {
    let server = Server::start();
    let name = unique("stale-dlq");
    let q = format!("/queue/{name}");
    let mut dlq = connect(server.addr).await;
    dlq.subscribe(&format!("/queue/DLQ.{name}"), "d", "auto")
        .await;
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "auto").await;
    let mut p = connect(server.addr).await;
    let past = (now_ms() - 1_000).to_string();
    p.send_with(&q, "stale", &[("expires", &past)]).await;
    p.send(&q, "fresh").await;
    assert_eq!(c.bodies(1).await, ["fresh"]);
    let dead = dlq.message().await;
    assert_eq!(body(&dead), "stale");
    assert_eq!(h(&dead, "x-death-reason"), "expired");
    c.assert_quiet().await;
}

#[tokio::test]
async fn a_queue_pattern_from_the_config_file_overrides_the_defaults_for_matching_queues() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(
        &file,
        "[queues.defaults]\nmax_deliveries = 5\n\n[queues.\"orders.*\"]\nmax_deliveries = 1\n",
    )
    .unwrap();
    let server = Server::builder().config(&file).start();
    let orders = format!("orders.{}", unique("eu"));
    let invoices = unique("invoices");
    let mut dlq = connect(server.addr).await;
    dlq.subscribe(&format!("/queue/DLQ.{orders}"), "d", "auto")
        .await;
    let mut c = connect(server.addr).await;
    c.subscribe(&format!("/queue/{orders}"), "o", "client-individual")
        .await;
    c.subscribe(&format!("/queue/{invoices}"), "i", "client-individual")
        .await;
    let mut p = connect(server.addr).await;
    p.send(&format!("/queue/{orders}"), "order").await;
    p.send(&format!("/queue/{invoices}"), "invoice").await;
    let got = c.messages(2).await;
    assert_eq!(
        got.iter().map(body).collect::<Vec<_>>(),
        ["order", "invoice"]
    );

    // One NACK each: a delivery used up. `orders.*` allows one, the default five.
    c.nack(&got[0]).await;
    c.nack(&got[1]).await;
    let back = c.quiet().await;
    assert_eq!(back.len(), 1, "only the invoice comes back: {back:?}");
    assert_eq!(body(&back[0]), "invoice");
    assert_eq!((redelivered(&back[0]), count(&back[0])), (true, 2));
    let dead = dlq.message().await;
    assert_eq!(body(&dead), "order");
    assert_eq!(h(&dead, "x-death-reason"), "max-deliveries");
    assert_eq!(
        h(&dead, "x-original-destination"),
        format!("/queue/{orders}")
    );

    // The effective settings are logged with the queue, naming the pattern that shaped them.
    server.wait_for_log(&[
        "\"queue created\"",
        &format!("\"queue\":\"{orders}\""),
        "\"pattern\":\"orders.*\"",
        "\"max_deliveries\":1",
    ]);
    let line = server.wait_for_log(&["\"queue created\"", &format!("\"queue\":\"{invoices}\"")]);
    assert!(line.contains("\"max_deliveries\":5"), "{line}");
    assert!(!line.contains("orders.*"), "{line}");
}

#[tokio::test]
async fn a_full_queue_refuses_the_send_with_an_error_and_keeps_what_it_holds() {
    let server = Server::builder()
        .env("QUEUES__DEFAULTS__MAX_MESSAGES", "2")
        .start();
    let name = unique("bounded");
    let q = format!("/queue/{name}");
    let mut p = connect(server.addr).await;
    p.send_with(&q, "one", &[("x-n", "1")]).await;
    p.send_with(&q, "two", &[("x-n", "2")]).await;
    let third = Frame::new(Command::Send)
        .header("destination", q.as_str())
        .header("receipt", "third")
        .body("three");
    // expect_error fails on a RECEIPT, so none came.
    let err = p.expect_error(third).await;
    let message = h(&err, "message");
    assert!(
        message.contains(&name) && message.contains("max_messages"),
        "{err:?}"
    );
    assert_eq!(err.headers.get("receipt-id"), Some("third"));

    // Another queue is not affected by this one being full.
    let mut p = connect(server.addr).await;
    p.send(&format!("/queue/{}", unique("unbounded")), "x")
        .await;

    let mut c = connect(server.addr).await;
    c.subscribe(&q, "s", "client-individual").await;
    let got = c.messages(2).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["one", "two"]);
    assert_eq!(got[0].headers.get("x-n"), Some("1"));
    assert_eq!(got[1].headers.get("x-n"), Some("2"));
    c.assert_quiet().await;
    // Room again once one is ACKed.
    c.ack(&got[0]).await;
    p.send(&q, "four").await;
    assert_eq!(c.bodies(1).await, ["four"]);
}

#[test]
fn out_of_range_queue_settings_refuse_to_start_naming_the_key() {
    for (key, value, named) in [
        (
            "QUEUES__DEFAULTS__MAX_DELIVERIES",
            "5000",
            "queues.\"defaults\".max_deliveries",
        ),
        (
            "QUEUES__DEFAULTS__VISIBILITY_TIMEOUT",
            "13h",
            "queues.\"defaults\".visibility_timeout",
        ),
        (
            "QUEUES__DEFAULTS__RETENTION",
            "0s",
            "queues.\"defaults\".retention",
        ),
    ] {
        let out = Server::builder().env(key, value).run_to_exit();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}={value} accepted");
        assert!(
            stderr.contains(named) && stderr.contains("out of range"),
            "{key}={value}: {stderr}"
        );
    }
}

#[test]
fn an_out_of_range_pattern_setting_names_the_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, "[queues.\"orders.*\"]\nmax_deliveries = 5000\n").unwrap();
    let out = Server::builder().config(&file).run_to_exit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("queues.\"orders.*\".max_deliveries") && stderr.contains("5000"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_data_dir_held_by_a_running_broker_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = start_on(&data, &[]);
    let q = format!("/queue/{}", unique("locked"));
    let mut p = connect(first.addr).await;
    p.send(&q, "held").await;

    let out = Server::builder().data_dir(&data).run_to_exit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a second broker on the same data dir"
    );
    assert!(
        stderr.contains("in use by another process")
            && stderr.contains(&data.display().to_string()),
        "{stderr}"
    );

    // The running broker is unaffected.
    p.send(&q, "after").await;
    let mut c = connect(first.addr).await;
    c.subscribe(&q, "s", "auto").await;
    assert_eq!(c.bodies(2).await, ["held", "after"]);
}

/// Every regular file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Stores 20 messages, stops the broker, damages its sled files with `corrupt`, starts again. The
/// broker must either refuse to start, saying the store is corrupt, or start and serve all 20:
/// never start and quietly serve fewer.
async fn corrupt_store_is_refused_or_fully_served(corrupt: impl FnOnce(&Path)) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let q = format!("/queue/{}", unique("corrupt"));
    let sent: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    {
        let mut first = start_on(&data, &[]);
        let mut p = connect(first.addr).await;
        for b in &sent {
            p.send(&q, b.clone()).await;
        }
        assert!(first.stop().success());
    }
    corrupt(&data.join("sled"));
    match Server::builder().data_dir(&data).try_start() {
        Err(failed) => {
            assert!(!failed.status.success(), "exited 0 without serving");
            let logs = failed.logs.join("\n");
            assert!(
                logs.to_lowercase().contains("corrupt"),
                "refused without saying the store is corrupt:\n{logs}"
            );
        }
        Ok(server) => {
            let (_, messages) = recovered(&server);
            assert_eq!(
                messages, 20,
                "started on a damaged store and reported {messages} of 20 messages, no error"
            );
            let mut c = connect(server.addr).await;
            c.subscribe(&q, "s", "auto").await;
            assert_eq!(c.bodies(20).await, sent);
        }
    }
}

#[tokio::test]
async fn garbage_in_the_middle_of_the_sled_log_is_refused_or_fully_served() {
    corrupt_store_is_refused_or_fully_served(|sled| {
        let largest = files(sled)
            .into_iter()
            .max_by_key(|f| f.metadata().unwrap().len())
            .expect("sled files");
        let len = largest.metadata().unwrap().len();
        let bytes = std::fs::read(&largest).unwrap();
        let mut damaged = bytes.clone();
        let mid = (len / 2) as usize;
        for (i, b) in damaged[mid..(mid + 64).min(bytes.len())]
            .iter_mut()
            .enumerate()
        {
            *b = [0xde, 0xad, 0xbe, 0xef][i % 4];
        }
        assert_ne!(bytes, damaged);
        std::fs::write(&largest, damaged).unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_truncated_sled_log_is_refused_or_fully_served() {
    corrupt_store_is_refused_or_fully_served(|sled| {
        let db = sled.join("db");
        assert!(db.metadata().unwrap().len() > 0);
        std::fs::File::options()
            .write(true)
            .open(&db)
            .unwrap()
            .set_len(0)
            .unwrap();
    })
    .await;
}
