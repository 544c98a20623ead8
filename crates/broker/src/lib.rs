//! Stampede's routing core: every destination, queue, topic, binding and subscription, and the
//! one protocol-neutral door into them, [`Broker`]. It has no sockets and speaks no protocol: the
//! STOMP session, the admin API and the OCI REST API are front ends that call the same
//! operations — publish, commit a transaction, subscribe and settle, pull/delete/extend, and the
//! admin reads and moves. Each applies its own effects and returns a [`Ticket`] that resolves
//! when they are durable; queues, effects and the store ops behind them stay private to this
//! crate, so no caller can half-apply a transition.
//!
//! Flow: front end → [`Broker`] (registry, flow control, two-phase admission) → queue (state
//! machine, dispatch, under its own lock) → effects applied: one store commit, then publication →
//! deliveries through each subscriber's [`Outbox`].

mod admin;
mod apply;
mod broker;
pub mod channel;
mod clock;
mod delivery;
mod destination;
mod effects;
mod error;
mod glob;
mod ids;
mod meta;
mod policy;
mod publish;
mod pull;
mod queue;
mod recovery;
mod registry;
mod settle;
mod subscribe;
mod temp;
mod timer;
mod topic;
mod view;
mod wildcard;
pub use wildcard::is_pattern;

pub use admin::{Redrive, Redriven};
pub use broker::{Broker, BrokerConfig};
pub use clock::{Clock, ManualClock, SystemClock};
pub use delivery::{AckMode, AutoAck, Delivery, Outbox};
pub use destination::{Destination, MAX_NAME};
pub use effects::DeathReason;
pub use error::BrokerError;
pub use glob::glob_match;
pub use ids::{ack_token, message_id, write_ids, DeliveryTag};
pub use policy::{QueuePolicy, QueueSettings, SettingsOverride};
pub use publish::{NewMessage, Transaction};
pub use queue::{ConsumerId, Pulled, Window};
pub use recovery::Recovery;
pub use settle::Outcome;
pub use stampede_store::{MessageRecord, Ticket};
pub use subscribe::{Lifecycle, Principal, SubscribeSpec, Subscription, TopicQueue};
pub use temp::{TEMP_PREFIX, TEMP_TOPIC_PREFIX};
pub use view::{
    BoundQueue, BrokerStats, ChannelView, ConsumerView, MessageView, QueueCounters, QueueView,
    TopicView,
};

#[cfg(test)]
mod tests;
