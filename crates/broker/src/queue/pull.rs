//! The pull front end (OCI Queue's GetMessages / DeleteMessage / UpdateMessage): messages handed
//! out with a receipt and hidden for a visibility timeout, on the same state machine as
//! subscriptions, so visibility, `max_deliveries` and the dead-letter queue work the same.

use std::sync::Arc;
use std::time::Duration;

use stampede_store::MessageRecord;

use super::state::{Holder, Inflight, PullWaiter, State};
use super::{NotInFlight, Queue, QueueStats};
use crate::effects::Effects;
use crate::ids::{ack_token, DeliveryTag};

/// A message handed to a pull consumer.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// Stable for the message's life, also across restarts (the OCI message id).
    pub seq: u64,
    pub record: Arc<MessageRecord>,
    pub delivery_count: u32,
    /// Names this delivery for deleting it or changing its visibility; stale once the message is
    /// delivered again.
    pub receipt: String,
    /// When it becomes visible again unless deleted, in ms since the epoch (`None`: never).
    pub visible_after_ms: Option<u64>,
}

/// What a pull that may wait found.
pub(crate) enum PullOrWait {
    Pulled(Vec<Pulled>),
    /// Nothing visible: the caller is registered as waiter `id` and is woken through `wake`
    /// when a message it may take arrives.
    Wait {
        id: u64,
        wake: Arc<tokio::sync::Notify>,
    },
}

impl Queue {
    /// Hands up to `max` visible messages (of `channel`, if given) to a pull consumer and hides
    /// them for `visibility` (the queue's own timeout when `None`).
    pub fn pull(
        self: &Arc<Self>,
        max: usize,
        visibility: Option<Duration>,
        channel: Option<&str>,
        fx: &mut Effects,
    ) -> Vec<Pulled> {
        let mut st = self.lock();
        self.pull_locked(&mut st, max, visibility, channel, fx)
    }

    /// [`Queue::pull`], or — when nothing is visible — registers a waiter under the same lock,
    /// so a message arriving in between cannot be missed. `woken`: the caller waited already and
    /// was woken.
    pub fn pull_or_wait(
        self: &Arc<Self>,
        max: usize,
        visibility: Option<Duration>,
        channel: Option<&str>,
        woken: bool,
        fx: &mut Effects,
    ) -> PullOrWait {
        let mut st = self.lock();
        let pulled = self.pull_locked(&mut st, max, visibility, channel, fx);
        if !pulled.is_empty() || st.dropped {
            return PullOrWait::Pulled(pulled);
        }
        if woken {
            // It lost the message it was woken for: whatever else is visible (another
            // channel's) may be some other waiter's.
            self.wake_pullers(&mut st);
        }
        let id = st.next_waiter;
        st.next_waiter += 1;
        let wake = Arc::new(tokio::sync::Notify::new());
        st.pull_waiters.push_back(PullWaiter {
            id,
            channel: channel.map(Arc::from),
            wake: wake.clone(),
        });
        PullOrWait::Wait { id, wake }
    }

    /// Waiter `id` gives up (its poll timed out or its client went away). A waiter woken and
    /// leaving without pulling passes its wake-up on, so the message it was woken for does not
    /// wait for the next arrival to find a taker.
    pub fn leave_pull(&self, id: u64) {
        let mut st = self.lock();
        match st.pull_waiters.iter().position(|w| w.id == id) {
            Some(at) => {
                st.pull_waiters.remove(at);
            }
            None => self.wake_pullers(&mut st),
        }
    }

