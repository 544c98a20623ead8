//! Idle connections are cheap: the broker's resident memory grows by less than 8 KiB for each
//! connected client that sends nothing (issue 5's target). An idle connection holds no read or
//! write buffer, and its outbox slots are pointer-sized.

use stampede_tests::{Client, Server};

/// The broker's resident set, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Raises this process's open-file limit to its hard limit (the broker inherits it); returns it.
fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a stack value this function owns.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

#[tokio::test]
async fn an_idle_connection_costs_the_broker_less_than_8_kib() {
    let limit = raise_fd_limit();
    // Both ends of every connection live on this machine: the test's and the broker's.
    let n = 2000.min((limit.saturating_sub(200) / 2) as usize);
    assert!(n >= 500, "open-file limit {limit} is too low to measure");
    let server = Server::start();
    // Let lazily built structures (runtime slabs, maps) reach their size for a few connections.
    let warm: Vec<Client> =
        futures::future::join_all((0..50).map(|_| Client::connect(server.addr))).await;
    drop(warm);
    let before = rss_kib(server.pid());
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(Client::connect(server.addr).await);
    }
    let after = rss_kib(server.pid());
    let per = after.saturating_sub(before) as f64 / n as f64;
    assert!(
        per < 8.0,
        "{n} idle connections took {} KiB: {per:.1} KiB each",
        after - before
    );
    // They are alive, not just counted.
    let mut last = held.pop().unwrap();
    last.send("/queue/idle-check", "ok").await;
}
