//! Publishing keyspace notifications (`notify-keyspace-events`).
//!
//! A command's body records the events of what it did, as Redis's
//! command does (`Ctx::event`), and lookups record expired, new and
//! missed keys (classes in `storage::events`); dispatch publishes them
//! once the command ran. Each is
//! published as Redis does: `__keyspace@<db>__:<key>` carrying the
//! event name (flag K) and `__keyevent@<db>__:<event>` carrying the key
//! (flag E), to subscribers on every shard.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::shard::Shard;
use crate::storage::KeyEvent as Event;
use crate::storage::events::{EXPIRED, KEY_MISS, KEYEVENT, KEYSPACE, NEW};

/// An event that happens while a command looks its key up.
fn looked_up(e: &Event) -> bool {
    e.class & (EXPIRED | NEW | KEY_MISS) != 0
}

/// The events of a split command (each key handled by its owner), as
/// Redis's loop over the keys sends them: per key in command order. An
/// event of a lookup goes with the key's first position, the command's
/// own events take one position each (a key may be named twice, as in
/// MSET k 1 k 2); events on keys the command does not name (expired
/// meanwhile) come first.
pub fn per_key<'a>(keys: impl Iterator<Item = &'a [u8]>, recorded: Vec<Event>) -> Vec<Event> {
    // Each key's positions (1-based; 0 ranks first).
    let mut at: std::collections::HashMap<&[u8], (usize, std::collections::VecDeque<usize>)> =
        std::collections::HashMap::new();
    for (i, key) in keys.enumerate() {
        at.entry(key).or_insert_with(|| (i + 1, Default::default())).1.push_back(i + 1);
    }
    let mut ranked: Vec<((usize, bool), Event)> = Vec::with_capacity(recorded.len());
    for e in recorded {
        let own = !looked_up(&e);
        let rank = match at.get_mut(&e.key[..]) {
            None => 0,
            Some((first, _)) if !own => *first,
            Some((first, left)) => left.pop_front().unwrap_or(*first),
        };
        ranked.push(((rank, own), e));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, e)| e).collect()
}

impl Shard {
    /// The enabled classes, or 0 when notifications are off (no K nor E).
    pub fn notify_flags(&self) -> u32 {
        let flags = self.server.hot.notify_flags.load(Ordering::Relaxed) as u32;
        if flags & (KEYSPACE | KEYEVENT) == 0 { 0 } else { flags }
    }

    /// Before a command or an expiry round: which events to record.
    pub fn arm_notifications(&self) -> u32 {
        let flags = self.notify_flags();
        self.ks.borrow_mut().set_notify(flags);
        flags
    }

    /// Publishes the events recorded here (by the command that ran, or by
    /// expiry) to the subscribers of every shard.
    pub fn publish_events(self: &std::rc::Rc<Self>) {
        if self.notify_flags() == 0 {
            return;
        }
        let events = self.ks.borrow_mut().take_events();
        self.send_events(events);
    }

    /// Publishes `events`, in this order, to the subscribers of every
    /// shard.
    pub fn send_events(self: &std::rc::Rc<Self>, events: Vec<Event>) {
        let flags = self.notify_flags();
        if events.is_empty() {
            return;
        }
        let mut messages = Vec::with_capacity(events.len() * 2);
        for e in events.iter().filter(|e| flags & e.class != 0) {
            if flags & KEYSPACE != 0 {
                let mut channel = format!("__keyspace@{}__:", e.db).into_bytes();
                channel.extend_from_slice(&e.key);
                messages.push((Bytes::from(channel), Bytes::from_static(e.name.as_bytes())));
            }
            if flags & KEYEVENT != 0 {
                let channel = format!("__keyevent@{}__:{}", e.db, e.name);
                messages.push((Bytes::from(channel), Bytes::copy_from_slice(&e.key)));
            }
        }
        for (s, count) in self.server.subscriptions.iter().enumerate() {
            if count.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let batch = messages.clone();
            self.post_with(s, move |sh| {
                for (c, m) in &batch {
                    sh.deliver(false, c, m);
                }
            });
        }
    }
}
