//! The OCI Queue REST benchmark (`stampede-bench-oci`): messages in 20-message batches over
//! HTTP/1.1 keep-alive connections, as an SDK client sends them — PutMessages, then GetMessages
//! and DeleteMessages until every message put has been taken — and idle long polls held open
//! for the broker's memory to be measured from outside. Every message is accounted for: the run
//! is clean only when as many were taken as were put.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::stats::{histogram, Percentiles, Rate};
use crate::BenchError;

/// A load generator for OCI Queue's REST messages API (Stampede's, or any stand-in's).
#[derive(Debug, Clone, Parser)]
#[command(name = "stampede-bench-oci", version)]
pub struct OciConfig {
    /// The broker's HTTP listener, host:port.
    #[arg(long, default_value = "127.0.0.1:8161")]
    pub url: String,
    /// The queue OCID. Default: a fresh ocid1.queue.oc1..bench<random> (auto-created).
    #[arg(long)]
    pub queue: Option<String>,
    /// Connections putting, and as many getting.
    #[arg(long, default_value_t = 4)]
    pub workers: u16,
    /// PutMessages requests per putting connection.
    #[arg(long, default_value_t = 250)]
    pub batches: u32,
    /// Messages per request.
    #[arg(long, default_value_t = 20)]
    pub batch: u32,
    /// Content bytes per message.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Instead of the load: open this many GetMessages long polls on an empty queue, hold them
    /// for --hold, then put one message per poll and count the polls that took one.
    #[arg(long)]
    pub long_polls: Option<u32>,
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub hold: Duration,
    #[arg(long)]
    pub json: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("{s:?}: {e}"))
}

#[derive(Debug, Serialize)]
pub struct OciReport {
    pub queue: String,
    pub workers: u16,
    pub batch: u32,
    pub size: usize,
    pub put: Rate,
    /// GetMessages and the DeleteMessages of what it got, message rate.
    pub get_delete: Rate,
    pub put_request_us: Option<Percentiles>,
    pub get_request_us: Option<Percentiles>,
    pub delete_request_us: Option<Percentiles>,
    pub put_messages: u64,
    pub taken_messages: u64,
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct LongPollReport {
    pub queue: String,
    pub opened: u32,
    /// Polls that were still waiting when messages were put, and then took one.
    pub answered_with_a_message: u32,
    pub errors: u64,
    pub held_seconds: f64,
}

impl OciReport {
    pub fn is_clean(&self) -> bool {
        self.errors == 0 && self.taken_messages == self.put_messages
    }
}

/// One keep-alive connection.
struct Http {
    send: SendRequest<Full<Bytes>>,
    host: String,
}

impl Http {
    async fn connect(addr: &str) -> Result<Http, BenchError> {
        let stream = TcpStream::connect(addr).await.map_err(BenchError::Io)?;
        stream.set_nodelay(true).map_err(BenchError::Io)?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| BenchError::Http(format!("handshake: {e}")))?;
        tokio::spawn(conn);
        Ok(Http {
            send,
            host: addr.to_owned(),
        })
    }

    /// (status, body).
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), BenchError> {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| BenchError::Http(e.to_string()))?;
        self.send
            .ready()
            .await
            .map_err(|e| BenchError::Http(e.to_string()))?;
        let res = self
            .send
            .send_request(req)
            .await
            .map_err(|e| BenchError::Http(e.to_string()))?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| BenchError::Http(format!("body: {e}")))?
            .to_bytes();
        Ok((status, body))
    }
}

fn fresh_queue() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("ocid1.queue.oc1..bench{nanos}")
}

#[derive(serde::Deserialize)]
struct Got {
    messages: Vec<GotMessage>,
}

#[derive(serde::Deserialize)]
struct GotMessage {
    receipt: String,
}

