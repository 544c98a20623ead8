//! The admin command line (docs/cli.md) against a running broker: every command run as the real
//! binary after real STOMP traffic, its `--json` output parsed, its tables read, and the exit
//! codes scripts rely on — 2 for a bad command line (and a purge without `--yes` nor a terminal),
//! 3 when no broker answers, 4 for what does not exist, 5 for refused credentials.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use serde_json::Value;
use stampede_proto::Command as Stomp;
use stampede_tests::{binary, unique, Server, WAIT};

use crate::admin_api::start_ops_and_app;
use crate::durability::start_on;
use crate::support_q::{body, connect, h, Conn};

/// `stampede ARGS --url <server>` with stdin closed (no terminal); its output once it exited.
fn stampede(server: &Server, args: &[&str]) -> Output {
    stampede_env(server, args, &[])
}

fn stampede_env(server: &Server, args: &[&str], env: &[(&str, &str)]) -> Output {
    at(&format!("http://{}", server.http_addr), args, env)
}

/// `stampede ARGS --url URL`.
fn at(url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .args(["--url", url])
        .env_remove("STAMPEDE_USER")
        .env_remove("STAMPEDE_PASSWORD")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stampede")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stdout of a command that must succeed.
fn ok(server: &Server, args: &[&str]) -> String {
    let out = stampede(server, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The `--json` output of a command that must succeed.
fn json(server: &Server, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = ok(server, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// The exit code of a command that must fail; its stderr.
fn fails(out: Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn names(list: &Value) -> Vec<&str> {
    list["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect()
}

fn header<'a>(m: &'a Value, name: &str) -> Option<&'a str> {
    m["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0].as_str() == Some(name))
        .and_then(|h| h[1].as_str())
}

#[tokio::test]
async fn queues_are_listed_shown_and_peeked_after_stomp_sends() {
    let server = Server::start();
    let prefix = unique("cli");
    let (a, b) = (format!("{prefix}.a"), format!("{prefix}.b"));
    let mut c = connect(server.addr).await;
    for i in 0..3 {
        c.send_with(
            &format!("/queue/{a}"),
            format!("a{i}\nline 2"),
            &[("x-k", "v")],
        )
        .await;
    }
    c.send(&format!("/queue/{b}"), "b0").await;

    let list = json(&server, &["queue", "ls", "--prefix", &prefix]);
    assert_eq!(names(&list), [a.as_str(), b.as_str()]);
    assert_eq!(list["queues"][0]["visible"].as_u64(), Some(3));
    let all = json(&server, &["queue", "ls", "--all", "--prefix", &prefix]);
    assert_eq!(names(&all), names(&list));
    let table = ok(&server, &["queue", "ls", "--prefix", &prefix]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("NAME "), "{table}");
    assert!(
        lines[1].starts_with(&a) && lines[2].starts_with(&b),
        "{table}"
    );
    // Aligned: every row's VISIBLE column ends where the heading does.
    let end = lines[0].find("VISIBLE").unwrap() + "VISIBLE".len();
    assert_eq!(&lines[1][end - 1..end], "3", "{table}");
    assert_eq!(&lines[2][end - 1..end], "1", "{table}");

    let shown = json(&server, &["queue", "show", &a]);
    assert_eq!(shown["visible"].as_u64(), Some(3));
    assert_eq!(
        shown["settings"]["visibility_timeout_s"].as_f64(),
        Some(30.0)
    );
    let human = ok(&server, &["queue", "show", &a]);
    assert!(human.contains("visibility timeout  30s"), "{human}");
    assert!(human.contains("retention           "), "{human}");

    let peeked = json(&server, &["queue", "peek", &a, "--limit", "2"]);
    let msgs = peeked["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["body_preview"].as_str(), Some("a0\nline 2"));
    assert_eq!(header(&msgs[0], "x-k"), Some("v"));
    let human = ok(&server, &["queue", "peek", &a, "--headers"]);
    assert!(human.contains("a0\\nline 2"), "{human}");
    assert!(human.contains("x-k=v"), "{human}");
    // Peeking delivered nothing.
    let shown = json(&server, &["queue", "show", &a]);
    assert_eq!(shown["visible"].as_u64(), Some(3));
}

#[tokio::test]
async fn a_purge_asks_for_yes_without_a_terminal_and_then_empties_the_queue() {
    let server = Server::start();
    let q = unique("cli-purge");
    let mut c = connect(server.addr).await;
    for i in 0..3 {
        c.send(&format!("/queue/{q}"), format!("m{i}")).await;
    }
    let refused = fails(stampede(&server, &["queue", "purge", &q]), 2);
    assert!(refused.contains("--yes"), "{refused}");
    assert_eq!(
        json(&server, &["queue", "show", &q])["visible"].as_u64(),
        Some(3)
    );
    let purged = json(&server, &["queue", "purge", &q, "--yes"]);
    assert_eq!(purged["purged"].as_u64(), Some(3));
    assert_eq!(
        json(&server, &["queue", "show", &q])["visible"].as_u64(),
        Some(0)
    );
    let human = ok(&server, &["queue", "purge", &q, "--yes"]);
    assert_eq!(human.trim(), format!("purged 0 messages of queue {q}"));
}

#[tokio::test]
async fn exit_codes_tell_not_found_from_unreachable_from_a_bad_command_line() {
    let server = Server::start();
    let missing = fails(stampede(&server, &["queue", "show", "no-such-queue"]), 4);
    assert!(missing.contains("NotFound"), "{missing}");
    fails(stampede(&server, &["queue", "peek", "no-such-queue"]), 4);
    fails(
        stampede(&server, &["queue", "purge", "no-such-queue", "--yes"]),
        4,
    );
    // clap's own exit code for a bad command line, and ours for a bad value.
    fails(
        stampede(&server, &["queue", "peek", "x", "--limit", "0"]),
        2,
    );
    fails(stampede(&server, &["queue", "set", "x"]), 2);
    fails(at("ftp://x", &["queue", "ls"], &[]), 2);
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = fails(
        at(&format!("http://127.0.0.1:{port}"), &["queue", "ls"], &[]),
        3,
    );
    assert!(unreachable.contains("cannot reach"), "{unreachable}");
    // Something that answers HTTP but is not the admin API is not a refusal either.
    let metrics = format!("http://{}/metrics", server.http_addr);
    fails(at(&metrics, &["queue", "ls"], &[]), 3);
}

#[tokio::test]
async fn in_users_mode_credentials_come_from_the_environment_and_bad_ones_exit_5() {
    let server = start_ops_and_app("");
    let ls = ["queue", "ls", "--json"];
    let anonymous = fails(stampede(&server, &ls), 5);
    assert!(anonymous.contains("NotAuthenticated"), "{anonymous}");
    let wrong = [("STAMPEDE_USER", "ops"), ("STAMPEDE_PASSWORD", "wrong")];
    fails(stampede_env(&server, &ls, &wrong), 5);
    let weak = [
        ("STAMPEDE_USER", "app"),
        ("STAMPEDE_PASSWORD", "app-secret"),
    ];
    let forbidden = fails(stampede_env(&server, &ls, &weak), 5);
    assert!(forbidden.contains("NotAuthorized"), "{forbidden}");
    // A user without a password to go with it is a usage error, not a login attempt.
    fails(stampede_env(&server, &ls, &[("STAMPEDE_USER", "ops")]), 2);
    let good = [
        ("STAMPEDE_USER", "ops"),
        ("STAMPEDE_PASSWORD", "ops-secret"),
    ];
    let out = stampede_env(&server, &ls, &good);
    assert!(out.status.success(), "{}", text(&out));
    // --user on the command line, the password still from the environment.
    let out = stampede_env(
        &server,
        &["queue", "ls", "--user", "ops"],
        &[("STAMPEDE_PASSWORD", "ops-secret")],
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// A running `stampede tail`, its output lines handed over as they come.
struct Tail {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Tail {
    fn start(server: &Server, args: &[&str]) -> Tail {
        let url = format!("http://{}", server.http_addr);
        let mut child = Command::new(binary())
            .arg("tail")
            .args(args)
            .args(["--url", &url, "--stomp", &server.addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stampede tail");
        let lines = |pipe: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        Tail {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the line saying it is watching (after its subscription or first peek).
    fn ready(&self) {
        let line = self.stderr.recv_timeout(WAIT).expect("tail's ready line");
        assert!(line.contains("tailing"), "{line}");
    }

    fn line(&self) -> String {
        self.stdout.recv_timeout(WAIT).expect("a line from tail")
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn tail_prints_messages_sent_after_it_starts_and_leaves_a_queue_its_messages() {
    let server = Server::start();
    let topic = format!("/topic/{}", unique("cli-tail"));
    let q = unique("cli-tail-q");
    let mut c = connect(server.addr).await;
    c.send(&format!("/queue/{q}"), "before").await;

    let on_topic = Tail::start(&server, &[&topic, "--json"]);
    on_topic.ready();
    c.send_with(&topic, "to the topic", &[("x-k", "v")]).await;
    let line: Value = serde_json::from_str(&on_topic.line()).unwrap();
    assert_eq!(line["body"].as_str(), Some("to the topic"));
    assert_eq!(line["destination"].as_str(), Some(topic.as_str()));
    assert_eq!(header(&line, "x-k"), Some("v"));

    let on_queue = Tail::start(&server, &[&format!("/queue/{q}"), "--interval", "50ms"]);
    on_queue.ready();
    c.send(&format!("/queue/{q}"), "after\nit started").await;
    let line = on_queue.line();
    assert!(
        line.contains(&q) && line.ends_with("after\\nit started"),
        "{line}"
    );
    // What was waiting before is not printed, and nothing was taken.
    assert!(!line.contains("before"), "{line}");
    assert_eq!(
        json(&server, &["queue", "show", &q])["visible"].as_u64(),
        Some(2)
    );

    // --consume takes what it shows.
    let consuming = Tail::start(&server, &[&format!("/queue/{q}"), "--consume"]);
    consuming.ready();
    let got = [consuming.line(), consuming.line()];
    assert!(
        got[0].ends_with("before") && got[1].ends_with("after\\nit started"),
        "{got:?}"
    );
    // It holds one unacknowledged message at a time: the marker is delivered only once the
    // second message's ACK is in, so killing it then can give back nothing but the marker.
    c.send(&format!("/queue/{q}"), "marker").await;
    assert!(consuming.line().ends_with("marker"));
    drop(consuming);
    let peeked = json(&server, &["queue", "peek", &q]);
    let left: Vec<&str> = peeked["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body_preview"].as_str().unwrap())
        .collect();
    assert!(left.is_empty() || left == ["marker"], "{left:?}");
}

#[tokio::test]
async fn tail_of_an_unknown_queue_exits_4() {
    let server = Server::start();
    fails(stampede(&server, &["tail", "no-such-queue"]), 4);
}

#[tokio::test]
async fn send_then_peek_shows_the_message_with_its_headers() {
    let server = Server::start();
    let q = unique("cli-send");
    let sent = json(
        &server,
        &[
            "send",
            &format!("/queue/{q}"),
            "hello",
            "-H",
            "x-a=1",
            "-H",
            "x-b=a=b",
        ],
    );
    assert!(sent["at_ms"].as_u64().is_some(), "{sent}");
    let human = ok(
        &server,
        &["send", &format!("/queue/{q}"), "again", "--non-persistent"],
    );
    assert!(human.contains(&q), "{human}");
    let peeked = json(&server, &["queue", "peek", &q]);
    let msgs = peeked["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{peeked}");
    assert_eq!(msgs[0]["body_preview"].as_str(), Some("hello"));
    assert_eq!(header(&msgs[0], "x-a"), Some("1"));
    assert_eq!(header(&msgs[0], "x-b"), Some("a=b"));
    fails(
        stampede(&server, &["send", "/queue/x", "-H", "no-equals"]),
        2,
    );
}

#[tokio::test]
async fn set_changes_settings_that_show_reflects_and_a_restart_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = start_on(&data, &[]);
    let q = unique("cli-set");
    let mut c = connect(server.addr).await;
    c.send(&format!("/queue/{q}"), "m").await;
    drop(c);
    let detail = json(
        &server,
        &[
            "queue",
            "set",
            &q,
            "--visibility-timeout",
            "2m",
            "--max-deliveries",
            "none",
            "--retention",
            "7d",
            "--max-messages",
            "100",
            "--max-bytes",
            "1MiB",
            "--dead-letter-queue",
            "parked.{queue}",
        ],
    );
    let expect = |s: &Value| {
        assert_eq!(s["visibility_timeout_s"].as_f64(), Some(120.0), "{s}");
        assert!(s["max_deliveries"].is_null(), "{s}");
        assert_eq!(s["retention_s"].as_f64(), Some(7.0 * 86_400.0), "{s}");
        assert_eq!(s["max_messages"].as_u64(), Some(100), "{s}");
        assert_eq!(s["max_bytes"].as_u64(), Some(1024 * 1024), "{s}");
        assert_eq!(
            s["dead_letter_queue"].as_str(),
            Some("parked.{queue}"),
            "{s}"
        );
    };
    expect(&detail["settings"]);
    let human = ok(&server, &["queue", "show", &q]);
    for want in [
        "visibility timeout  2m",
        "max deliveries      none",
        "retention           7d",
        "max bytes           1.0 MiB",
    ] {
        assert!(human.contains(want), "{want:?} in {human}");
    }
    server.stop();
    let server = start_on(&data, &[]);
    expect(&json(&server, &["queue", "show", &q])["settings"]);
    // Unset again.
    let detail = json(&server, &["queue", "set", &q, "--max-messages", "none"]);
    assert!(detail["settings"]["max_messages"].is_null(), "{detail}");
    fails(
        stampede(
            &server,
            &["queue", "set", "no-such-queue", "--retention", "1d"],
        ),
        4,
    );
    fails(
        stampede(&server, &["queue", "set", &q, "--retention", "soon"]),
        2,
    );
    // --create makes a queue that is not there yet.
    let made = unique("cli-made");
    let detail = json(
        &server,
        &["queue", "set", &made, "--create", "--max-deliveries", "3"],
    );
    assert_eq!(
        detail["settings"]["max_deliveries"].as_u64(),
        Some(3),
        "{detail}"
    );
}

#[tokio::test]
async fn delete_asks_for_yes_and_removes_the_queue() {
    let server = Server::start();
    let q = unique("cli-delete");
    let mut c = connect(server.addr).await;
    c.send(&format!("/queue/{q}"), "m").await;
    fails(stampede(&server, &["queue", "delete", &q]), 2);
    let deleted = json(&server, &["queue", "delete", &q, "--yes"]);
    assert_eq!(deleted["deleted"].as_str(), Some(q.as_str()));
    fails(stampede(&server, &["queue", "show", &q]), 4);
    fails(stampede(&server, &["queue", "delete", &q, "--yes"]), 4);
}

/// Dead-letters the next `n` messages of `dest` with a NACK that does not requeue.
async fn dead_letter(c: &mut Conn, dest: &str, n: usize) {
    let id = unique("nack");
    c.subscribe_with(dest, &id, "client-individual", &[("prefetch-count", "1")])
        .await;
    for _ in 0..n {
        let m = c.message().await;
        let nack = c.settle_frame(Stomp::Nack, &m).header("requeue", "false");
        c.request(nack).await;
    }
    c.unsubscribe(&id).await;
}

#[tokio::test]
async fn redrive_returns_dead_letters_to_their_queue_intact_in_batches() {
    let server = Server::start();
    let q = unique("cli-redrive");
    let dlq = format!("DLQ.{q}");
    let dest = format!("/queue/{q}");
    let mut c = connect(server.addr).await;
    for i in 0..5 {
        c.send_with(
            &dest,
            format!("m{i}"),
            &[("x-k", "v:1"), ("x-i", &i.to_string())],
        )
        .await;
    }
    dead_letter(&mut c, &dest, 5).await;
    assert_eq!(
        json(&server, &["queue", "show", &dlq])["visible"].as_u64(),
        Some(5)
    );
    // Not a dead-letter queue: refused, exit 1.
    fails(stampede(&server, &["queue", "redrive", &q]), 1);

    // Two batches of 2 and one of 1.
    let moved = json(&server, &["queue", "redrive", &dlq, "--batch", "2"]);
    assert_eq!(moved["moved"].as_u64(), Some(5), "{moved}");
    assert_eq!(moved["by_destination"][&q].as_u64(), Some(5), "{moved}");
    assert_eq!(moved["remaining"].as_u64(), Some(0), "{moved}");
    assert_eq!(moved["batches"].as_u64(), Some(3), "{moved}");

    c.subscribe(&dest, "back", "auto").await;
    for i in 0..5 {
        let m = c.message().await;
        assert_eq!(body(&m), format!("m{i}"));
        assert_eq!(h(&m, "x-k"), "v:1");
        assert_eq!(h(&m, "x-i"), i.to_string());
        assert!(m.headers.get("x-death-reason").is_none(), "{m:?}");
        assert!(m.headers.get("x-original-destination").is_none(), "{m:?}");
    }
    c.unsubscribe("back").await;

    // By id, to another queue, in words.
    c.send(&dest, "again").await;
    dead_letter(&mut c, &dest, 1).await;
    let peeked = json(&server, &["queue", "peek", &dlq]);
    let id = peeked["messages"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = unique("cli-redrive-to");
    let human = ok(
        &server,
        &["queue", "redrive", &dlq, "--id", &id, "--to", &other],
    );
    assert!(
        human.contains(&format!("moved 1 message from {dlq} (1 to {other})")),
        "{human}"
    );
    let peeked = json(&server, &["queue", "peek", &other]);
    assert_eq!(
        peeked["messages"][0]["body_preview"].as_str(),
        Some("again")
    );
}

#[tokio::test]
async fn conn_ls_shows_a_stomp_connection_and_conn_kill_closes_it() {
    let server = Server::start();
    let q = format!("/queue/{}", unique("cli-conn"));
    let mut c = connect(server.addr).await;
    c.subscribe(&q, "watch", "client").await;
    let session = c.session();
    let listed = json(&server, &["conn", "ls"]);
    let mine = listed["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"].to_string().trim_matches('"') == session)
        .unwrap_or_else(|| panic!("session {session} not in {listed}"))
        .clone();
    assert_eq!(mine["transport"].as_str(), Some("tcp"), "{mine}");
    assert_eq!(
        mine["subscriptions"][0]["destination"].as_str(),
        Some(q.as_str())
    );
    let table = ok(&server, &["conn", "ls"]);
    assert!(
        table.starts_with("ID ") || table.contains(" ID "),
        "{table}"
    );
    assert!(table.contains(&q), "{table}");

    let closed = json(&server, &["conn", "kill", &session]);
    assert_eq!(closed["closed"].to_string().trim_matches('"'), session);
    let f = c.recv().await;
    assert_eq!(f.command, Stomp::Error, "{f:?}");
    c.assert_closed().await;
    fails(stampede(&server, &["conn", "kill", &session]), 4);
}
