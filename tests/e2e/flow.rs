//! Producer flow control: a producer that does not wait for receipts is held back (its connection
//! is not read) while the store has too much unwritten data, or while the queue it feeds has a full
//! memory window that its consumers are draining; stalled consumers hold nobody. And
//! `persistent: false` messages skip the store.

use stampede_proto::{Command, Frame, Version};
use stampede_tests::client::encode;
use stampede_tests::http::Scrape;
use stampede_tests::{unique, Client, Server};

/// `n` SENDs to `destination` without receipts, bodies `0..n`, as one byte string.
fn sends(destination: &str, n: usize, size: usize, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut body = i.to_string().into_bytes();
        body.resize(size.max(body.len()), b' ');
        let mut f = Frame::new(Command::Send)
            .header("destination", destination)
            .body(body);
        for (k, v) in headers {
            f = f.header(k, *v);
        }
        out.extend_from_slice(&encode(&f, Version::V1_2));
    }
    out
}

fn waits(m: &Scrape, reason: &str) -> f64 {
    m.value("stampede_flow_control_waits_total", &[("reason", reason)])
}

/// Reads `n` messages and checks their bodies are `0..n` in order (trailing padding ignored).
async fn expect_in_order(c: &mut Client, n: usize) {
    for i in 0..n {
        let m = c.message().await;
        let body = String::from_utf8_lossy(&m.body);
        assert_eq!(body.trim_end(), i.to_string(), "message {i} out of order");
    }
}

#[tokio::test]
async fn a_producer_without_receipts_waits_for_the_store_and_loses_nothing() {
    let server = Server::builder()
        .env("STORAGE__MAX_PENDING_WRITES", "64KiB")
        .start();
    let q = format!("/queue/{}", unique("store-flow"));
    let n = 20_000;
    let mut producer = Client::connect(server.addr).await;
    producer.write_raw(&sends(&q, n, 1024, &[])).await;
    producer.send(&q, n.to_string()).await;

    let m = Scrape::take(&server).await;
    assert!(
        waits(&m, "store") > 0.0,
        "20 MB without receipts never waited for a 64 KiB write backlog"
    );
    let mut consumer = Client::connect(server.addr).await;
    consumer.subscribe(&q, "1", "auto").await;
    expect_in_order(&mut consumer, n + 1).await;
}

#[tokio::test]
async fn a_producer_faster_than_its_consumer_is_paced_by_it() {
    let server = Server::builder()
        .env("BROKER__QUEUE_MEMORY_WINDOW", "100")
        .env("BROKER__CONSUMER_STALL", "30s")
        .start();
    let q = format!("/queue/{}", unique("paced"));
    let n = 5_000;
    let mut consumer = Client::connect(server.addr).await;
    consumer.subscribe(&q, "1", "auto").await;
    let reader = tokio::spawn(async move {
        expect_in_order(&mut consumer, n + 1).await;
    });
    let mut producer = Client::connect(server.addr).await;
    producer
        .write_raw(&sends(&q, n, 16, &[("persistent", "false")]))
        .await;
    producer.send(&q, n.to_string()).await;
    reader.await.expect("every message, in order");
    let m = Scrape::take(&server).await;
    assert!(
        waits(&m, "consumers") > 0.0,
        "5,000 messages into a 100-message window never waited for the consumer"
    );
}

#[tokio::test]
async fn racing_producers_behind_a_consumer_that_keeps_up_never_touch_the_disk() {
    // Four producers pass the pacing check at the same moment; pacing must start early enough
    // that they do not push the queue past its memory window, or every later message would be
    // written to disk and read back.
    let server = Server::builder()
        .env("BROKER__QUEUE_MEMORY_WINDOW", "100")
        .env("BROKER__CONSUMER_STALL", "30s")
        .start();
    let q = format!("/queue/{}", unique("racing"));
    let (producers, each) = (4, 3_000);
    let mut consumer = Client::connect(server.addr).await;
    consumer.subscribe(&q, "1", "auto").await;
    let reader = tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        while seen.len() < producers * each {
            let m = consumer.message().await;
            assert!(seen.insert(m.body.clone()), "duplicate {:?}", m.body);
        }
    });
    let mut sending = Vec::new();
    for p in 0..producers {
        let q = q.clone();
        let addr = server.addr;
        sending.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut batch = Vec::new();
            for i in 0..each {
                let f = Frame::new(Command::Send)
                    .header("destination", q.as_str())
                    .header("persistent", "false")
                    .body(format!("{p}-{i}"));
                batch.extend_from_slice(&encode(&f, Version::V1_2));
            }
            c.write_raw(&batch).await;
            let last = Frame::new(Command::Send)
                .header("destination", "/queue/racing-done")
                .header("persistent", "false");
            c.request(last).await;
        }));
    }
    for s in sending {
        s.await.expect("producer");
    }
    reader.await.expect("every message once");
    let m = Scrape::take(&server).await;
    assert!(waits(&m, "consumers") > 0.0);
    // The store holds the two queues themselves (one record each), and no message.
    assert_eq!(
        m.value("stampede_store_commit_batch_ops", &[]),
        2.0,
        "non-persistent messages were written to disk: the queue went past its window"
    );
}

#[tokio::test]
async fn stalled_consumers_do_not_hold_producers() {
    let server = Server::builder()
        .env("BROKER__QUEUE_MEMORY_WINDOW", "100")
        .env("BROKER__CONSUMER_STALL", "100ms")
        .start();
    let q = format!("/queue/{}", unique("stalled"));
    let n = 500;
    let mut consumer = Client::connect(server.addr).await;
    consumer
        .subscribe_with(&q, "1", "client-individual", &[("prefetch-count", "1")])
        .await;
    let mut producer = Client::connect(server.addr).await;
    for i in 0..n {
        // Each waits for its RECEIPT: a producer stuck behind the consumer fails here.
        producer.send(&q, i.to_string()).await;
    }
    let m = Scrape::take(&server).await;
    assert!(
        waits(&m, "consumers") >= 1.0,
        "the full window was never noticed"
    );
    for i in 0..n {
        let msg = consumer.message().await;
        assert_eq!(String::from_utf8_lossy(&msg.body), i.to_string());
        let ack = Frame::new(Command::Ack).header("id", msg.headers.get("ack").unwrap());
        consumer.send_frame(ack).await;
    }
}

#[tokio::test]
async fn a_non_persistent_message_is_gone_after_a_restart_and_a_persistent_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let q = format!("/queue/{}", unique("np"));
    let mut first = Server::builder().data_dir(dir.path()).start();
    let mut c = Client::connect(first.addr).await;
    c.send_with(&q, "gone", &[("persistent", "false")]).await;
    c.send(&q, "kept").await;
    c.send_with(&q, "also kept", &[("persistent", "true")])
        .await;
    drop(c);
    assert!(first.stop().success());

    let second = Server::builder().data_dir(dir.path()).start();
    let mut c = Client::connect(second.addr).await;
    c.send(&q, "after restart").await;
    c.subscribe(&q, "1", "auto").await;
    assert_eq!(c.bodies(3).await, ["kept", "also kept", "after restart"]);
}
