//! STOMP wire protocol for Stampede: frames, the incremental decoder with its limits, the encoder,
//! per-version header escaping and the typed client commands the broker consumes.
//!
//! This crate owns bytes ⇄ frames and nothing else: it opens no sockets, spawns no tasks and, without
//! the `codec` feature (a `tokio_util` adapter for clients), depends on no runtime. The server feeds
//! [`Decoder`] from its sockets and turns frames into [`Request`]s; the broker never sees a frame.

mod client;
#[cfg(feature = "codec")]
mod codec;
mod decode;
mod encode;
mod error;
mod escape;
mod frame;

pub use client::{
    AckCommand, AckMode, ClientCommand, Connect, Dialect, DurableName, QueueFlags, Request,
    Schedule, SendCommand, SubscribeCommand, UnsubscribeCommand,
};
#[cfg(feature = "codec")]
pub use codec::{CodecError, StompCodec};
pub use decode::{Decoder, Limits};
pub use encode::{encode, encode_head};
pub use error::ProtoError;
pub use frame::{Command, Frame, Headers, Version};
