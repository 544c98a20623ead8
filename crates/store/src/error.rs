//! Errors of the storage layer. They are `Clone` because one failed round completes many commits'
//! tickets with the same error; i/o errors are shared, not stringified, so callers can still tell
//! a full disk from a broken one.

use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Error, Clone)]
pub enum StoreError {
    #[error("storage is closed")]
    Closed,
    #[error("storage i/o failed ({context}): {source}")]
    Io {
        /// What the store was doing.
        context: &'static str,
        source: Arc<std::io::Error>,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "{0} is in use by another process (is another broker running on this data directory?)"
    )]
    Locked(String),
    #[error("storage failed earlier and accepts no writes until restarted: {0}")]
    Failed(Arc<StoreError>),
}

impl StoreError {
    /// An i/o error, keeping its kind.
    pub fn io(context: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            context,
            source: Arc::new(source),
        }
    }

    /// The `io::ErrorKind` behind this error, if an i/o error caused it (ENOSPC shows as
    /// `StorageFull`).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            StoreError::Io { source, .. } => Some(source.kind()),
            StoreError::Failed(cause) => cause.io_kind(),
            _ => None,
        }
    }
}
