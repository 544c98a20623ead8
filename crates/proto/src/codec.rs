//! `tokio_util::codec` adapter around [`Decoder`] and [`encode`] (feature `codec`), for clients:
//! the test harness and tools that frame a socket with `Framed`. The broker reads and writes
//! through its own buffers and does not use it. The protocol version it escapes for is switched by
//! the owner once CONNECT is negotiated.

use bytes::BytesMut;
use thiserror::Error;

use crate::{encode, Decoder, Frame, Limits, ProtoError, Version};

/// Codec for `Framed` streams.
#[derive(Debug)]
pub struct StompCodec {
    decoder: Decoder,
    version: Version,
}

/// What a framed stream can fail with: the peer's bytes, or the socket under them.
#[derive(Debug, Error)]
pub enum CodecError {
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StompCodec {
    pub fn new(limits: Limits) -> Self {
        StompCodec {
            decoder: Decoder::new(limits),
            version: Version::V1_0,
        }
    }

    pub fn set_version(&mut self, version: Version) {
        self.version = version;
        self.decoder.set_version(version);
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.decoder.set_limits(limits);
    }

    pub fn version(&self) -> Version {
        self.version
    }
}

impl tokio_util::codec::Decoder for StompCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl tokio_util::codec::Encoder<&Frame> for StompCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        encode(frame, self.version, dst);
        Ok(())
    }
}