    /// Wakes, oldest first, as many waiting pull consumers as there are messages they may take:
    /// each waiter woken claims one message, of its channel when it has one, so two waiters
    /// for one channel's single message do not use up the wake-up another waiter needs.
    pub(super) fn wake_pullers(&self, st: &mut State) {
        let total = st.ready_len();
        let mut claimed = 0;
        let mut by_channel: Vec<(Arc<str>, usize)> = Vec::new();
        let mut at = 0;
        while claimed < total && at < st.pull_waiters.len() {
            let takes = match &st.pull_waiters[at].channel {
                None => true,
                Some(c) if c.ends_with('*') => st.has_ready_in(c),
                Some(c) => {
                    let taken = by_channel
                        .iter()
                        .find(|(k, _)| k == c)
                        .map_or(0, |(_, n)| *n);
                    taken < st.ready_count_in(c)
                }
            };
            if !takes {
                at += 1;
                continue;
            }
            if let Some(w) = st.pull_waiters.remove(at) {
                if let Some(c) = w.channel.filter(|c| !c.ends_with('*')) {
                    match by_channel.iter_mut().find(|(k, _)| *k == c) {
                        Some((_, n)) => *n += 1,
                        None => by_channel.push((c, 1)),
                    }
                }
                w.wake.notify_one();
            }
            claimed += 1;
        }
    }

    fn pull_locked(
        self: &Arc<Self>,
        st: &mut State,
        max: usize,
        visibility: Option<Duration>,
        channel: Option<&str>,
        fx: &mut Effects,
    ) -> Vec<Pulled> {
        let now = self.env.clock.now_ms();
        let visibility = visibility.or(st.settings.visibility_timeout);
        let mut out = Vec::new();
        while out.len() < max {
            let Some((seq, mut entry)) = self.next_live(st, now, channel, fx) else {
                break;
            };
            entry.deliveries += 1;
            self.record_delivery(st, seq, &mut entry, fx);
            let deadline = visibility.map(|v| now + v.as_millis() as u64);
            out.push(Pulled {
                seq,
                record: entry.record.clone(),
                delivery_count: entry.deliveries,
                receipt: ack_token(self.number, seq, entry.deliveries),
                visible_after_ms: deadline,
            });
            st.insert_inflight(
                seq,
                Inflight {
                    entry,
                    holder: Holder::Pull,
                    deadline,
                },
            );
        }
        // A channel's pull that came back short may have its channel further back on disk (a
        // prefix names no one channel to scan for: its channels come in with the next reads).
        let starved: Vec<Arc<str>> = channel
            .filter(|c| out.len() < max && !c.ends_with('*'))
            .map(Arc::from)
            .into_iter()
            .collect();
        self.maybe_page_in(st, &starved, fx);
        self.schedule(st);
        out
    }

    /// Deletes a pulled message by its receipt.
    pub fn delete(self: &Arc<Self>, receipt: &str, fx: &mut Effects) -> Result<(), NotInFlight> {
        let mut st = self.lock();
        let seq = self.pulled_seq(&st, receipt)?;
        let inflight = st.take_inflight(seq).ok_or(NotInFlight)?;
        QueueStats::add(&self.stats.acked, 1);
        st.forget(&self.ctx(), seq, &inflight.entry, fx);
        self.dispatch(&mut st, fx);
        Ok(())
    }

    /// Hides a pulled message for `visibility` from now (0 makes it visible at the next tick).
    /// Returns when it becomes visible again.
    pub fn extend(
        self: &Arc<Self>,
        receipt: &str,
        visibility: Duration,
    ) -> Result<u64, NotInFlight> {
        let now = self.env.clock.now_ms();
        let mut st = self.lock();
        let seq = self.pulled_seq(&st, receipt)?;
        let mut inflight = st.take_inflight(seq).ok_or(NotInFlight)?;
        let at = now + visibility.as_millis() as u64;
        inflight.deadline = Some(at);
        st.insert_inflight(seq, inflight);
        self.schedule(&mut st);
        Ok(at)
    }

    fn pulled_seq(&self, st: &State, receipt: &str) -> Result<u64, NotInFlight> {
        let tag = DeliveryTag::parse(receipt).ok_or(NotInFlight)?;
        match st.inflight(tag.seq) {
            Some(i)
                if tag.queue == self.number
                    && i.holder == Holder::Pull
                    && tag.count.is_none_or(|c| c == i.entry.deliveries) =>
            {
                Ok(tag.seq)
            }
            _ => Err(NotInFlight),
        }
    }
}
