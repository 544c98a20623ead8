//! STOMP wire protocol for Stampede: frames, the incremental decoder with its limits, the encoder,
//! per-version header escaping and the typed client commands the broker consumes.
//!
//! This crate owns bytes ⇄ frames and nothing else: it opens no sockets and spawns no tasks. The
//! server wraps [`StompCodec`] around a socket; the broker only ever sees [`ClientCommand`]s.

mod client;
mod codec;
mod decode;
mod encode;
mod error;
mod escape;
mod frame;

pub use client::{AckMode, AckRequest, ClientCommand, Connect, Request, SendFrame, Subscribe};
pub use codec::StompCodec;
pub use decode::{Decoder, Limits};
pub use encode::{encode, encode_head};
pub use error::ProtoError;
pub use frame::{Command, Frame, Headers, Version};
