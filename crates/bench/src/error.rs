//! The tool's one error type. Every variant says which side broke the run (our configuration, the
//! network, or the broker) because a benchmark that fails must say why in one line.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot resolve {url:?}: {reason}")]
    Resolve { url: String, reason: String },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Proto(#[from] stampede_proto::ProtoError),
    #[error("broker sent ERROR: {0}")]
    Broker(String),
    #[error("broker closed the connection")]
    Closed,
    #[error("unexpected {got} frame while waiting for {wanted}")]
    Unexpected { got: String, wanted: &'static str },
    #[error("no answer within {secs:.1} s while waiting for {what}")]
    Timeout { what: &'static str, secs: f64 },
    #[error("HTTP: {0}")]
    Http(String),
    #[error("a {role} task failed: {reason}")]
    Task { role: &'static str, reason: String },
}