pub async fn run(config: OciConfig) -> Result<OciReport, BenchError> {
    let queue = config.queue.clone().unwrap_or_else(fresh_queue);
    let base = format!("/20210201/queues/{queue}/messages");
    let content = "x".repeat(config.size);
    let one = format!("{{\"content\":\"{content}\"}}");
    let batch_body = format!(
        "{{\"messages\":[{}]}}",
        vec![one; config.batch as usize].join(",")
    );
    let errors = Arc::new(AtomicU64::new(0));

    let started = Instant::now();
    let mut puts = JoinSet::new();
    for _ in 0..config.workers {
        let (url, base, body, errors) = (
            config.url.clone(),
            base.clone(),
            batch_body.clone(),
            errors.clone(),
        );
        let batches = config.batches;
        let per = u64::from(config.batch);
        puts.spawn(async move {
            let mut http = Http::connect(&url).await?;
            let mut h = histogram();
            let mut put = 0;
            for _ in 0..batches {
                let t = Instant::now();
                let (status, _) = http.call("POST", &base, body.clone().into_bytes()).await?;
                h.record(t.elapsed().as_nanos() as u64).ok();
                if status == 200 {
                    put += per;
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<_, BenchError>((put, h))
        });
    }
    let mut put_h = histogram();
    let mut put_messages = 0;
    while let Some(r) = puts.join_next().await {
        let (n, h) = r.map_err(|e| BenchError::Task {
            role: "HTTP",
            reason: e.to_string(),
        })??;
        put_messages += n;
        put_h.add(h).ok();
    }
    let put_elapsed = started.elapsed();

    let taken = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut gets = JoinSet::new();
    for _ in 0..config.workers {
        let (url, base, errors, taken) = (
            config.url.clone(),
            base.clone(),
            errors.clone(),
            taken.clone(),
        );
        let limit = config.batch;
        gets.spawn(async move {
            let mut http = Http::connect(&url).await?;
            let (mut gh, mut dh) = (histogram(), histogram());
            let get = format!("{base}?limit={limit}&timeoutInSeconds=1&visibilityInSeconds=60");
            let delete = format!("{base}/actions/deleteMessages");
            while taken.load(Ordering::Relaxed) < put_messages {
                let t = Instant::now();
                let (status, body) = http.call("GET", &get, Vec::new()).await?;
                gh.record(t.elapsed().as_nanos() as u64).ok();
                let got: Got = match (status, serde_json::from_slice(&body)) {
                    (200, Ok(got)) => got,
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                if got.messages.is_empty() {
                    continue;
                }
                let entries: Vec<String> = got
                    .messages
                    .iter()
                    .map(|m| format!("{{\"receipt\":\"{}\"}}", m.receipt))
                    .collect();
                let body = format!("{{\"entries\":[{}]}}", entries.join(","));
                let t = Instant::now();
                let (status, answer) = http.call("POST", &delete, body.into_bytes()).await?;
                dh.record(t.elapsed().as_nanos() as u64).ok();
                let ok = b"\"clientFailures\":0";
                let failed = !answer.windows(ok.len()).any(|w| w == ok);
                if status != 200 || failed {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                taken.fetch_add(got.messages.len() as u64, Ordering::Relaxed);
            }
            Ok::<_, BenchError>((gh, dh))
        });
    }
    let (mut get_h, mut delete_h) = (histogram(), histogram());
    while let Some(r) = gets.join_next().await {
        let (g, d) = r.map_err(|e| BenchError::Task {
            role: "HTTP",
            reason: e.to_string(),
        })??;
        get_h.add(g).ok();
        delete_h.add(d).ok();
    }
    let get_elapsed = started.elapsed();
    let taken = taken.load(Ordering::Relaxed);
    let bytes = |n: u64| n * config.size as u64;
    Ok(OciReport {
        queue,
        workers: config.workers,
        batch: config.batch,
        size: config.size,
        put: Rate::new(put_messages, bytes(put_messages), put_elapsed),
        get_delete: Rate::new(taken, bytes(taken), get_elapsed),
        put_request_us: Percentiles::of(&put_h),
        get_request_us: Percentiles::of(&get_h),
        delete_request_us: Percentiles::of(&delete_h),
        put_messages,
        taken_messages: taken,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// Opens `n` long polls on an empty queue and holds them; see [`OciConfig::long_polls`].
pub async fn run_long_polls(config: OciConfig, n: u32) -> Result<LongPollReport, BenchError> {
    crate::idle::raise_fd_limit(u64::from(n) + 256);
    let queue = config.queue.clone().unwrap_or_else(fresh_queue);
    let base = format!("/20210201/queues/{queue}/messages");
    let errors = Arc::new(AtomicU64::new(0));
    // The queue exists before the polls come, so they all wait on it.
    let mut admin = Http::connect(&config.url).await?;
    admin
        .call(
            "GET",
            &format!("/20210201/queues/{queue}/stats"),
            Vec::new(),
        )
        .await?;
    let gate = Arc::new(tokio::sync::Semaphore::new(128));
    let mut polls = JoinSet::new();
    let poll = format!("{base}?timeoutInSeconds=30&limit=1");
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..n {
        let (url, poll, gate, errors, opened) = (
            config.url.clone(),
            poll.clone(),
            gate.clone(),
            errors.clone(),
            opened_tx.clone(),
        );
        polls.spawn(async move {
            let mut http = {
                let _permit = gate.acquire_owned().await;
                match Http::connect(&url).await {
                    Ok(h) => h,
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                }
            };
            let _ = opened.send(());
            match http.call("GET", &poll, Vec::new()).await {
                Ok((200, body)) => {
                    let receipt = b"\"receipt\"";
                    body.windows(receipt.len()).any(|w| w == receipt)
                }
                _ => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    false
                }
            }
        });
    }
    drop(opened_tx);
    let mut opened = 0;
    while opened < n && opened_rx.recv().await.is_some() {
        opened += 1;
    }
    let held = Instant::now();
    eprintln!("{opened} long polls open; holding {:?}", config.hold);
    tokio::time::sleep(config.hold).await;
    // One message per poll: each waiting poll takes one.
    let mut left = n;
    let body = format!(
        "{{\"messages\":[{}]}}",
        vec!["{\"content\":\"x\"}"; config.batch as usize].join(",")
    );
    while left > 0 {
        admin.call("POST", &base, body.clone().into_bytes()).await?;
        left = left.saturating_sub(config.batch);
    }
    let mut answered = 0;
    while let Some(r) = polls.join_next().await {
        if r.unwrap_or(false) {
            answered += 1;
        }
    }
    Ok(LongPollReport {
        queue,
        opened,
        answered_with_a_message: answered,
        errors: errors.load(Ordering::Relaxed),
        held_seconds: held.elapsed().as_secs_f64(),
    })
}
