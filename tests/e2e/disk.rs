//! A full disk: the storage alarm refuses messages before the store runs out of space, and a store
//! that does hit ENOSPC answers with ERRORs (never hangs, never confirms what it did not write),
//! shuts down, and recovers every confirmed message once space is back.
//!
//! These tests mount a small tmpfs, so they need root (as CI and the development machines run).

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use bytes::Bytes;
use stampede_proto::{Command, Frame};
use stampede_tests::{unique, Client, Server};

/// A tmpfs of a given size, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "disk tests mount a tmpfs and need root"
        );
        let dir = tempfile::tempdir().unwrap();
        let ok = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "mount -t tmpfs failed");
        Tmpfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn resize(&self, size: &str) {
        let ok = Process::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount failed");
    }

    /// Fills the filesystem until fewer than `leave` bytes are free.
    fn fill(&self, leave: u64) -> PathBuf {
        let ballast = self.dir.path().join("ballast");
        let free = free_bytes(self.dir.path());
        let len = free.saturating_sub(leave);
        std::fs::write(&ballast, vec![0u8; len as usize]).expect("write ballast");
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let out = Process::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

fn send_frame(dest: &str, body: &[u8], receipt: &str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", dest)
        .header("receipt", receipt)
        .body(Bytes::copy_from_slice(body))
}

#[tokio::test]
async fn the_storage_alarm_refuses_sends_until_space_is_freed() {
    let fs = Tmpfs::mount("16m");
    let server = Server::builder()
        .data_dir(&fs.path())
        .env("STORAGE__MIN_FREE_SPACE", "4MiB")
        .start();
    let q = format!("/queue/{}", unique("alarm"));
    let mut c = Client::connect(server.addr).await;
    c.send(&q, "before").await;
    let ballast = fs.fill(2 * 1024 * 1024);
    server.wait_for_log(&["storage alarm: refusing messages"]);
    c.send_frame(send_frame(&q, b"refused", "r-full")).await;
    let err = c.recv().await;
    assert_eq!(err.command, Command::Error, "{err:?}");
    assert!(
        err.headers
            .get("message")
            .unwrap()
            .contains("storage is nearly full"),
        "{err:?}"
    );
    assert_eq!(err.headers.get("receipt-id"), Some("r-full"));
    std::fs::remove_file(ballast).unwrap();
    server.wait_for_log(&["storage alarm cleared"]);
    let mut c = Client::connect(server.addr).await;
    c.send(&q, "after").await;
    c.subscribe(&q, "1", "auto").await;
    assert_eq!(c.bodies(2).await, ["before", "after"]);
}

#[tokio::test]
async fn a_store_that_hits_enospc_errors_instead_of_hanging_and_recovers_confirmed_messages() {
    let fs = Tmpfs::mount("6m");
    let mut server = Server::builder()
        .data_dir(&fs.path())
        .env("STORAGE__MIN_FREE_SPACE", "0")
        .env("SHUTDOWN__GRACE", "2s")
        .start();
    let q = format!("/queue/{}", unique("enospc"));
    let mut c = Client::connect(server.addr).await;
    let body = vec![b'x'; 20 * 1024];
    let mut confirmed = 0usize;
    let error = loop {
        assert!(confirmed < 2000, "6 MiB never filled up");
        c.send_frame(send_frame(&q, &body, &format!("r{confirmed}")))
            .await;
        let reply = c.recv().await;
        match reply.command {
            Command::Receipt => confirmed += 1,
            _ => break reply,
        }
    };
    assert_eq!(error.command, Command::Error);
    assert!(
        error
            .headers
            .get("message")
            .unwrap()
            .contains("could not be stored"),
        "{error:?}"
    );
    assert!(confirmed > 10, "only {confirmed} messages fit");
    // Later writes fail at once with an explanation; they must not hang.
    let mut again = Client::connect(server.addr).await;
    again.send_frame(send_frame(&q, b"late", "r-late")).await;
    let late = again.recv().await;
    assert_eq!(late.command, Command::Error, "{late:?}");
    assert!(
        late.headers
            .get("message")
            .unwrap()
            .contains("accepts no writes"),
        "{late:?}"
    );
    server.stop();
    fs.resize("64m");
    let server = Server::builder().data_dir(&fs.path()).start();
    let mut c = Client::connect(server.addr).await;
    c.subscribe(&q, "1", "client-individual").await;
    for n in 0..confirmed {
        let m = c.message().await;
        assert_eq!(m.body.len(), body.len(), "message {n} intact");
        let id = m.headers.get("ack").unwrap().to_owned();
        c.request(Frame::new(Command::Ack).header("id", id)).await;
    }
}
