//! `stampede queue …`: the queue routes of the admin API, one command each, and the redrive loop
//! that moves a long dead-letter backlog in batches.

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use ureq::http::Method;

use super::api::{enc, queue_path, Api};
use super::show::{self, cell, fields, limit, num, output, Table};
use super::{confirm, Exit};
use stampede_server::config::{parse_duration, parse_size};

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// List queues by name: waiting and in-flight messages, size, consumers, dead letters.
    Ls {
        /// Only queues whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Every queue, page after page (without it: the first 100).
        #[arg(long)]
        all: bool,
    },
    /// One queue: its depths, effective settings, bindings, subscriptions and counters.
    Show { name: String },
    /// Waiting messages, oldest first, without delivering them.
    Peek {
        name: String,
        /// How many (1–500).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
        limit: u32,
        /// Show each message's headers too.
        #[arg(long)]
        headers: bool,
    },
    /// Remove every waiting message (in-flight ones stay with their consumers).
    Purge {
        name: String,
        /// Do not ask; required when stdin is not a terminal.
        #[arg(long)]
        yes: bool,
    },
    /// Move dead letters back to the queues they died in (or all to `--to`), in batches until
    /// none is left, with the death headers removed.
    Redrive {
        /// The dead-letter queue, e.g. DLQ.orders.
        name: String,
        /// Move everything to this queue instead of each message's original one.
        #[arg(long)]
        to: Option<String>,
        /// Only this message (repeatable); one batch.
        #[arg(long = "id", value_name = "MESSAGE_ID")]
        ids: Vec<String>,
        /// Messages per batch (1–10000), each batch one commit.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
    },
    /// Remove a queue with its messages and bindings (refused while consumers are attached).
    Delete {
        name: String,
        /// Do not ask; required when stdin is not a terminal.
        #[arg(long)]
        yes: bool,
    },
    /// Change a queue's settings at run time (kept across restarts). `none` unsets a limit.
    Set {
        name: String,
        #[command(flatten)]
        settings: Settings,
        /// Create the queue if it does not exist.
        #[arg(long)]
        create: bool,
    },
}

/// The settings `queue set` changes, each already the JSON the route takes.
#[derive(Args, Debug)]
pub struct Settings {
    /// How long a delivered message may stay unacknowledged before it is redelivered: `30s`,
    /// `5m`…; `none`: only when its consumer goes away.
    #[arg(long, value_parser = duration_or_none)]
    visibility_timeout: Option<Value>,
    /// Deliveries before a message is dead-lettered; `none`: never.
    #[arg(long, value_parser = count_or_none)]
    max_deliveries: Option<Value>,
    /// Where dead letters go; `{queue}` stands for the queue's name.
    #[arg(long, value_parser = text)]
    dead_letter_queue: Option<Value>,
    /// How long a message is kept: `7d`, `12h`…
    #[arg(long, value_parser = duration)]
    retention: Option<Value>,
    /// Most waiting messages; `none`: no limit.
    #[arg(long, value_parser = count_or_none)]
    max_messages: Option<Value>,
    /// Most waiting bytes: `1000000`, `64MiB`…; `none`: no limit.
    #[arg(long, value_parser = size_or_none)]
    max_bytes: Option<Value>,
}

fn duration(s: &str) -> Result<Value, String> {
    parse_duration(s)
        .map(|d| json!(d.as_secs_f64()))
        .ok_or_else(|| format!("{s:?} is not a duration such as 500ms, 30s, 5m, 2h, 7d"))
}

fn duration_or_none(s: &str) -> Result<Value, String> {
    none_or(s, duration)
}

fn count_or_none(s: &str) -> Result<Value, String> {
    none_or(s, |s| {
        s.parse::<u64>()
            .map(|n| json!(n))
            .map_err(|_| format!("{s:?} is not a whole number (or `none`)"))
    })
}

fn size_or_none(s: &str) -> Result<Value, String> {
    none_or(s, |s| {
        parse_size(s)
            .map(|n| json!(n))
            .ok_or_else(|| format!("{s:?} is not a size such as 65536, 64KiB, 4MiB (or `none`)"))
    })
}

fn text(s: &str) -> Result<Value, String> {
    Ok(json!(s))
}

fn none_or(s: &str, parse: impl Fn(&str) -> Result<Value, String>) -> Result<Value, String> {
    if s == "none" {
        Ok(Value::Null)
    } else {
        parse(s)
    }
}

