//! Backups (docs/operations.md "Backup and restore"): `stampede backup` of a running broker and
//! of a stopped one's data directory, `stampede restore` into an empty one, and a broker started
//! on the restored directory serving every message intact — bodies, headers, order, delivery
//! counts. Damaged files and non-empty targets are refused before anything is written; in users
//! mode only a user who may read and administer everything may take a backup.

use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use stampede_tests::http::request;
use stampede_tests::{binary, unique, Server};

use crate::auth::passwd;
use crate::durability::{recovered, start_on};
use crate::support_q::{body, connect, h};

/// `stampede ARGS` with `env`; its output once it has exited.
fn stampede(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stampede")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> String {
    let text = stderr(&out);
    assert!(out.status.success(), "stampede failed: {text}");
    text
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

#[tokio::test]
async fn a_backup_of_a_running_broker_restores_every_message_intact() {
    let dir = tempfile::tempdir().unwrap();
    let (data, copy) = (dir.path().join("data"), dir.path().join("restored"));
    let (online, offline) = (dir.path().join("online.snap"), dir.path().join("off.snap"));
    let plain = format!("/queue/{}", unique("backup-plain"));
    let large = format!("/queue/{}", unique("backup-large"));
    let counted = format!("/queue/{}", unique("backup-counted"));
    // In a segment file on disk, not in sled (above storage.large_body_threshold).
    let big: Bytes = (0..200 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let headers = [("x-colon", "a:b"), ("x-unicode", "ünï ✓"), ("x-empty", "")];

    let mut server = start_on(&data, &[]);
    let mut c = connect(server.addr).await;
    for i in 0..20 {
        c.send_with(&plain, format!("m{i}"), &headers).await;
    }
    c.send(&large, big.clone()).await;
    c.send(&counted, "delivered once").await;
    // Delivered and not acknowledged: its delivery count is stored and must come back.
    c.subscribe(&counted, "s", "client").await;
    assert_eq!(body(&c.message().await), "delivered once");
    drop(c);

    let out = ok(stampede(
        &[
            "backup",
            path(&online),
            "--addr",
            &server.http_addr.to_string(),
        ],
        &[],
    ));
    assert!(out.contains("3 queues, 22 messages"), "{out}");
    // While the broker runs, sled's lock keeps an offline backup out, and it says why.
    let refused = stampede(
        &["backup", "--offline", "--data-dir", path(&data), "x"],
        &[],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("another process"),
        "{}",
        stderr(&refused)
    );
    server.stop();
    let out = ok(stampede(
        &[
            "backup",
            "--offline",
            "--data-dir",
            path(&data),
            path(&offline),
        ],
        &[],
    ));
    assert!(out.contains("3 queues, 22 messages"), "{out}");
    assert_eq!(
        std::fs::read(&online).unwrap(),
        std::fs::read(&offline).unwrap()
    );

    let out = ok(stampede(
        &["restore", path(&online), "--data-dir", path(&copy)],
        &[],
    ));
    assert!(out.contains("3 queues, 22 messages"), "{out}");
    let server = start_on(&copy, &[]);
    assert_eq!(recovered(&server), (3, 22));
    let mut c = connect(server.addr).await;
    c.subscribe(&plain, "p", "auto").await;
    for i in 0..20 {
        let m = c.message().await;
        assert_eq!(body(&m), format!("m{i}"));
        for (k, v) in headers {
            assert_eq!(h(&m, k), v, "header {k}");
        }
    }
    c.subscribe(&large, "l", "auto").await;
    assert_eq!(c.message().await.body, big);
    c.subscribe(&counted, "c", "client").await;
    let m = c.message().await;
    assert_eq!(body(&m), "delivered once");
    assert_eq!(h(&m, "redelivered"), "true");
    assert_eq!(h(&m, "delivery-count"), "2");
}

#[tokio::test]
async fn damaged_files_and_used_directories_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (data, file) = (dir.path().join("data"), dir.path().join("b.snap"));
    let mut server = start_on(&data, &[]);
    let mut c = connect(server.addr).await;
    for i in 0..3 {
        c.send(&format!("/queue/{}", unique("kept")), format!("k{i}"))
            .await;
    }
    drop(c);
    // By name, as an operator would reach a broker.
    let http = format!("localhost:{}", server.http_addr.port());
    ok(stampede(&["backup", path(&file), "--addr", &http], &[]));
    server.stop();

    let whole = std::fs::read(&file).unwrap();
    let cut = dir.path().join("cut.snap");
    std::fs::write(&cut, &whole[..whole.len() - 3]).unwrap();
    let target = dir.path().join("never");
    let out = stampede(&["restore", path(&cut), "--data-dir", path(&target)], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a whole Stampede snapshot"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists(), "a refused restore created its target");

    let out = stampede(&["restore", path(&file), "--data-dir", path(&data)], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));
    // The used directory is untouched: its broker starts as before.
    let server = start_on(&data, &[]);
    assert_eq!(recovered(&server), (3, 3));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("restoring") || n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[tokio::test]
async fn in_users_mode_only_an_admin_of_everything_takes_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nmode = \"users\"\n\
             [auth.users.ops]\npassword_hash = \"{}\"\n\
             [auth.users.app]\npassword_hash = \"{}\"\n\
             [auth.users.app.permissions]\nread = [\"*\"]\nwrite = [\"*\"]\nadmin = [\"/queue/app.*\"]\n\
             [auth.users.binder]\npassword_hash = \"{}\"\n\
             [auth.users.binder.permissions]\nread = [\"/queue/own\"]\nadmin = [\"*\"]\n",
            passwd("ops-secret"),
            passwd("app-secret"),
            passwd("binder-secret"),
        ),
    )
    .unwrap();
    let server = Server::builder().config(&config).start();
    let http = server.http_addr.to_string();
    let file = dir.path().join("b.snap");
    let backup = |user: Option<&str>, password: &str| {
        let mut args = vec!["backup", path(&file), "--addr", &http];
        args.extend(user.iter().flat_map(|u| ["--user", *u]));
        stampede(&args, &[("STAMPEDE_PASSWORD", password)])
    };
    for (user, password, said) in [
        (None, "", "401"),
        (Some("ops"), "wrong", "401"),
        (Some("app"), "app-secret", "403"),
        // Admin of everything, but a backup holds every message body: reading is needed too.
        (Some("binder"), "binder-secret", "403"),
    ] {
        let out = backup(user, password);
        assert!(!out.status.success(), "{user:?} got a backup");
        assert!(stderr(&out).contains(said), "{user:?}: {}", stderr(&out));
        assert!(!file.exists(), "a refused backup left a file");
    }
    let (status, answer) = request(server.http_addr, "GET", "/api/backup", &[], "").await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer.contains("\"error\":\"NotAuthenticated\""),
        "{answer}"
    );
    ok(backup(Some("ops"), "ops-secret"));
    assert!(file.exists());
}
