//! The sled store against the conformance suite: over a real data directory reopened for every
//! restart, and through a real crash (a child process killed with `abort` while commits are in
//! flight).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Weak};
use std::time::Duration;

use stampede_store::conformance::{self, Backend};
use stampede_store::Store;
use stampede_store_sled::{SledOptions, SledStore};

/// Set in the child's environment to the data directory it writes to before it aborts.
const CHILD_ENV: &str = "STAMPEDE_CRASH_CHILD";
/// Printed by the child once `crash::write` returned, just before it aborts: a child that failed
/// earlier (and also exits abnormally, by panicking) is not taken for a crash.
const MARKER: &str = "stampede-crash-child: written, aborting";

struct Sled {
    dir: tempfile::TempDir,
    options: SledOptions,
    last: Option<Weak<SledStore>>,
    /// The directories of the stores `open_empty` made.
    empties: Vec<tempfile::TempDir>,
}

impl Sled {
    fn new(options: SledOptions) -> Sled {
        Sled {
            dir: tempfile::tempdir().expect("temp dir"),
            options,
            last: None,
            empties: Vec::new(),
        }
    }
}

impl Backend for Sled {
    fn open(&mut self) -> Arc<dyn Store> {
        // The previous instance must be gone: its Drop joins the committer, which releases
        // sled's lock on the directory.
        if let Some(last) = self.last.take() {
            assert!(
                last.upgrade().is_none(),
                "the previous store is still alive: a check kept a handle across a restart"
            );
        }
        let store = Arc::new(SledStore::open(self.dir.path(), self.options).expect("open"));
        self.last = Some(Arc::downgrade(&store));
        store
    }

    fn open_empty(&mut self) -> Arc<dyn Store> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStore::open(dir.path(), self.options).expect("open an empty store");
        self.empties.push(dir);
        Arc::new(store)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_store_passes_the_conformance_suite() {
    conformance::run(&mut Sled::new(SledOptions::default())).await;
}

/// Every body in segments, tiny rounds, and sweeps a few keys at a time, so drops stay mid-sweep
/// across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_store_passes_with_segments_small_rounds_and_slow_sweeps() {
    let options = SledOptions {
        inline_limit: 8,
        max_batch: 3,
        sweep_keys: 16,
        ..SledOptions::default()
    };
    conformance::run(&mut Sled::new(options)).await;
}

#[tokio::test]
async fn sled_store_survives_a_crash_with_commits_in_flight() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return crash_child(Path::new(&dir)).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "sled_store_survives_a_crash_with_commits_in_flight",
            "--nocapture",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child");
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_string(&mut err);
        }
        let _ = tx.send((out, err));
    });
    let Ok((out, err)) = rx.recv_timeout(Duration::from_secs(120)) else {
        let _ = child.kill();
        panic!("the crash child did not finish within 120 s");
    };
    let status = child.wait().expect("wait for the child");
    let _ = waiter.join();
    assert!(
        out.contains(MARKER),
        "the child failed before its crash ({status}):\n{out}\n{err}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(6),
        "the child was to abort (SIGABRT): {status}"
    );
    let store = SledStore::open(dir.path(), SledOptions::default()).expect("reopen after crash");
    conformance::crash::check(&store).await;
}

async fn crash_child(dir: &Path) {
    // Never dropped: a drop would be a clean shutdown that flushes everything.
    // Small rounds, so several are under way when the child dies.
    let options = SledOptions {
        max_batch: 4,
        ..SledOptions::default()
    };
    let store = SledStore::open(dir, options).expect("child: open");
    conformance::crash::write(&store).await;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{MARKER}").expect("child: marker");
    stdout.flush().expect("child: flush");
    std::process::abort();
}