impl Settings {
    /// The PATCH body: only the settings named on the command line.
    fn body(self) -> Map<String, Value> {
        [
            ("visibility_timeout_s", self.visibility_timeout),
            ("max_deliveries", self.max_deliveries),
            ("dead_letter_queue", self.dead_letter_queue),
            ("retention_s", self.retention),
            ("max_messages", self.max_messages),
            ("max_bytes", self.max_bytes),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
        .collect()
    }
}

pub fn run(api: &Api, json: bool, cmd: QueueCmd) -> anyhow::Result<()> {
    match cmd {
        QueueCmd::Ls { prefix, all } => ls(api, json, prefix.as_deref(), all),
        QueueCmd::Show { name } => {
            let detail = api.get(&queue_path(&name, ""))?;
            output(json, &detail, print_detail);
            Ok(())
        }
        QueueCmd::Peek {
            name,
            limit,
            headers,
        } => {
            let peeked = api.get(&queue_path(&name, &format!("/messages?limit={limit}")))?;
            output(json, &peeked, |p| print_messages(p, headers));
            Ok(())
        }
        QueueCmd::Purge { name, yes } => {
            if !yes {
                confirm(|| Ok(format!("purge {} of queue {name}", waiting(api, &name)?)))?;
            }
            let purged = api.call(Method::DELETE, &queue_path(&name, "/messages"), None)?;
            output(json, &purged, |p| {
                let n = p["purged"].as_u64().unwrap_or(0);
                println!("purged {} of queue {name}", show::count(n, "message"));
            });
            Ok(())
        }
        QueueCmd::Delete { name, yes } => {
            if !yes {
                confirm(|| {
                    let n = waiting(api, &name)?;
                    Ok(format!("delete queue {name} with its {n} and bindings"))
                })?;
            }
            let deleted = api.call(Method::DELETE, &queue_path(&name, ""), None)?;
            output(json, &deleted, |_| println!("deleted queue {name}"));
            Ok(())
        }
        QueueCmd::Set {
            name,
            settings,
            create,
        } => {
            let body = settings.body();
            if body.is_empty() && !create {
                return Err(Exit::Usage(
                    "queue set: name at least one setting to change (see --help)".into(),
                )
                .into());
            }
            let method = if create { Method::PUT } else { Method::PATCH };
            let detail = api.call(method, &queue_path(&name, ""), Some(&Value::Object(body)))?;
            output(json, &detail, print_detail);
            Ok(())
        }
        QueueCmd::Redrive {
            name,
            to,
            ids,
            batch,
        } => redrive(api, json, &name, to, ids, batch),
    }
}

/// `N waiting messages` of queue `name`, for a question.
fn waiting(api: &Api, name: &str) -> Result<String, Exit> {
    let n = api.get(&queue_path(name, ""))?["visible"]
        .as_u64()
        .unwrap_or(0);
    Ok(show::count(n, "waiting message"))
}

fn ls(api: &Api, json: bool, prefix: Option<&str>, all: bool) -> anyhow::Result<()> {
    let mut query = String::new();
    if let Some(p) = prefix {
        query.push_str(&format!("&prefix={}", enc(p)));
    }
    let mut queues: Vec<Value> = Vec::new();
    let mut after: Option<String> = None;
    let next = loop {
        let page_query = match &after {
            Some(a) => format!("{query}&after={}", enc(a)),
            None => query.clone(),
        };
        let limit = if all { 1000 } else { 100 };
        let mut page = api.get(&format!("/api/queues?limit={limit}{page_query}"))?;
        if let Some(Value::Array(q)) = page.get_mut("queues").map(Value::take) {
            queues.extend(q);
        }
        match page["next"].as_str() {
            Some(n) if all => after = Some(n.to_owned()),
            n => break n.map(str::to_owned),
        }
    };
    if json {
        let mut answer = json!({ "queues": queues });
        if let Some(n) = &next {
            answer["next"] = json!(n);
        }
        show::json(&answer);
        return Ok(());
    }
    let mut t = Table::new(&[
        "NAME",
        ">VISIBLE",
        ">IN-FLIGHT",
        ">SIZE",
        ">CONSUMERS",
        ">OLDEST",
        ">DEAD-LETTERS",
        ">ENQUEUED",
        ">ACKED",
    ]);
    for q in &queues {
        t.row(vec![
            q["name"].as_str().unwrap_or_default().to_owned(),
            num(&q["visible"]),
            num(&q["in_flight"]),
            cell(&q["bytes"], |v| Some(show::size(v.as_u64()?))),
            num(&q["consumers"]),
            cell(&q["oldest_age_ms"], |v| {
                Some(show::duration(v.as_f64()? / 1000.0))
            }),
            num(&q["dead_letters"]),
            num(&q["enqueued"]),
            num(&q["acked"]),
        ]);
    }
    t.print();
    if next.is_some() {
        eprintln!("stampede: more queues follow; --all lists every one");
    }
    Ok(())
}

fn print_detail(q: &Value) {
    let name = q["name"].as_str().unwrap_or_default();
    let mut lines = vec![
        ("queue", name.to_owned()),
        ("visible", num(&q["visible"])),
        ("in flight", num(&q["in_flight"])),
        ("size", cell(&q["bytes"], |v| Some(show::size(v.as_u64()?)))),
        ("consumers", num(&q["consumers"])),
    ];
    if q.get("oldest_age_ms").is_some() {
        lines.push((
            "oldest",
            cell(&q["oldest_age_ms"], |v| {
                Some(show::duration(v.as_f64()? / 1000.0))
            }),
        ));
    }
    lines.push((
        "dead letters",
        match q["dead_letter_queue"].as_str() {
            Some(d) => format!("{} in {d}", num(&q["dead_letters"])),
            None => "-".to_owned(),
        },
    ));
    lines.push((
        "created",
        cell(&q["created_at_ms"], |v| {
            Some(format!("{} ago", show::age(v.as_u64()?)))
        }),
    ));
    if let Some(r) = q.get("rates") {
        lines.push(("rates", rates(r)));
    }
    fields("", &lines);
    let s = &q["settings"];
    println!("settings");
    let secs = |v: &Value| Some(show::duration(v.as_f64()?));
    let count = |v: &Value| Some(v.as_u64()?.to_string());
    fields(
        "  ",
        &[
            (
                "visibility timeout",
                limit(&s["visibility_timeout_s"], secs),
            ),
            ("max deliveries", limit(&s["max_deliveries"], count)),
            (
                "dead-letter queue",
                cell(&s["dead_letter_queue"], |v| Some(v.as_str()?.to_owned())),
            ),
            ("retention", cell(&s["retention_s"], secs)),
            ("max messages", limit(&s["max_messages"], count)),
            (
                "max bytes",
                limit(&s["max_bytes"], |v| Some(show::size(v.as_u64()?))),
            ),
        ],
    );
    if let Some(Value::Array(bindings)) = q.get("bindings") {
        println!("bindings");
        if bindings.is_empty() {
            println!("  none");
        }
        for b in bindings {
            let topic = b["topic"].as_str().unwrap_or_default();
            let how = if b["virtual"].as_bool() == Some(true) {
                " (virtual topic, by the queue's name)"
            } else {
                ""
            };
            println!("  {topic}{how}");
        }
    }
    println!("subscriptions");
    match q["subscriptions"].as_array() {
        Some(subs) if !subs.is_empty() => {
            let mut t = Table::new(&[
                "  SUBSCRIPTION",
                "PRINCIPAL",
                "ACK",
                ">PREFETCH",
                ">UNACKED",
            ]);
            for c in subs {
                t.row(vec![
                    format!("  {}", c["subscription"].as_str().unwrap_or_default()),
                    c["principal"].as_str().unwrap_or_default().to_owned(),
                    c["ack"].as_str().unwrap_or_default().to_owned(),
                    num(&c["prefetch"]),
                    num(&c["unacked"]),
                ]);
            }
            t.print();
        }
        _ => println!("  none"),
    }
    if let Some(Value::Object(counters)) = q.get("counters") {
        let line: Vec<String> = counters
            .iter()
            .map(|(k, v)| format!("{k} {}", num(v)))
            .collect();
        println!("counters since start");
        println!("  {}", line.join(", "));
    }
}

/// `1.5/s in, 1.0/s out, 1.0/s acked`.
fn rates(r: &Value) -> String {
    let rate = |k: &str| cell(&r[k], |v| Some(format!("{:.1}/s", v.as_f64()?)));
    format!(
        "{} in, {} delivered, {} acked",
        rate("enqueued_per_s"),
        rate("delivered_per_s"),
        rate("acked_per_s")
    )
}

fn print_messages(peeked: &Value, with_headers: bool) {
    let empty = Vec::new();
    let messages = peeked["messages"].as_array().unwrap_or(&empty);
    let mut head = vec!["MESSAGE-ID", ">DELIVERIES", ">AGE", ">SIZE", "BODY"];
    if with_headers {
        head.insert(4, "HEADERS");
    }
    let mut t = Table::new(&head);
    for m in messages {
        let mut body = show::one_line(m["body_preview"].as_str().unwrap_or_default(), 60);
        if m["body_truncated"].as_bool() == Some(true) && !body.ends_with('…') {
            body.push('…');
        }
        let mut row = vec![
            m["message_id"].as_str().unwrap_or_default().to_owned(),
            num(&m["delivery_count"]),
            cell(&m["enqueued_at_ms"], |v| Some(show::age(v.as_u64()?))),
            cell(&m["size"], |v| Some(show::size(v.as_u64()?))),
            body,
        ];
        if with_headers {
            row.insert(4, headers_line(&m["headers"]));
        }
        t.row(row);
    }
    t.print();
}

/// `k=v, k=v` of a message's header pairs.
pub fn headers_line(headers: &Value) -> String {
    let pairs: Vec<String> = headers
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            format!(
                "{}={}",
                h[0].as_str().unwrap_or_default(),
                show::one_line(h[1].as_str().unwrap_or_default(), 40)
            )
        })
        .collect();
    pairs.join(", ")
}

