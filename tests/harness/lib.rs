//! Test harness shared by every end-to-end suite: [`Server`] starts the real `stampede` binary on a
//! free port with a fresh data directory and waits for its `ready` log event; [`Client`] speaks
//! STOMP to it through the project's own codec.
//!
//! Nothing here sleeps to synchronise: start-up waits for the `ready` event, reads wait for frames,
//! and every wait has a deadline that fails the test with what was seen so far.

pub mod client;
pub mod http;
mod server;
pub mod tls;

pub use client::Client;
pub use server::{binary, command, run_to_exit, Server, ServerBuilder, StartFailure};

use std::time::Duration;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A queue name no other test uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
