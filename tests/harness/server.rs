//! Starting, stopping and killing the real broker binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::WAIT;

/// Locates the binary: `STAMPEDE_BIN`, else `stampede` next to the test executable's target dir.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("STAMPEDE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/stampede
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("stampede");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build --bin stampede` (or set STAMPEDE_BIN)",
        bin.display()
    );
    bin
}

/// Log lines the broker printed, shared with the reader thread.
#[derive(Default)]
struct Logs {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// The broker command, without a subcommand (`stampede` alone serves): data in `data_dir`, both
/// listeners on free ports, JSON logs, output piped.
pub fn command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(["--log-format", "json", "--data-dir"])
        .arg(data_dir)
        .env("STAMPEDE__LISTENERS__STOMP__BIND", "127.0.0.1:0")
        .env("STAMPEDE__LISTENERS__HTTP__BIND", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawns a broker expected to refuse to start and returns its output once it has exited; fails
/// the test (killing it) if it is still running after [`WAIT`].
pub fn run_to_exit(mut cmd: Command) -> Output {
    let child = cmd.spawn().expect("spawn stampede");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.expect("wait for stampede"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("stampede did not exit within {WAIT:?}: it accepted what should refuse it");
        }
    }
}

/// Options for a broker under test.
#[derive(Default)]
pub struct ServerBuilder {
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    config: Option<PathBuf>,
    serve_args: Vec<String>,
}

impl ServerBuilder {
    /// Sets `STAMPEDE__<key>`; e.g. `env("PROTOCOL__HEARTBEAT", "1s")`.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env
            .push((format!("STAMPEDE__{key}"), value.to_owned()));
        self
    }

    /// Reuses a data directory (restart tests).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }

    /// Passes `--config FILE`.
    pub fn config(mut self, file: &Path) -> Self {
        self.config = Some(file.to_owned());
        self
    }

    /// Passes `arg` to `serve` (e.g. `--ephemeral`).
    pub fn serve_arg(mut self, arg: &str) -> Self {
        self.serve_args.push(arg.to_owned());
        self
    }

    fn command(&self, data_dir: &Path) -> Command {
        let mut cmd = command(data_dir);
        cmd.arg("serve").args(&self.serve_args);
        if let Some(file) = &self.config {
            cmd.arg("--config").arg(file);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a broker that is expected to refuse to start: waits for it to exit and returns its
    /// output. Fails the test (killing the broker) if it is still running after [`WAIT`].
    pub fn run_to_exit(self) -> Output {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        run_to_exit(self.command(&data_dir))
    }

    pub fn start(self) -> Server {
        match self.try_start() {
            Ok(server) => server,
            Err(failed) => panic!(
                "broker did not report ready ({}):\n{}",
                failed.status,
                failed.logs.join("\n")
            ),
        }
    }

    /// Like [`ServerBuilder::start`], but a broker that exits instead of reporting ready is an
    /// `Err` with its exit status and output rather than a panic. Still panics if it neither
    /// becomes ready nor exits within [`WAIT`].
    pub fn try_start(self) -> Result<Server, StartFailure> {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| temp.path().join("data"));
        let mut child = self.command(&data_dir).spawn().expect("spawn stampede");
        let logs = Arc::new(Logs::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        // Drains stdout for the broker's whole life so its pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = ready_addr(&line) {
                    let _ = ready_tx.send(addr);
                }
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
        });
        let sink = logs.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lines.lock().unwrap().push(line);
                sink.grew.notify_all();
            }
        });
        let (addr, http_addr) = match ready_rx.recv_timeout(WAIT) {
            Ok(addrs) => addrs,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // stdout closed without `ready`: the broker is exiting.
                let status = wait_exit(&mut child);
                let _ = stderr_reader.join();
                let logs = logs.lines.lock().unwrap().clone();
                return Err(StartFailure { status, logs });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!(
                    "broker neither reported ready nor exited:\n{}",
                    logs.lines.lock().unwrap().join("\n")
                );
            }
        };
        Ok(Server {
            child,
            addr,
            http_addr,
            logs,
            data_dir,
            _temp: temp,
        })
    }
}

/// A broker that exited instead of becoming ready.
#[derive(Debug)]
pub struct StartFailure {
    pub status: ExitStatus,
    /// Everything it printed, stdout and stderr lines interleaved as read.
    pub logs: Vec<String>,
}

/// Waits up to [`WAIT`] for `child` to exit.
fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("broker did not exit");
        }
        // Process exit has no portable awaitable event from std; a short poll is the wait.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The STOMP and HTTP addresses of a `ready` log line.
fn ready_addr(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "ready" {
        return None;
    }
    let addr = |name: &str| fields.get(name)?.as_str()?.parse().ok();
    Some((addr("stomp")?, addr("http")?))
}

/// A running broker. Dropping it kills the process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The HTTP listener: /metrics, /healthz, /readyz.
    pub http_addr: SocketAddr,
    logs: Arc<Logs>,
    data_dir: PathBuf,
    _temp: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        ServerBuilder::default().start()
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// SIGHUP: the broker reloads its TLS certificates.
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    /// The address of the STOMP listener called `name` (from its `listening` log event).
    pub fn listener(&self, name: &str) -> SocketAddr {
        let needle = format!("\"listener\":\"{name}\"");
        let line = self.wait_for_log(&["\"listening\"", &needle]);
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        v["fields"]["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"))
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit();
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child)
    }

    /// Waits until a log line contains every one of `needles`; returns it.
    pub fn wait_for_log(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.logs.lines.lock().unwrap();
        loop {
            if let Some(l) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line with {needles:?}:\n{}",
                lines.join("\n")
            );
            lines = self.logs.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lines.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