/// One batch when ids are named; otherwise batches until nothing is left or a batch moves
/// nothing (what is left names no original queue: `--to` moves those).
fn redrive(
    api: &Api,
    json: bool,
    name: &str,
    to: Option<String>,
    ids: Vec<String>,
    batch: u32,
) -> anyhow::Result<()> {
    let path = queue_path(name, "/redrive");
    let mut body = json!({ "limit": batch });
    if let Some(to) = &to {
        body["to"] = json!(to);
    }
    let by_id = !ids.is_empty();
    if by_id {
        body["message_ids"] = json!(ids);
    }
    let total = if by_id {
        ids.len() as u64
    } else {
        api.get(&queue_path(name, ""))?["visible"]
            .as_u64()
            .unwrap_or(0)
    };
    let bar = progress(total);
    let mut sum = Redriven::default();
    let result = loop {
        let answer = match api.call(Method::POST, &path, Some(&body)) {
            Ok(a) => a,
            Err(e) => break Err(e),
        };
        let moved = sum.add(&answer);
        bar.set_length(total.max(bar.position() + moved + sum.remaining));
        bar.inc(moved);
        if by_id || sum.remaining == 0 || moved == 0 {
            break Ok(());
        }
    };
    bar.finish_and_clear();
    if let Err(e) = result {
        if sum.moved > 0 {
            eprintln!(
                "stampede: {} dead letters were moved before this failure",
                sum.moved
            );
        }
        return Err(e.into());
    }
    if json {
        show::json(&sum.to_json());
        return Ok(());
    }
    let to: Vec<String> = sum
        .by_destination
        .iter()
        .map(|(q, n)| format!("{n} to {q}"))
        .collect();
    let detail = if to.is_empty() {
        String::new()
    } else {
        format!(" ({})", to.join(", "))
    };
    println!(
        "moved {} from {name}{detail}; {} left there",
        show::count(sum.moved, "message"),
        sum.remaining
    );
    if sum.skipped > 0 {
        println!(
            "{} name no queue they came from (sent to {name} directly): --to moves them",
            sum.skipped
        );
    }
    if !sum.missing.is_empty() {
        println!("not waiting in {name}: {}", sum.missing.join(", "));
    }
    Ok(())
}

