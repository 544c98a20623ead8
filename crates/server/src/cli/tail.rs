//! `stampede tail DESTINATION`: one line per message as it arrives, until interrupted.
//!
//! A topic is subscribed to over STOMP: every subscriber gets its own copy, so watching takes
//! nothing from anyone. A queue is different — a subscriber competes with the queue's consumers
//! and every message it receives is one they never see — so by default a queue is peeked at
//! through the admin API every `--interval`, which delivers nothing. The price: a message that
//! consumers take before the next peek is never shown, nor one behind the first 500 waiting.
//! `--consume` subscribes instead, for an operator who means to drain what arrives.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use clap::Args;
use serde_json::{json, Value};
use stampede_proto::{Command, Decoder, Frame, Limits, Version};

use super::api::{credentials, queue_path, Api};
use super::queue::headers_line;
use super::show;
use super::{ApiArgs, Exit};

/// Messages a peek shows at most, so the most a queue tail can see at once.
const PEEK: u32 = 500;

#[derive(Args, Debug)]
pub struct TailArgs {
    /// `/topic/NAME`, `/exchange/amq.topic/NAME`, or a queue: `/queue/NAME` or a bare name.
    destination: String,
    /// The STOMP listener, HOST:PORT (default: --url's host, port 61613).
    #[arg(long, value_name = "HOST:PORT")]
    stomp: Option<String>,
    /// On a queue: subscribe and take the messages (each acknowledged once printed, one at a
    /// time) instead of peeking.
    #[arg(long)]
    consume: bool,
    /// On a queue: how often to peek (500ms, 2s…).
    #[arg(long, default_value = "1s", value_parser = interval)]
    interval: Duration,
    /// Show each message's headers too.
    #[arg(long)]
    headers: bool,
}

fn interval(s: &str) -> Result<Duration, String> {
    stampede_server::config::parse_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a duration such as 500ms, 1s, 5s"))
}

/// One message as `tail` prints it.
struct Seen<'a> {
    destination: &'a str,
    message_id: &'a str,
    at_ms: u64,
    headers: Value,
    body: &'a str,
    body_truncated: bool,
}

impl Seen<'_> {
    fn print(&self, json: bool, with_headers: bool) {
        if json {
            let line = json!({
                "destination": self.destination,
                "message_id": self.message_id,
                "at_ms": self.at_ms,
                "headers": self.headers,
                "body": self.body,
                "body_truncated": self.body_truncated,
            });
            println!("{line}");
            return;
        }
        let mut body = show::one_line(self.body, 200);
        if self.body_truncated && !body.ends_with('…') {
            body.push('…');
        }
        let headers = if with_headers {
            format!("  [{}]", headers_line(&self.headers))
        } else {
            String::new()
        };
        println!(
            "{}  {}  {}{headers}  {body}",
            show::clock(self.at_ms),
            self.destination,
            self.message_id
        );
    }
}

pub fn run(api_args: &ApiArgs, args: TailArgs) -> anyhow::Result<()> {
    let api = Api::new(api_args)?;
    let dest = args.destination.as_str();
    let topic = dest.starts_with("/topic/") || dest.starts_with("/exchange/amq.topic/");
    if topic || args.consume {
        let addr = args
            .stomp
            .clone()
            .unwrap_or_else(|| format!("{}:61613", api.host()));
        let ack = if topic { "auto" } else { "client-individual" };
        return subscribe(&addr, credentials(api_args)?, api_args.json, &args, ack);
    }
    let name = dest
        .strip_prefix("/queue/")
        .or_else(|| dest.strip_prefix("/amq/queue/"))
        .unwrap_or(dest);
    peek_loop(&api, api_args.json, name, &args)
}

