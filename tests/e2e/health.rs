//! `stampede health`: the probe a container HEALTHCHECK runs (images without curl): exit 0 while
//! the broker answers 200 on /healthz (/readyz with `--ready`), a failure naming the address
//! otherwise.

use std::process::Command;

use stampede_tests::{binary, Server};

fn health(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(binary());
    cmd.arg("health").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stampede health")
}

#[test]
fn health_exits_zero_while_the_broker_answers_and_names_the_address_when_not() {
    let mut server = Server::start();
    let http = server.http_addr.to_string();
    assert!(health(&["--addr", &http], &[]).status.success());
    assert!(health(&["--addr", &http, "--ready"], &[]).status.success());
    // Without --addr it probes the configured HTTP listener; 0.0.0.0 means loopback.
    let configured = format!("0.0.0.0:{}", server.http_addr.port());
    let env = [("STAMPEDE__LISTENERS__HTTP__BIND", configured)];
    assert!(health(&[], &env).status.success());
    server.stop();
    let out = health(&["--addr", &http], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&http), "{stderr}");
}