/// The batches of one redrive added up: `moved` and `by_destination` summed, `missing` joined,
/// `skipped` and `remaining` as the last batch saw them (a skipped message stays, so every batch
/// would count it again).
#[derive(Default)]
struct Redriven {
    batches: u64,
    moved: u64,
    by_destination: Map<String, Value>,
    skipped: u64,
    missing: Vec<String>,
    remaining: u64,
}

impl Redriven {
    /// Adds one batch's answer; returns how many it moved.
    fn add(&mut self, answer: &Value) -> u64 {
        let moved = answer["moved"].as_u64().unwrap_or(0);
        self.batches += 1;
        self.moved += moved;
        if let Some(Value::Object(by)) = answer.get("by_destination") {
            for (q, n) in by {
                let was = self.by_destination.get(q).and_then(Value::as_u64);
                let n = n.as_u64().unwrap_or(0) + was.unwrap_or(0);
                self.by_destination.insert(q.clone(), json!(n));
            }
        }
        self.skipped = answer["skipped"].as_u64().unwrap_or(0);
        self.remaining = answer["remaining"].as_u64().unwrap_or(0);
        self.missing.extend(
            answer["missing"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned)),
        );
        moved
    }

    fn to_json(&self) -> Value {
        json!({
            "moved": self.moved,
            "by_destination": self.by_destination,
            "skipped": self.skipped,
            "missing": self.missing,
            "remaining": self.remaining,
            "batches": self.batches,
        })
    }
}

/// A bar on stderr, drawn only when both stdout and stderr are terminals: piped or redirected
/// output gets no control characters.
fn progress(total: u64) -> indicatif::ProgressBar {
    let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    if !terminal {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} messages moved ({rate}, {eta} left)",
    ) {
        bar.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        ));
    }
    bar
}