/// Peeks every `interval`, printing what was not there the time before. What is waiting when it
/// starts is not printed: like `tail -f` on a long file, it shows what comes next.
fn peek_loop(api: &Api, json: bool, name: &str, args: &TailArgs) -> anyhow::Result<()> {
    let path = queue_path(name, &format!("/messages?limit={PEEK}"));
    let ids = |peeked: &Value| -> HashSet<String> {
        peeked["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
            .collect()
    };
    let mut before = ids(&api.get(&path)?);
    eprintln!(
        "stampede: tailing queue {name} by peeking every {} (its consumers still get every \
         message; --consume takes them instead); Ctrl-C stops",
        show::duration(args.interval.as_secs_f64())
    );
    loop {
        std::thread::sleep(args.interval);
        let peeked = api.get(&path)?;
        for m in peeked["messages"].as_array().into_iter().flatten() {
            let id = m["message_id"].as_str().unwrap_or_default();
            if before.contains(id) {
                continue;
            }
            Seen {
                destination: name,
                message_id: id,
                at_ms: m["enqueued_at_ms"].as_u64().unwrap_or(0),
                headers: m["headers"].clone(),
                body: m["body_preview"].as_str().unwrap_or_default(),
                body_truncated: m["body_truncated"].as_bool().unwrap_or(false),
            }
            .print(json, args.headers);
        }
        // Only the last peek's ids: the set stays as small as a peek, and a message that left
        // and came back (a NACK) shows again, with its delivery count.
        before = ids(&peeked);
    }
}

/// Subscribes over STOMP and prints every MESSAGE until the connection ends.
fn subscribe(
    addr: &str,
    login: Option<(String, String)>,
    json: bool,
    args: &TailArgs,
    ack: &str,
) -> anyhow::Result<()> {
    let mut stomp = Stomp::connect(addr, login)?;
    let mut subscribe = Frame::new(Command::Subscribe)
        .header("destination", args.destination.as_str())
        .header("id", "tail")
        .header("ack", ack)
        .header("receipt", "subscribed");
    if ack != "auto" {
        // One unacknowledged message at a time: a tail stopped mid-way gives back at most one.
        subscribe = subscribe.header("prefetch-count", "1");
    }
    stomp.send(subscribe)?;
    // The broker may deliver the backlog before it answers the SUBSCRIBE: those come first.
    let mut early = Vec::new();
    loop {
        let f = stomp.next()?;
        match f.command {
            Command::Receipt => break,
            Command::Error => return Err(stomp.refused(&f, false)),
            _ => early.push(f),
        }
    }
    let how = if ack == "auto" {
        "subscribed; a copy of each message"
    } else {
        "consuming: every message shown is taken from the queue"
    };
    eprintln!(
        "stampede: tailing {} over STOMP on {addr} ({how}); Ctrl-C stops",
        args.destination
    );
    let mut early = early.into_iter();
    loop {
        let f = match early.next() {
            Some(f) => f,
            None => stomp.next()?,
        };
        match f.command {
            Command::Message => {
                let at_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let headers: Vec<(&str, &str)> = f.headers.iter().collect();
                let body = String::from_utf8_lossy(&f.body);
                Seen {
                    destination: f.headers.get("destination").unwrap_or_default(),
                    message_id: f.headers.get("message-id").unwrap_or_default(),
                    at_ms,
                    headers: json!(headers),
                    body: &body,
                    body_truncated: false,
                }
                .print(json, args.headers);
                if ack != "auto" {
                    let id = f.headers.get("ack").unwrap_or_default();
                    stomp.send(Frame::new(Command::Ack).header("id", id))?;
                }
            }
            Command::Error => return Err(stomp.refused(&f, false)),
            _ => {}
        }
    }
}

/// A blocking STOMP 1.2 connection: enough to subscribe and read.
struct Stomp {
    addr: String,
    stream: TcpStream,
    decoder: Decoder,
    input: BytesMut,
    version: Version,
}

impl Stomp {
    fn connect(addr: &str, login: Option<(String, String)>) -> anyhow::Result<Stomp> {
        let stream = TcpStream::connect(addr).map_err(|e| Exit::Unreachable {
            what: format!("the STOMP listener on {addr}"),
            reason: e.to_string(),
        })?;
        let mut stomp = Stomp {
            addr: addr.to_owned(),
            stream,
            decoder: Decoder::new(Limits {
                max_frame_size: 64 * 1024 * 1024,
                ..Limits::default()
            }),
            input: BytesMut::with_capacity(64 * 1024),
            version: Version::V1_2,
        };
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let mut hello = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", host)
            .header("heart-beat", "0,0");
        if let Some((user, password)) = login {
            hello = hello.header("login", user).header("passcode", password);
        }
        stomp.send(hello)?;
        let answer = stomp.next()?;
        if answer.command != Command::Connected {
            return Err(stomp.refused(&answer, true));
        }
        stomp.decoder.set_version(Version::V1_2);
        Ok(stomp)
    }

    fn send(&mut self, frame: Frame) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        stampede_proto::encode(&frame, self.version, &mut out);
        self.stream.write_all(&out).map_err(|e| self.lost(e))?;
        Ok(())
    }

    fn next(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(f) = self.decoder.decode(&mut self.input)? {
                return Ok(f);
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).map_err(|e| self.lost(e))?;
            if n == 0 {
                return Err(self.lost(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.input.extend_from_slice(&chunk[..n]);
        }
    }

    fn lost(&self, e: std::io::Error) -> anyhow::Error {
        Exit::Unreachable {
            what: format!("the STOMP listener on {}", self.addr),
            reason: format!("the connection ended: {e}"),
        }
        .into()
    }

    /// An ERROR frame as the command's failure.
    fn refused(&self, f: &Frame, at_login: bool) -> anyhow::Error {
        let mut message = f.headers.get("message").unwrap_or("ERROR").to_owned();
        let body = String::from_utf8_lossy(&f.body);
        if !body.trim().is_empty() {
            message.push_str(": ");
            message.push_str(body.trim());
        }
        Exit::Stomp { at_login, message }.into()
    }
}
