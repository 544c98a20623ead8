//! `tokio_util::codec` adapter around [`Decoder`] and [`encode`]; the protocol version it escapes
//! for is switched by the owner once CONNECT is negotiated.

use bytes::BytesMut;

use crate::{encode, Decoder, Frame, Limits, ProtoError, Version};

/// Codec for `Framed` streams. The server writes through its own coalescing buffer; clients (the
/// test harness, the load tool) use this for both directions.
#[derive(Debug)]
pub struct StompCodec {
    decoder: Decoder,
    version: Version,
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
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        self.decoder.decode(src)
    }
}

impl tokio_util::codec::Encoder<&Frame> for StompCodec {
    type Error = ProtoError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        encode(frame, self.version, dst);
        Ok(())
    }
}
