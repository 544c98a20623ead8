//! The command line, which is also the library's configuration: the smoke test builds a [`Config`]
//! with `Config::parse_from`, so it exercises the same flags a user types. Cross-flag rules live
//! in [`Config::validate`], which runs before any connection is opened.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use stampede_proto::AckMode;

use crate::payload::STAMP_LEN;
use crate::BenchError;

/// A STOMP 1.2 load generator for any broker (Stampede, RabbitMQ, ActiveMQ).
#[derive(Debug, Clone, Parser)]
#[command(name = "stampede-bench", version)]
pub struct Config {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:61613")]
    pub url: String,
    #[arg(long, default_value = "guest")]
    pub login: String,
    #[arg(long, default_value = "guest")]
    pub passcode: String,
    /// CONNECT `host` header. RabbitMQ reads it as the virtual host, so "/" is its default vhost;
    /// Stampede and ActiveMQ ignore it.
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    pub producers: u16,
    /// Consumer connections (0: nobody consumes, e.g. for persistent ingest runs).
    #[arg(long, default_value_t = 1)]
    pub consumers: u16,
    /// Body size in bytes (at least 20: the stamp with producer, sequence and send time).
    #[arg(long, default_value_t = 20)]
    pub size: usize,
    /// /queue/NAME (each message to one consumer) or /topic/NAME (to every consumer). Default: a
    /// fresh /queue/bench-<random>.
    #[arg(long)]
    pub destination: Option<String>,
    /// Each consumer subscribes here instead of --destination; `{i}` is its number from 0
    /// (a virtual topic's consumer queues: /queue/Consumer.c{i}.VirtualTopic.X).
    #[arg(long)]
    pub consumer_destination: Option<String>,
    /// A header for each consumer's SUBSCRIBE, NAME:VALUE, `{i}` as above (RabbitMQ's
    /// x-queue-name:Consumer.c{i}.VirtualTopic.X). Repeatable.
    #[arg(long = "consumer-header")]
    pub consumer_headers: Vec<String>,
    /// Before the run, one more connection holds this many subscriptions, to
    /// --idle-subscription-destination (`{i}` numbers them); they should match nothing sent.
    #[arg(long, requires = "idle_subscription_destination")]
    pub idle_subscriptions: Option<u32>,
    #[arg(long)]
    pub idle_subscription_destination: Option<String>,
    #[arg(long, value_enum, default_value_t = AckArg::Auto)]
    pub ack: AckArg,
    /// Unacknowledged messages per subscription (sent as prefetch-count and
    /// activemq.prefetchSize). Default: the broker's.
    #[arg(long)]
    pub prefetch: Option<u32>,
    /// Send `persistent:true`.
    #[arg(long)]
    pub persistent: bool,
    /// Send `persistent:false`. Without either flag the header is left out, which brokers read
    /// differently: Stampede stores such a message, RabbitMQ and ActiveMQ do not (and RabbitMQ
    /// refuses `persistent:false` to a queue it declared durable).
    #[arg(long, conflicts_with = "persistent")]
    pub non_persistent: bool,
    /// Ask for a RECEIPT every K sends (every K transactions with --tx). 1 = synchronous: wait for
    /// each receipt before the next send. 0 = none, only the closing DISCONNECT receipt.
    #[arg(long, default_value_t = 0)]
    pub receipt_every: u64,
    /// Messages a producer may have sent beyond its last RECEIPT (with --receipt-every). Default:
    /// K×tx for K = 1 (synchronous), else max(1024, 4×K×tx).
    #[arg(long)]
    pub window: Option<u64>,
    /// Send in transactions of N messages (BEGIN, N×SEND, COMMIT).
    #[arg(long, default_value_t = 0)]
    pub tx: u64,
    /// Open-loop mode: total messages/s across all producers, on a fixed schedule. Latency is
    /// measured from the scheduled time, so a stalled broker cannot hide its backlog.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Messages per producer (default 100000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// Send for this many seconds instead of a count; with --idle-connections, how long to hold.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds at the start whose messages are excluded from latency and rates.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Load first, then drain: consumers subscribe only after every producer has finished.
    #[arg(long)]
    pub drain: bool,
    /// Once producers are done, consumers give up after this many seconds without a message.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Longest wait for any single broker answer (CONNECTED, RECEIPT, a write) before failing.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Open N idle connections (CONNECT, no heart-beat), hold them for --duration seconds (default
    /// 10) and report how many succeeded and stayed open. No messages are sent.
    #[arg(long)]
    pub idle_connections: Option<u32>,
    /// Request/reply round trips over queues: each of --producers requesters sends one request at
    /// a time to --destination with a reply-to header naming its own reply queue and waits for
    /// the answer; each of --consumers responders sends every request's body back to its
    /// reply-to. Reports round-trip latency and checks that every request got exactly one reply.
    #[arg(long, conflicts_with = "idle_connections")]
    pub request_reply: bool,
    /// Speak TLS, trusting the CA certificates (PEM) in this file, e.g. Stampede's
    /// <data_dir>/tls/self-signed.pem.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry (default: the host of --url).
    #[arg(long, requires = "tls_ca")]
    pub tls_name: Option<String>,
    /// Speak STOMP over WebSocket: upgrade at ws://URL/PATH (Stampede: /ws on its HTTP port;
    /// RabbitMQ Web-STOMP: /ws on 15674) with subprotocol v12.stomp, then send each frame as one
    /// binary message.
    #[arg(long, value_name = "PATH", conflicts_with = "tls_ca")]
    pub ws: Option<String>,
    /// Connection setup rate: each of --producers connectors, for --duration seconds (default 10),
    /// opens a connection (TCP, TLS with --tls-ca), sends CONNECT, waits for CONNECTED, sends
    /// DISCONNECT with a receipt, waits for it and starts over. Reports connections per second.
    #[arg(long, conflicts_with_all = ["idle_connections", "request_reply"])]
    pub handshakes: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress line, even on a terminal.
    #[arg(long)]
    pub quiet: bool,
}

