//! End-to-end tests: each starts the real `stampede` binary through the harness and drives it over
//! TCP. One module per area.

mod ack;
mod connect;
mod errors;
mod heartbeat;
mod lifecycle;
mod queue;
mod receipt;
mod support_q;
mod topic;
mod transaction;
