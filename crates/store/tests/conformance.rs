//! The memory store against the conformance suite. Its "restart" hands out the same instance
//! again: a memory store lasts as long as the process, and recovering from the same instance is
//! what an ephemeral broker's restart of its queues amounts to. The crash half does not apply (a
//! killed process keeps nothing); `crash::write` and `crash::check` run in-process below only to
//! show the check accepts a store that kept every commit.

use std::sync::Arc;

use stampede_store::conformance::{self, Backend};
use stampede_store::{MemoryStore, Store};

struct Memory(Arc<MemoryStore>);

impl Backend for Memory {
    fn open(&mut self) -> Arc<dyn Store> {
        self.0.clone()
    }

    fn open_empty(&mut self) -> Arc<dyn Store> {
        Arc::new(MemoryStore::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run(&mut Memory(Arc::new(MemoryStore::new()))).await;
}

#[tokio::test]
async fn the_crash_check_accepts_a_store_that_kept_everything() {
    let store = MemoryStore::new();
    conformance::crash::write(&store).await;
    conformance::crash::check(&store).await;
}
