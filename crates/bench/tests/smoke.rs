//! Smoke runs of the load tool against the real `stampede` binary with tiny counts, so CI notices
//! when either side stops speaking the other's STOMP. Only counts are asserted, never timings.
//!
//! The binary comes from `STAMPEDE_BIN` or sits next to this test's target directory
//! (`cargo build --bin stampede` first, as `scripts/test` does).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use stampede_bench::{run, Config, LoadReport, Report};

/// A broker process on a free port; killed on drop.
struct Broker {
    child: Child,
    addr: SocketAddr,
    /// The HTTP listener, which serves STOMP over WebSocket at /ws.
    http: SocketAddr,
    _data: tempfile::TempDir,
}

impl Broker {
    fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// With a TLS listener (`stomp_tls`, the development certificate) beside the plain one; its
    /// address replaces the plain one.
    fn start_tls() -> Broker {
        Broker::start_with(&[
            ("STAMPEDE__LISTENERS__STOMP_TLS__BIND", "127.0.0.1:0"),
            ("STAMPEDE__LISTENERS__STOMP_TLS__SELF_SIGNED", "true"),
        ])
    }

    fn ca(&self) -> String {
        let ca = self._data.path().join("tls/self-signed.pem");
        ca.to_str().unwrap().to_owned()
    }

    fn start_with(env: &[(&str, &str)]) -> Broker {
        let tls = !env.is_empty();
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(binary())
            .args(["serve", "--log-format", "json", "--data-dir"])
            .arg(data.path())
            .env("STAMPEDE__LISTENERS__STOMP__BIND", "127.0.0.1:0")
            .env("STAMPEDE__LISTENERS__HTTP__BIND", "127.0.0.1:0")
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn stampede");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps reading for the broker's whole life so its stdout pipe never fills up.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addrs) = ready_addrs(&line, tls) {
                    let _ = tx.send(addrs);
                }
            }
        });
        let Ok((addr, http)) = rx.recv_timeout(Duration::from_secs(10)) else {
            let _ = child.kill();
            panic!("stampede did not log its ready event within 10 s");
        };
        Broker {
            child,
            addr,
            http,
            _data: data,
        }
    }

    async fn bench(&self, args: &[&str]) -> Report {
        self.bench_at(self.addr, args).await
    }

    async fn bench_at(&self, addr: SocketAddr, args: &[&str]) -> Report {
        let url = addr.to_string();
        let base = [
            "stampede-bench",
            "--quiet",
            "--url",
            &url,
            "--timeout",
            "10",
        ];
        let config = Config::parse_from(base.iter().chain(args));
        run(config).await.expect("the run starts")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("STAMPEDE_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/smoke-<hash> → target/<profile>/stampede
    let exe = std::env::current_exe().expect("current_exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("stampede");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --bin stampede` (or set STAMPEDE_BIN)",
        bin.display()
    );
    bin
}

/// The plain listener's address from the `ready` event, or the TLS listener's from its
/// `listening` event; with the HTTP listener's, which only the `ready` event names (and which
/// only the WebSocket test uses).
fn ready_addrs(line: &str, tls: bool) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    let message = fields.get("message")?.as_str()?;
    let parse = |name: &str| fields.get(name)?.as_str()?.parse().ok();
    match tls {
        false if message == "ready" => Some((parse("stomp")?, parse("http")?)),
        true if message == "listening" && fields.get("listener")? == "stomp_tls" => {
            let addr = parse("addr")?;
            Some((addr, addr))
        }
        _ => None,
    }
}

fn load(report: Report) -> LoadReport {
    match report {
        Report::Load(r) => *r,
        other => panic!("expected a load report, got {other:?}"),
    }
}

