//! Where a connection's writer puts frames. A sink knows where frames end, because transports
//! differ there: a byte stream (TCP, TLS) packs as many frames as are ready into one write, while a
//! WebSocket must send each frame as a message of its own. The writer encodes frame heads into the
//! sink's buffer and hands bodies over as shared `Bytes`; a stream sink sends a large body straight
//! from the message record with a vectored write instead of copying it into its buffer.

use std::io::IoSlice;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Bodies at least this large are written from their own allocation rather than copied.
const SHARED_BODY: usize = 16 * 1024;

/// A frame-aware output; see the module docs.
pub trait FrameSink: Send {
    /// The buffer to encode the next frame's head (command, headers, blank line) into.
    fn head(&mut self) -> &mut BytesMut;

    /// Ends the frame begun in [`FrameSink::head`] with `body` and the NUL octet.
    fn end_frame(&mut self, body: &Bytes);

    /// A heart-beat: one EOL between frames.
    fn heartbeat(&mut self);

    /// Bytes waiting to be written.
    fn buffered(&self) -> usize;

    /// Writes everything buffered. `idle` says nothing else is waiting to be written, so the
    /// sink may give its buffer back (most connections are idle most of the time).
    fn flush(
        &mut self,
        idle: bool,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send;

    /// Closes the write side once everything is flushed.
    fn shutdown(&mut self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

/// A sink over a byte stream.
pub struct StreamSink<W> {
    io: W,
    /// Heads, small bodies and NULs since the last shared body.
    buf: BytesMut,
    /// Everything before `buf`, in order: frozen parts of the buffer and shared bodies.
    chain: Vec<Bytes>,
    chained: usize,
}

impl<W: AsyncWrite + Unpin + Send> StreamSink<W> {
    pub fn new(io: W) -> StreamSink<W> {
        StreamSink {
            io,
            buf: BytesMut::new(),
            chain: Vec::new(),
            chained: 0,
        }
    }

    /// The buffer's capacity (for tests of the idle release).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<W: AsyncWrite + Unpin + Send> FrameSink for StreamSink<W> {
    fn head(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn end_frame(&mut self, body: &Bytes) {
        if body.len() >= SHARED_BODY {
            let head = self.buf.split().freeze();
            self.chained += head.len() + body.len();
            self.chain.push(head);
            self.chain.push(body.clone());
        } else {
            self.buf.extend_from_slice(body);
        }
        self.buf.put_u8(0);
    }

    fn heartbeat(&mut self) {
        self.buf.put_u8(b'\n');
    }

    fn buffered(&self) -> usize {
        self.chained + self.buf.len()
    }

    async fn flush(&mut self, idle: bool) -> std::io::Result<()> {
        let result = if self.chain.is_empty() {
            self.io.write_all(&self.buf).await
        } else {
            if !self.buf.is_empty() {
                self.chain.push(self.buf.split().freeze());
            }
            write_all_vectored(&mut self.io, &mut self.chain).await
        };
        self.chain.clear();
        self.chained = 0;
        if idle {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
        result
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }
}

/// Writes every part of `parts` in order, as few syscalls as the stream takes.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    io: &mut W,
    parts: &mut [Bytes],
) -> std::io::Result<()> {
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[first..]
            .iter()
            .take(64)
            .map(|p| IoSlice::new(p))
            .collect();
        let mut n = io.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && first < parts.len() {
            let part = &mut parts[first];
            if n >= part.len() {
                n -= part.len();
                first += 1;
            } else {
                let _ = part.split_to(n);
                n = 0;
            }
        }
        while first < parts.len() && parts[first].is_empty() {
            first += 1;
        }
    }
    Ok(())
}
