//! A fine-grained clock for open-loop (`--rate`) producers. tokio's timer has millisecond
//! granularity, so a producer sleeping until its next message is due would wake up to 1 ms late,
//! and since open-loop latency counts from the scheduled time, the broker would be charged for
//! the tool's oversleep. One plain thread that sleeps about 100 µs at a time and wakes the waiting
//! producers keeps that error near 0.1 ms; only `--rate` runs start it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Waits closer than this are left to the pacer thread; longer ones sleep on tokio's timer first.
const COARSE_MARGIN: Duration = Duration::from_millis(2);

#[derive(Debug)]
pub struct Pacer {
    tick: Arc<Notify>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    pub fn start(period: Duration) -> Pacer {
        let tick = Arc::new(Notify::new());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (tick, stop) = (tick.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(period);
                        tick.notify_waiters();
                    }
                })
                .ok()
        };
        Pacer { tick, stop, thread }
    }

    /// Returns at `due` or within about one period after it.
    pub async fn wait_until(&self, due: Instant) {
        if let Some(coarse) = due.checked_sub(COARSE_MARGIN) {
            if coarse > Instant::now() {
                tokio::time::sleep_until(coarse.into()).await;
            }
        }
        if self.thread.is_none() {
            // No thread could be started: fall back to the coarse timer.
            tokio::time::sleep_until(due.into()).await;
            return;
        }
        loop {
            // Registered before the check, so a tick between the check and the await still wakes us.
            let tick = self.tick.notified();
            if Instant::now() >= due {
                return;
            }
            tick.await;
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