/// Asserts a clean run that produced `sent` messages and `delivered` deliveries.
fn assert_clean(r: &LoadReport, sent: u64, delivered: u64) {
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    let v = r.accounting.as_ref().expect("accounting");
    assert_eq!((v.missing, v.duplicates, v.unexpected), (0, 0, 0), "{v:?}");
    assert_eq!((v.expected, v.received), (delivered, delivered), "{v:?}");
    assert_eq!(r.producer.messages, sent);
    assert_eq!(
        r.consumer.as_ref().expect("consumer rate").messages,
        delivered
    );
    assert_eq!(r.latency_us.as_ref().expect("latency").count, delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_with_client_individual_acks_delivers_each_message_once() {
    let broker = Broker::start();
    let args = [
        "--producers",
        "2",
        "--consumers",
        "2",
        "--messages",
        "300",
        "--ack",
        "client-individual",
        "--prefetch",
        "10",
        "--size",
        "100",
    ];
    let r = load(broker.bench(&args).await);
    assert_clean(&r, 600, 600);
    assert_eq!(r.consumer.as_ref().unwrap().bytes, 600 * 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_fan_out_reaches_every_consumer() {
    let broker = Broker::start();
    let args = [
        "--destination",
        "/topic/smoke",
        "--consumers",
        "3",
        "--messages",
        "200",
    ];
    assert_clean(&load(broker.bench(&args).await), 200, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_transactions_with_synchronous_receipts() {
    let broker = Broker::start();
    let args = [
        "--producers",
        "2",
        "--persistent",
        "--receipt-every",
        "1",
        "--tx",
        "7",
        "--messages",
        "50",
        "--ack",
        "client",
        "--prefetch",
        "4",
    ];
    let r = load(broker.bench(&args).await);
    assert_clean(&r, 100, 100);
    // 50 messages in transactions of 7: 8 commits per producer, each with a receipt.
    assert_eq!(r.receipt_latency_us.expect("receipts").count, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_then_drain_and_pipelined_receipts() {
    let broker = Broker::start();
    let args = [
        "--producers",
        "2",
        "--consumers",
        "2",
        "--messages",
        "500",
        "--drain",
        "--receipt-every",
        "10",
        "--window",
        "40",
    ];
    let r = load(broker.bench(&args).await);
    assert_clean(&r, 1000, 1000);
    assert_eq!(r.receipt_latency_us.expect("receipts").count, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_held() {
    let broker = Broker::start();
    let args = ["--idle-connections", "20", "--duration", "0.2"];
    let Report::Idle(r) = broker.bench(&args).await else {
        panic!("expected an idle report");
    };
    assert_eq!((r.connected, r.failed, r.still_open), (20, 0, 20), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_answers_every_request_once() {
    let broker = Broker::start();
    let args = [
        "--request-reply",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--messages",
        "50",
        "--size",
        "64",
    ];
    let Report::RequestReply(r) = broker.bench(&args).await else {
        panic!("expected a request/reply report");
    };
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    let v = &r.accounting;
    assert_eq!((v.expected, v.received), (100, 100), "{v:?}");
    assert!(v.is_clean(), "{v:?}");
    assert_eq!(r.served, 100);
    assert_eq!(r.round_trip_us.as_ref().expect("round trips").count, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_topic_consumer_queues_each_get_every_message_past_idle_wildcards() {
    let broker = Broker::start();
    let args = [
        "--producers",
        "1",
        "--consumers",
        "3",
        "--messages",
        "200",
        "--persistent",
        "--receipt-every",
        "1",
        "--destination",
        "/topic/VirtualTopic.smoke",
        "--consumer-destination",
        "/queue/Consumer.c{i}.VirtualTopic.smoke",
        "--consumer-header",
        "x-smoke:{i}",
        "--idle-subscriptions",
        "500",
        "--idle-subscription-destination",
        "/topic/elsewhere.{i}.*",
    ];
    let r = load(broker.bench(&args).await);
    assert_clean(&r, 200, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_messages_arrive_and_handshakes_are_counted() {
    let broker = Broker::start_tls();
    let ca = broker.ca();
    let r = load(
        broker
            .bench(&[
                "--tls-ca",
                &ca,
                "--tls-name",
                "localhost",
                "--messages",
                "300",
                "--ack",
                "client-individual",
                "--receipt-every",
                "50",
            ])
            .await,
    );
    assert_clean(&r, 300, 300);
    let Report::Handshakes(h) = broker
        .bench(&[
            "--tls-ca",
            &ca,
            "--handshakes",
            "--producers",
            "2",
            "--duration",
            "0.5",
        ])
        .await
    else {
        panic!("expected a handshake report");
    };
    assert!(h.tls && h.failed == 0 && h.completed > 0, "{h:?}");
    assert_eq!(h.connect_latency_us.unwrap().count, h.completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_websocket_every_message_arrives_once() {
    let broker = Broker::start();
    let ws = ["--ws", "/ws", "--non-persistent", "--size", "1024"];
    let args: Vec<&str> = ws
        .iter()
        .copied()
        .chain([
            "--producers",
            "2",
            "--consumers",
            "2",
            "--messages",
            "500",
            "--ack",
            "client-individual",
            "--prefetch",
            "20",
            "--receipt-every",
            "25",
        ])
        .collect();
    let r = load(broker.bench_at(broker.http, &args).await);
    assert_clean(&r, 1000, 1000);
    assert_eq!(r.consumer.as_ref().unwrap().bytes, 1000 * 1024);
    assert_eq!(r.url, format!("ws://{}/ws", broker.http));
    // The responder's replies are frames built from the requests it received.
    let Report::RequestReply(rr) = broker
        .bench_at(
            broker.http,
            &["--ws", "/ws", "--request-reply", "--messages", "50"],
        )
        .await
    else {
        panic!("expected a request/reply report");
    };
    assert!(rr.errors.is_empty() && rr.accounting.is_clean(), "{rr:?}");
    assert_eq!(rr.served, 50);
}
