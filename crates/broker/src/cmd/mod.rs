//! One file per STOMP command family, each an `impl Session` block with its own tests. Every
//! method returns a [`Ticket`](stampede_store::Ticket) that resolves when the command's effects
//! are durable; the server waits on it before sending a RECEIPT.

mod ack;
mod send;
mod subscribe;
mod transaction;

#[cfg(test)]
pub(crate) mod test_support;
