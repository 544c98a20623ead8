//! End-to-end tests: each starts the real `stampede` binary through the harness and drives it over
//! TCP. One module per area.

mod ack;
mod admin_api;
mod admin_ops;
mod auth;
mod backpressure;
mod backup;
mod channels;
mod cli;
mod connect;
mod console;
mod disk;
mod durability;
mod errors;
mod flow;
mod health;
mod heartbeat;
mod idle;
mod lifecycle;
mod observability;
mod oci_rest;
mod passwd;
mod queue;
mod rabbitmq_management;
mod receipt;
mod routing;
mod semantics;
mod support_q;
mod tls;
mod topic;
mod transaction;
mod websocket;
