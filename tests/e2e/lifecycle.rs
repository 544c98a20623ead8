//! Process lifecycle: graceful shutdown on SIGTERM, DISCONNECT, configuration errors at start-up,
//! `--config FILE`, and the `ready` log event.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Output};
use std::sync::mpsc;

use stampede_proto::{Command, Frame, Version};
use stampede_tests::{command, run_to_exit, unique, Client, Server, WAIT};

use crate::errors::{frames_until_closed, single_error};

/// Asserts start-up failed with one stderr message containing every needle, each problem stated
/// once (an error chain that repeats its cause is noise an operator has to untangle).
#[track_caller]
fn assert_refused(out: &Output, needles: &[&str], stated_once: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "exited successfully; stderr: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}: {stderr}");
    }
    assert_eq!(
        stderr.matches(stated_once).count(),
        1,
        "{stated_once:?} not stated exactly once: {stderr}"
    );
    stderr
}

#[tokio::test]
async fn sigterm_sends_every_client_an_error_then_closes_and_exits_zero() {
    // A grace period longer than the harness deadline: if a connection held shutdown up, `stop`
    // would fail instead of the grace period quietly ending it.
    let mut server = Server::builder().env("SHUTDOWN__GRACE", "30s").start();
    let q = unique("/queue/shutdown");
    let mut v12 = Client::connect(server.addr).await;
    let mut v10 = Client::connect_with(server.addr, &[]).await.unwrap();
    let mut subscriber = Client::connect(server.addr).await;
    subscriber.subscribe(&q, "s", "client").await;
    v12.send(&q, "unacked").await;
    let delivered = subscriber.message().await;
    assert_eq!(&delivered.body[..], b"unacked");
    // Connected at TCP level but never sent CONNECT: must not hold shutdown up either.
    let mut pending = Client::raw(server.addr).await;

    let status = server.stop();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        server.logs().join("\n")
    );
    server.wait_for_log(&["\"stopped\""]);

    for (name, c) in [
        ("1.2", &mut v12),
        ("1.0", &mut v10),
        ("subscriber", &mut subscriber),
    ] {
        let frames = c.expect_closed().await;
        let err = single_error(&frames, &[]);
        assert_eq!(
            err.headers.get("message"),
            Some("broker shutting down"),
            "{name}"
        );
    }
    let frames = frames_until_closed(&mut pending, Version::V1_0).await;
    assert!(
        frames.iter().all(|f| f.command == Command::Error),
        "{frames:?}"
    );
}

#[tokio::test]
async fn disconnect_with_receipt_gets_the_receipt_then_close() {
    let server = Server::start();
    let mut c = Client::connect(server.addr).await;
    c.send_frame(Frame::new(Command::Disconnect).header("receipt", "bye-1"))
        .await;
    let frames = c.expect_closed().await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].command, Command::Receipt);
    assert_eq!(frames[0].headers.get("receipt-id"), Some("bye-1"));
    server.wait_for_log(&["\"disconnected\""]);
}

#[test]
fn bad_bind_address_names_the_key_and_the_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(&dir.path().join("data"));
    cmd.env("STAMPEDE__LISTENERS__STOMP__BIND", "nonsense");
    let out = run_to_exit(cmd);
    assert_refused(
        &out,
        &["listeners.stomp.bind", "nonsense", "HOST:PORT"],
        "is not HOST:PORT",
    );
}

#[test]
fn bad_duration_names_the_key_and_the_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(&dir.path().join("data"));
    cmd.env("STAMPEDE__PROTOCOL__HEARTBEAT", "soon");
    let out = run_to_exit(cmd);
    assert_refused(
        &out,
        &["protocol.heartbeat", "soon", "500ms"],
        "is not a duration",
    );
}

#[test]
fn unknown_key_in_the_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    std::fs::write(&file, "[protocol]\nheartbeet = \"1s\"\n").unwrap();
    let mut cmd = command(&dir.path().join("data"));
    cmd.arg("--config").arg(&file);
    let out = run_to_exit(cmd);
    assert_refused(
        &out,
        &["heartbeet", "protocol", "heartbeat"],
        "unknown field `heartbeet`",
    );
}

