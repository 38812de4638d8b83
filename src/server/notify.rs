//! Keyspace notifications (`notify-keyspace-events`).
//!
//! A command's body records the events of what it did, as Redis's
//! command does (`Ctx::event`), and lookups record expired, new and
//! missed keys; dispatch publishes them once the command ran. Each is
//! published as Redis does: `__keyspace@<db>__:<key>` carrying the
//! event name (flag K) and `__keyevent@<db>__:<event>` carrying the key
//! (flag E), to subscribers on every shard.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::shard::Shard;
use crate::storage::KeyEvent as Event;

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 12;
pub const NEW: u32 = 1 << 13;
/// `A`: every class but key-miss and new.
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The classes `A` covers, in Redis's order, then the others.
const FLAG_CHARS: &[(char, u32)] = &[
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('d', MODULE),
    ('m', KEY_MISS),
    ('n', NEW),
];

/// Parses a `notify-keyspace-events` value; None on an unknown flag.
pub fn parse_flags(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => ALL,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            c => FLAG_CHARS.iter().find(|(f, _)| *f == c)?.1,
        };
    }
    Some(flags)
}

/// The canonical text of `flags`, as CONFIG GET shows it: `A` or the
/// classes it covers, then K, E, m, n.
pub fn flags_to_string(flags: u32) -> String {
    let mut s = String::new();
    let class = |f: u32| FLAG_CHARS.iter().filter(move |(_, x)| x & f != 0).map(|(c, _)| *c);
    if flags & ALL == ALL {
        s.push('A');
    } else {
        s.extend(class(flags & ALL));
    }
    for (c, f) in [('K', KEYSPACE), ('E', KEYEVENT)] {
        if flags & f != 0 {
            s.push(c);
        }
    }
    s.extend(class(flags & (KEY_MISS | NEW)));
    s
}

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
            if s == self.id {
                messages.iter().for_each(|(c, m)| {
                    self.deliver(false, c, m);
                });
            } else {
                let (me, batch) = (self.clone(), messages.clone());
                super::poller::spawn(async move {
                    me.run_on(s, move |sh| {
                        for (c, m) in &batch {
                            sh.deliver(false, c, m);
                        }
                    })
                    .await;
                })
                .detach();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_like_redis() {
        assert_eq!(parse_flags("KEA").map(flags_to_string).as_deref(), Some("AKE"));
        assert_eq!(parse_flags("Elg").map(flags_to_string).as_deref(), Some("glE"));
        assert_eq!(parse_flags("").map(flags_to_string).as_deref(), Some(""));
        assert_eq!(parse_flags("Kq"), None);
        assert_eq!(parse_flags("nmAKE").map(flags_to_string).as_deref(), Some("AKEmn"));
    }
}