/// `--ack` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckArg {
    Auto,
    Client,
    ClientIndividual,
}

impl From<AckArg> for AckMode {
    fn from(a: AckArg) -> AckMode {
        match a {
            AckArg::Auto => AckMode::Auto,
            AckArg::Client => AckMode::Client,
            AckArg::ClientIndividual => AckMode::ClientIndividual,
        }
    }
}

/// When producers stop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this many messages each.
    Count(u64),
    /// After this long.
    After(Duration),
}

impl Config {
    /// Rejects combinations that would make a run meaningless or hang.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Config(m.to_owned()));
        if self.ws.as_deref().is_some_and(|p| !p.starts_with('/')) {
            return bad("--ws takes the path of the WebSocket endpoint, e.g. /ws");
        }
        if self.idle_connections.is_some() {
            return Ok(());
        }
        if self.size < STAMP_LEN {
            return bad("--size must be at least 20 bytes (the message stamp)");
        }
        if self.producers == 0 {
            return bad("--producers must be at least 1");
        }
        if let Some(d) = &self.destination {
            if !d.starts_with('/') {
                return bad("--destination must start with / (e.g. /queue/a or /topic/a)");
            }
        }
        for d in self
            .consumer_destination
            .iter()
            .chain(&self.idle_subscription_destination)
        {
            if !d.starts_with('/') {
                return bad("consumer and idle subscription destinations must start with /");
            }
        }
        if self.consumer_headers.iter().any(|h| !h.contains(':')) {
            return bad("--consumer-header takes NAME:VALUE");
        }
        if self.drain && self.is_topic() {
            return bad("--drain needs a queue: a topic keeps nothing for late subscribers");
        }
        if self.drain && self.warmup > 0.0 {
            return bad("--drain measures the whole backlog; it takes no --warmup");
        }
        if self.drain && self.consumers == 0 {
            return bad("--drain needs at least one consumer");
        }
        if matches!(self.rate, Some(r) if !(r.is_finite() && r > 0.0)) {
            return bad("--rate must be a positive number of messages per second");
        }
        if matches!(self.duration, Some(d) if !(d.is_finite() && d > 0.0)) {
            return bad("--duration must be a positive number of seconds");
        }
        if self.messages == Some(0) {
            return bad("--messages must be at least 1");
        }
        if self.prefetch == Some(0) {
            return bad("--prefetch must be at least 1");
        }
        for (flag, v) in [
            ("--warmup", self.warmup),
            ("--drain-timeout", self.drain_timeout),
            ("--timeout", self.timeout),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(BenchError::Config(format!("{flag} must be >= 0 seconds")));
            }
        }
        if let Some(w) = self.window {
            if self.receipt_every == 0 {
                return bad("--window needs --receipt-every");
            }
            if w < self.receipt_every * self.unit() {
                return bad("--window must cover at least K receipts' worth (K × tx messages)");
            }
        }
        if self.request_reply {
            crate::reqrep::validate(self)?;
        }
        Ok(())
    }

    /// The broker as reports name it: --url, or the WebSocket URL with --ws.
    pub fn shown_url(&self) -> String {
        match &self.ws {
            Some(path) => format!("ws://{}{path}", self.url),
            None => self.url.clone(),
        }
    }

    pub fn stop(&self) -> Stop {
        match (self.messages, self.duration) {
            (_, Some(d)) => Stop::After(Duration::from_secs_f64(d)),
            (Some(n), None) => Stop::Count(n),
            (None, None) => Stop::Count(100_000),
        }
    }

    pub fn is_topic(&self) -> bool {
        self.destination
            .as_deref()
            .is_some_and(|d| d.starts_with("/topic/"))
    }

    /// Messages per send unit: a transaction, or a single SEND.
    pub fn unit(&self) -> u64 {
        self.tx.max(1)
    }

    /// The `persistent` header every SEND carries, if any.
    pub fn persistent_header(&self) -> Option<&'static str> {
        match (self.persistent, self.non_persistent) {
            (true, _) => Some("true"),
            (false, true) => Some("false"),
            (false, false) => None,
        }
    }

    /// Messages in flight beyond the last RECEIPT; `u64::MAX` without receipts (TCP flow control
    /// is then the only brake, as for any fire-and-forget client).
    pub fn window(&self) -> u64 {
        match (self.receipt_every, self.window) {
            (0, _) => u64::MAX,
            (_, Some(w)) => w,
            (1, None) => self.unit(),
            (k, None) => (4 * k * self.unit()).max(1024),
        }
    }

    /// Messages a `client`-mode consumer lets accumulate before a cumulative ACK. Half the prefetch
    /// window keeps the broker's window open; unknown prefetch gets a value below every common
    /// broker default. Each read batch ends with an ACK anyway, so this only bounds large batches.
    pub fn ack_every(&self) -> u64 {
        self.prefetch.map_or(100, |p| u64::from(p / 2).max(1))
    }

    pub fn secs(v: f64) -> Duration {
        Duration::from_secs_f64(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        Config::parse_from(std::iter::once("stampede-bench").chain(args.iter().copied()))
    }

    #[test]
    fn the_persistent_header_is_sent_only_when_asked_for() {
        assert_eq!(cfg(&[]).persistent_header(), None);
        assert_eq!(cfg(&["--persistent"]).persistent_header(), Some("true"));
        assert_eq!(
            cfg(&["--non-persistent"]).persistent_header(),
            Some("false")
        );
        let both = ["stampede-bench", "--persistent", "--non-persistent"];
        assert!(Config::try_parse_from(both).is_err());
    }

    #[test]
    fn windows_follow_receipt_mode() {
        assert_eq!(cfg(&[]).window(), u64::MAX);
        assert_eq!(cfg(&["--receipt-every", "1"]).window(), 1);
        assert_eq!(cfg(&["--receipt-every", "1", "--tx", "10"]).window(), 10);
        assert_eq!(cfg(&["--receipt-every", "100"]).window(), 1024);
        assert_eq!(cfg(&["--receipt-every", "1000"]).window(), 4000);
    }

    #[test]
    fn validation_rejects_hanging_combinations() {
        assert!(cfg(&[]).validate().is_ok());
        assert!(cfg(&["--size", "19"]).validate().is_err());
        assert!(cfg(&["--window", "5"]).validate().is_err());
        assert!(cfg(&["--receipt-every", "10", "--window", "5"])
            .validate()
            .is_err());
        assert!(cfg(&["--destination", "/topic/t", "--drain"])
            .validate()
            .is_err());
        assert!(cfg(&["--rate", "0"]).validate().is_err());
        assert_eq!(
            cfg(&["--duration", "2"]).stop(),
            Stop::After(Duration::from_secs(2))
        );
        assert_eq!(cfg(&[]).stop(), Stop::Count(100_000));
        assert!(cfg(&["--request-reply"]).validate().is_ok());
        assert!(cfg(&["--request-reply", "--consumers", "0"])
            .validate()
            .is_err());
        assert!(cfg(&["--request-reply", "--rate", "100"])
            .validate()
            .is_err());
        assert!(cfg(&["--request-reply", "--destination", "/topic/t"])
            .validate()
            .is_err());
        assert!(cfg(&["--ws", "ws"]).validate().is_err());
        assert_eq!(
            cfg(&["--url", "127.0.0.1:8161", "--ws", "/ws"]).shown_url(),
            "ws://127.0.0.1:8161/ws"
        );
    }
}
