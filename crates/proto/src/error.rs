//! Errors of the protocol layer. Every variant names the rule a peer broke, because its text goes
//! verbatim into the `message` header of the STOMP `ERROR` frame that precedes the close.

use thiserror::Error;

/// A frame that cannot be accepted. All variants are fatal for the connection (STOMP has no way to
/// resynchronise a byte stream after a framing error).
#[derive(Debug, Error)]
pub enum ProtoError {
    #[error("frame exceeds the size limit of {limit} bytes")]
    FrameTooLarge { limit: usize },
    #[error("frame has more than {limit} headers")]
    TooManyHeaders { limit: usize },
    #[error("header line exceeds the limit of {limit} bytes")]
    HeaderLineTooLong { limit: usize },
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    #[error("malformed header line {0:?}: expected name:value")]
    MalformedHeader(String),
    #[error("invalid escape sequence in header {0:?}")]
    InvalidEscape(String),
    #[error("frame is not valid UTF-8 in its command or headers")]
    InvalidUtf8,
    #[error("invalid content-length {0:?}")]
    InvalidContentLength(String),
    #[error("frame body is not followed by a NUL octet")]
    MissingNul,
    #[error("{command} frame is missing the required {header:?} header")]
    MissingHeader {
        command: &'static str,
        header: &'static str,
    },
    #[error("invalid {header:?} header {value:?}: expected {expected}")]
    InvalidHeader {
        header: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("supported protocol versions are 1.0,1.1,1.2; client accepts {0:?}")]
    UnsupportedVersion(String),
    #[error("{0} is a server frame; a client may not send it")]
    ServerCommand(&'static str),
}

impl ProtoError {
    /// True for the size limits (frame, header count, header line), which operators watch apart
    /// from malformed input.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            ProtoError::FrameTooLarge { .. }
                | ProtoError::TooManyHeaders { .. }
                | ProtoError::HeaderLineTooLong { .. }
        )
    }
}
