//! Opening the store `storage.backend` names: sled in the data directory, or memory for an
//! ephemeral broker. Opening sled blocks (it reads its indexes), so it runs off the async workers.

use std::sync::Arc;

use stampede_store::{MemoryStore, Store, StoreObserver};
use stampede_store_sled::{SledOptions, SledStore};

use crate::config::{Backend, Settings};
use crate::ServerError;

/// Opens the configured store, reporting commit rounds to `observer`.
pub async fn open(
    settings: &Settings,
    observer: Arc<dyn StoreObserver>,
) -> Result<Arc<dyn Store>, ServerError> {
    let st = &settings.storage;
    match st.backend {
        Backend::Memory => Ok(Arc::new(MemoryStore::new())),
        Backend::Sled => {
            prepare_data_dir(&st.data_dir)?;
            let dir = st.data_dir.clone();
            let options = sled_options(settings);
            let opened = tokio::task::spawn_blocking(move || {
                SledStore::open_observed(&dir, options, Some(observer))
                    .map_err(|source| ServerError::Store { path: dir, source })
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
            Ok(Arc::new(opened))
        }
    }
}

/// The sled options the configuration asks for.
pub fn sled_options(settings: &Settings) -> SledOptions {
    let st = &settings.storage;
    SledOptions {
        cache_capacity: st.cache_capacity as u64,
        inline_limit: st.large_body_threshold,
        ..SledOptions::default()
    }
}

/// Creates the data directory and proves it writable, so a bad path fails at start, not at the
/// first message.
fn prepare_data_dir(path: &std::path::Path) -> Result<(), ServerError> {
    let err = |source| ServerError::DataDir {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    let probe = path.join(".stampede-write-probe");
    std::fs::write(&probe, b"ok").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)?;
    Ok(())
}
