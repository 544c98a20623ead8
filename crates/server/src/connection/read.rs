//! Reading frames off a connection. The read buffer follows the traffic: an idle connection waits
//! with a small array on its stack and holds no buffer; a busy one reserves 8 KiB at a time, and
//! the buffer grows (by doubling) to what the traffic needs, so one read takes as much as the socket
//! has. Sizing the buffer to each large frame instead was measured slower (docs/benchmarks.md).

use std::time::Duration;

use bytes::BytesMut;
use stampede_proto::{Decoder, Frame};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::ConnError;

/// Bytes read per syscall while frames of unknown length are arriving.
const READ_CHUNK: usize = 8 * 1024;

/// What an idle connection waits with: a small array inside its task instead of a heap buffer.
/// Idle connections are most of them, and a read buffer each would be most of their memory.
const IDLE_READ: usize = 256;

/// Why reading stopped short of a frame.
#[derive(Debug)]
pub enum ReadError {
    /// The peer broke the protocol, or went silent past its heart-beat.
    Conn(ConnError),
    /// The socket failed; nobody is there to tell.
    Io(std::io::Error),
}

impl From<stampede_proto::ProtoError> for ReadError {
    fn from(e: stampede_proto::ProtoError) -> Self {
        ReadError::Conn(ConnError::Proto(e))
    }
}

/// Reads until a whole frame is decoded. Any bytes received (heart-beat EOLs included) reset the
/// silence timer. `Ok(None)` is a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    silence: Option<Duration>,
) -> Result<Option<Frame>, ReadError> {
    loop {
        if let Some(frame) = decoder.decode(buf)? {
            return Ok(Some(frame));
        }
        let n = if buf.is_empty() {
            // Between frames (the decoder also consumes EOLs after a frame and heart-beats):
            // frames keep their slices of the allocation, and ours is not needed until bytes come.
            if buf.capacity() > 0 {
                *buf = BytesMut::new();
            }
            let mut first = [0u8; IDLE_READ];
            let n = with_silence(silence, rd.read(&mut first)).await?;
            buf.reserve(if n == IDLE_READ { READ_CHUNK } else { n });
            buf.extend_from_slice(&first[..n]);
            n
        } else {
            buf.reserve(READ_CHUNK);
            with_silence(silence, rd.read_buf(buf)).await?
        };
        if n == 0 {
            return Ok(None);
        }
    }
}

/// A transport refused a message over its own size limit (a WebSocket message): answered like a
/// frame over `protocol.max_frame_size`.
#[derive(Debug)]
pub struct TooLarge {
    pub limit: usize,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a message over {} bytes", self.limit)
    }
}

impl std::error::Error for TooLarge {}

/// A read that fails as [`ConnError::Silent`] when nothing arrives within `silence`.
async fn with_silence(
    silence: Option<Duration>,
    read: impl std::future::Future<Output = std::io::Result<usize>>,
) -> Result<usize, ReadError> {
    match silence {
        Some(limit) => tokio::time::timeout(limit, read)
            .await
            .map_err(|_| ReadError::Conn(ConnError::Silent))?,
        None => read.await,
    }
    .map_err(
        |e| match e.get_ref().and_then(|i| i.downcast_ref::<TooLarge>()) {
            Some(t) => ReadError::Conn(ConnError::Proto(
                stampede_proto::ProtoError::FrameTooLarge { limit: t.limit },
            )),
            None => ReadError::Io(e),
        },
    )
}
