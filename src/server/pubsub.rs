//! Pub/Sub delivery.
//!
//! A subscription lives on the shard of the subscribing connection: each
//! shard keeps which of its clients listen to which channels, patterns and
//! shard channels, and `Shared` counts the subscriptions per shard. A
//! publisher visits only the shards whose count is not zero; each encodes
//! the message for its own subscribers (RESP2 array or RESP3 push) into the
//! client's outbox and wakes the connection, which writes it out. A client
//! whose outbox passes `client-output-buffer-limit pubsub` is disconnected
//! instead of growing without bound.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use indexmap::IndexSet;

use super::client::ClientMeta;
use super::shard::Shard;
use crate::config::Hot;
use crate::pattern::glob_match;
use crate::protocol::Reply;
use crate::protocol::reply::encode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    /// SSUBSCRIBE / SPUBLISH.
    Shard,
}

impl Kind {
    /// The verbs of the confirmations and messages of this kind.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            Kind::Channel => ("subscribe", "unsubscribe"),
            Kind::Pattern => ("psubscribe", "punsubscribe"),
            Kind::Shard => ("ssubscribe", "sunsubscribe"),
        }
    }
}

/// One client's subscriptions (owned by its connection task).
#[derive(Default, Debug)]
pub struct Subscriptions {
    pub channels: IndexSet<Bytes>,
    pub patterns: IndexSet<Bytes>,
    pub shard: IndexSet<Bytes>,
}

impl Subscriptions {
    pub fn of(&mut self, kind: Kind) -> &mut IndexSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count a confirmation reports: channels and patterns together,
    /// shard channels on their own (as Redis counts them).
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.channels.len() + self.patterns.len(),
        }
    }

    /// In RESP2 a client with any subscription is in subscribe mode.
    pub fn any(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shard.is_empty())
    }
}

/// A shard's subscribers: name -> ids of local clients.
#[derive(Default)]
pub struct Registry {
    channels: HashMap<Bytes, Vec<u64>>,
    patterns: HashMap<Bytes, Vec<u64>>,
    shard: HashMap<Bytes, Vec<u64>>,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, Vec<u64>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// Names with at least one subscriber here.
    pub fn names(&self, kind: Kind) -> impl Iterator<Item = &Bytes> {
        match kind {
            Kind::Channel => self.channels.keys(),
            Kind::Pattern => self.patterns.keys(),
            Kind::Shard => self.shard.keys(),
        }
    }

    pub fn subscribers(&self, kind: Kind, name: &[u8]) -> usize {
        let map = match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        };
        map.get(name).map_or(0, Vec::len)
    }
}

impl Shard {
    pub fn subscribe(&self, kind: Kind, name: &Bytes, id: u64) {
        self.pubsub.borrow_mut().map(kind).entry(name.clone()).or_default().push(id);
        self.server.subscriptions[self.id].fetch_add(1, Ordering::Relaxed);
    }

    pub fn unsubscribe(&self, kind: Kind, name: &[u8], id: u64) {
        let mut reg = self.pubsub.borrow_mut();
        let map = reg.map(kind);
        if let Some(ids) = map.get_mut(name) {
            ids.retain(|&x| x != id);
            if ids.is_empty() {
                map.remove(name);
            }
            self.server.subscriptions[self.id].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Delivers a PUBLISH (to channel and pattern subscribers) or an
    /// SPUBLISH (to shard-channel subscribers) to this shard's clients.
    /// Returns how many received it.
    pub fn deliver(&self, sharded: bool, channel: &Bytes, message: &Bytes) -> usize {
        let reg = self.pubsub.borrow();
        let clients = self.clients.borrow();
        let mut received = 0;
        let mut send = |id: &u64, push: &Reply| {
            if let Some(meta) = clients.get(id) {
                self.push_to(meta, push);
                received += 1;
            }
        };
        if sharded {
            if let Some(ids) = reg.shard.get(channel) {
                let push = message_push("smessage", None, channel, message);
                ids.iter().for_each(|id| send(id, &push));
            }
            return received;
        }
        if let Some(ids) = reg.channels.get(channel) {
            let push = message_push("message", None, channel, message);
            ids.iter().for_each(|id| send(id, &push));
        }
        for (pattern, ids) in &reg.patterns {
            if glob_match(pattern, channel, false) {
                let push = message_push("pmessage", Some(pattern), channel, message);
                ids.iter().for_each(|id| send(id, &push));
            }
        }
        received
    }

    /// Queues `push` for a client of this shard and wakes its connection;
    /// disconnects the client past the pubsub output buffer limits.
    fn push_to(&self, meta: &ClientMeta, push: &Reply) {
        let hot = &self.server.hot;
        let mut outbox = meta.outbox.borrow_mut();
        encode(push, meta.proto.get(), &mut outbox);
        let (hard, soft, secs) =
            (Hot::get(&hot.pubsub_hard_limit), Hot::get(&hot.pubsub_soft_limit), Hot::get(&hot.pubsub_soft_secs));
        let pending = outbox.len() as u64;
        let now = self.now();
        let over_soft = soft > 0 && pending > soft;
        let since = match (over_soft, meta.soft_limit_since.get()) {
            (false, _) => None,
            (true, None) => Some(now),
            (true, Some(t)) => Some(t),
        };
        meta.soft_limit_since.set(since);
        let soft_expired = since.is_some_and(|t| now - t >= secs as i64 * 1000);
        if (hard > 0 && pending > hard) || soft_expired {
            tracing::warn!(id = meta.id, "Client closed for overcoming of output buffer limits.");
            outbox.clear();
            meta.kill();
            return;
        }
        drop(outbox);
        meta.wake();
    }
}

fn message_push(kind: &'static str, pattern: Option<&Bytes>, channel: &Bytes, message: &Bytes) -> Reply {
    let mut items = vec![Reply::text(kind)];
    if let Some(p) = pattern {
        items.push(Reply::Bulk(p.clone()));
    }
    items.push(Reply::Bulk(channel.clone()));
    items.push(Reply::Bulk(message.clone()));
    Reply::Push(items)
}