#[test]
fn an_unknown_storage_backend_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(&dir.path().join("data"));
    cmd.env("STAMPEDE__STORAGE__BACKEND", "floppy");
    let out = run_to_exit(cmd);
    assert_refused(&out, &["floppy", "sled", "memory"], "floppy");
}

#[tokio::test]
async fn an_ephemeral_broker_writes_nothing_and_forgets_everything_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never-created");
    let mut server = Server::builder()
        .serve_arg("--ephemeral")
        .data_dir(&data)
        .start();
    server.wait_for_log(&["\"backend\":\"Memory\""]);
    let q = unique("/queue/ephemeral");
    let mut c = Client::connect(server.addr).await;
    c.send(&q, "kept while running").await;
    let mut reader = Client::connect(server.addr).await;
    reader.subscribe(&q, "1", "client-individual").await;
    assert_eq!(
        &reader.message().await.body[..],
        b"kept while running",
        "it is a working broker"
    );
    drop(reader);
    c.send(&q, "second").await;
    assert!(server.stop().success());
    assert!(!data.exists(), "nothing was written to {}", data.display());
    let server = Server::builder()
        .serve_arg("--ephemeral")
        .data_dir(&data)
        .start();
    let mut again = Client::connect(server.addr).await;
    again.subscribe(&q, "1", "auto").await;
    let marker = unique("/queue/marker");
    again.subscribe(&marker, "2", "auto").await;
    again.send(&marker, "m").await;
    let first = again.message().await;
    assert_eq!(
        first.headers.get("subscription"),
        Some("2"),
        "nothing survived the restart: {first:?}"
    );
}

#[test]
fn unusable_data_dir_names_the_key_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory cannot be created under a regular file, even by root.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let data = file.join("data");
    let cmd = command(&data);
    let out = run_to_exit(cmd);
    assert_refused(
        &out,
        &["storage.data_dir", &data.display().to_string()],
        "Not a directory",
    );
}

/// A broker started with its own arguments (the harness does not take `--config`).
struct Spawned {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` and waits for its `ready` event; returns the broker and that log line.
fn start(mut cmd: Process, dir: tempfile::TempDir) -> (Spawned, serde_json::Value) {
    let mut child = cmd.spawn().expect("spawn stampede");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Drain both pipes for the broker's whole life so they never fill.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "ready" {
                let _ = tx.send(v);
            }
        }
    });
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines().map_while(Result::ok) {});
    let mut spawned = Spawned {
        child,
        addr: "0.0.0.0:0".parse().unwrap(),
        _dir: dir,
    };
    let ready = rx.recv_timeout(WAIT).expect("broker did not report ready");
    spawned.addr = ready["fields"]["stomp"]
        .as_str()
        .expect("ready names the stomp address")
        .parse()
        .unwrap();
    (spawned, ready)
}

#[tokio::test]
async fn config_file_is_honoured_and_the_environment_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broker.toml");
    // The bind address is overridden by the environment (`command` sets port 0); with it the
    // broker could not start here.
    std::fs::write(
        &file,
        "[listeners.stomp]\nbind = \"192.0.2.1:1\"\n\n[protocol]\nheartbeat = \"300ms\"\n",
    )
    .unwrap();
    let mut cmd = command(&dir.path().join("data"));
    cmd.arg("--config").arg(&file);
    let (broker, _) = start(cmd, dir);
    let c = Client::connect_with(
        broker.addr,
        &[("accept-version", "1.2"), ("heart-beat", "100,100")],
    )
    .await
    .unwrap();
    assert_eq!(c.connected.headers.get("heart-beat"), Some("300,300"));
}

#[tokio::test]
async fn ready_log_line_carries_startup_ms_and_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, ready) = start(command(&dir.path().join("data")), dir);
    let fields = &ready["fields"];
    assert!(
        fields["startup_ms"].is_u64(),
        "ready line without a numeric startup_ms: {ready}"
    );
    assert_eq!(
        fields["stomp"].as_str(),
        Some(broker.addr.to_string().as_str())
    );
    // The address it reports is the one that accepts STOMP.
    Client::connect(broker.addr).await;
}
