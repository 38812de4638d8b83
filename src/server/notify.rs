//! Keyspace notifications (`notify-keyspace-events`).
//!
//! A write command that changed keys yields events: the command's own
//! (from `EVENTS`, by key position), then the ones its body recorded on
//! the way (a collection emptied and deleted), plus keys expired meanwhile.
//! Each is published as Redis does: `__keyspace@<db>__:<key>` carrying the
//! event name (flag K) and `__keyevent@<db>__:<event>` carrying the key
//! (flag E), to subscribers on every shard.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::shard::Shard;
use crate::commands::{Args, Spec};
use crate::protocol::Reply;
use crate::storage::{Key, KeyEvent as Event};

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

/// When a command's event fires.
#[derive(Clone, Copy, PartialEq, Eq)]
enum When {
    Always,
    /// Only if the reply reports a change (not 0, nil or an empty array).
    Changed,
}

/// Command -> class, event per key position (the last repeats; "" for
/// none), and when.
const EVENTS: &[(&str, u32, &[&str], When)] = &[
    ("set", STRING, &["set"], When::Changed),
    ("setnx", STRING, &["set"], When::Changed),
    ("setex", STRING, &["set"], When::Always),
    ("psetex", STRING, &["set"], When::Always),
    ("getset", STRING, &["set"], When::Always),
    ("mset", STRING, &["set"], When::Always),
    ("msetnx", STRING, &["set"], When::Changed),
    ("append", STRING, &["append"], When::Always),
    ("setrange", STRING, &["setrange"], When::Always),
    ("incr", STRING, &["incrby"], When::Always),
    ("decr", STRING, &["decrby"], When::Always),
    ("incrby", STRING, &["incrby"], When::Always),
    ("decrby", STRING, &["decrby"], When::Always),
    ("incrbyfloat", STRING, &["incrbyfloat"], When::Always),
    ("setbit", STRING, &["setbit"], When::Always),
    ("bitfield", STRING, &["setbit"], When::Always),
    ("bitop", STRING, &["set", ""], When::Always),
    ("pfadd", STRING, &["pfadd"], When::Changed),
    ("pfmerge", STRING, &["pfadd", ""], When::Always),
    ("getdel", GENERIC, &["del"], When::Changed),
    ("expire", GENERIC, &["expire"], When::Changed),
    ("pexpire", GENERIC, &["expire"], When::Changed),
    ("expireat", GENERIC, &["expire"], When::Changed),
    ("pexpireat", GENERIC, &["expire"], When::Changed),
    ("persist", GENERIC, &["persist"], When::Changed),
    ("rename", GENERIC, &["rename_from", "rename_to"], When::Always),
    ("renamenx", GENERIC, &["rename_from", "rename_to"], When::Changed),
    ("lpush", LIST, &["lpush"], When::Changed),
    ("lpushx", LIST, &["lpush"], When::Changed),
    ("rpush", LIST, &["rpush"], When::Changed),
    ("rpushx", LIST, &["rpush"], When::Changed),
    ("lpop", LIST, &["lpop"], When::Changed),
    ("rpop", LIST, &["rpop"], When::Changed),
    ("linsert", LIST, &["linsert"], When::Changed),
    ("lset", LIST, &["lset"], When::Always),
    ("lrem", LIST, &["lrem"], When::Changed),
    ("ltrim", LIST, &["ltrim"], When::Always),
    ("hset", HASH, &["hset"], When::Always),
    ("hmset", HASH, &["hset"], When::Always),
    ("hsetnx", HASH, &["hset"], When::Changed),
    ("hdel", HASH, &["hdel"], When::Changed),
    ("hincrby", HASH, &["hincrby"], When::Always),
    ("hincrbyfloat", HASH, &["hincrbyfloat"], When::Always),
    ("sadd", SET, &["sadd"], When::Changed),
    ("srem", SET, &["srem"], When::Changed),
    ("spop", SET, &["spop"], When::Changed),
    ("smove", SET, &["srem", "sadd"], When::Changed),
    ("sinterstore", SET, &["sinterstore", ""], When::Changed),
    ("sunionstore", SET, &["sunionstore", ""], When::Changed),
    ("sdiffstore", SET, &["sdiffstore", ""], When::Changed),
    ("zrem", ZSET, &["zrem"], When::Changed),
    ("zremrangebyscore", ZSET, &["zremrangebyscore"], When::Changed),
    ("zremrangebyrank", ZSET, &["zremrangebyrank"], When::Changed),
    ("zremrangebylex", ZSET, &["zremrangebylex"], When::Changed),
    ("zpopmin", ZSET, &["zpopmin"], When::Changed),
    ("zpopmax", ZSET, &["zpopmax"], When::Changed),
    ("zunionstore", ZSET, &["zunionstore", ""], When::Changed),
    ("zinterstore", ZSET, &["zinterstore", ""], When::Changed),
    ("zdiffstore", ZSET, &["zdiffstore", ""], When::Changed),
    ("zrangestore", ZSET, &["zrangestore", ""], When::Changed),
];

/// An event that happens while a command looks its key up.
fn looked_up(e: &Event) -> bool {
    e.class & (EXPIRED | NEW | KEY_MISS) != 0
}

/// The events of a split command (each key handled by its owner): per
/// key in command order, what its owner recorded, then the command's own
/// event on it, as Redis's loop over the keys sends them. Events on keys
/// the command does not name (expired meanwhile) come first.
pub fn per_key<'a>(
    keys: impl Iterator<Item = &'a [u8]>,
    mut recorded: Vec<Event>,
    own: Vec<Event>,
    command: &Spec,
) -> Vec<Event> {
    if !reports_misses(command) {
        recorded.retain(|e| e.class != KEY_MISS);
    }
    // Each key's positions (1-based; 0 ranks first): recorded events go
    // with its first, the command's own events with one position each (a
    // key may be named twice, as in MSET k 1 k 2).
    let mut at: std::collections::HashMap<&[u8], (usize, std::collections::VecDeque<usize>)> =
        std::collections::HashMap::new();
    for (i, key) in keys.enumerate() {
        at.entry(key).or_insert_with(|| (i + 1, Default::default())).1.push_back(i + 1);
    }
    let mut ranked: Vec<((usize, bool), Event)> = Vec::with_capacity(recorded.len() + own.len());
    for e in recorded {
        ranked.push(((at.get(&e.key[..]).map_or(0, |(first, _)| *first), false), e));
    }
    for e in own {
        let rank = at.get_mut(&e.key[..]).map_or(0, |(first, left)| left.pop_front().unwrap_or(*first));
        ranked.push(((rank, true), e));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, e)| e).collect()
}

/// Whether a command reports `keymiss`: reads do, and the writes that
/// read a key first (GETDEL, SET ... GET) or read their sources (the
/// storing commands); the others look keys up as writes.
fn reports_misses(spec: &Spec) -> bool {
    !spec.has(crate::commands::WRITE)
        || spec.stores()
        || matches!(spec.name, "getdel" | "getex" | "getset" | "bitfield" | "set")
}

fn changed(reply: &Reply) -> bool {
    !matches!(reply, Reply::Int(0) | Reply::Null | Reply::NullArray | Reply::Nothing)
        && !matches!(reply, Reply::Array(items) if items.is_empty())
}

/// Pops whose event names depend on their arguments, and whose key is
/// the one the reply names (the first of several that had data).
fn pop_events(spec: &Spec, args: Args, reply: &Reply, db: usize, flags: u32) -> Option<Vec<Event>> {
    let end = |i: usize| args.get(i).eq_ignore_ascii_case(b"LEFT");
    let (class, names): (u32, &[&'static str]) = match spec.name {
        "lmove" | "blmove" => (LIST, &[if end(3) { "lpop" } else { "rpop" }, if end(4) { "lpush" } else { "rpush" }]),
        "rpoplpush" | "brpoplpush" => (LIST, &["rpop", "lpush"]),
        "blpop" => (LIST, &["lpop"]),
        "brpop" => (LIST, &["rpop"]),
        "bzpopmin" => (ZSET, &["zpopmin"]),
        "bzpopmax" => (ZSET, &["zpopmax"]),
        "lmpop" | "blmpop" | "zmpop" | "bzmpop" => {
            let at = if spec.name.starts_with('b') { 2 } else { 1 };
            let word = crate::commands::parse_mpop(args, at).ok()?.1;
            let name = match args.keyword(word).as_str() {
                "LEFT" => "lpop",
                "RIGHT" => "rpop",
                "MIN" => "zpopmin",
                _ => "zpopmax",
            };
            (if spec.name.contains('z') { ZSET } else { LIST }, &[name])
        }
        _ => return None,
    };
    if flags & class == 0 || !changed(reply) {
        return Some(Vec::new());
    }
    let key = |k: &[u8]| Key::from(k);
    Some(match (spec.name, reply) {
        // Redis reports the push onto the destination first.
        ("lmove" | "blmove" | "rpoplpush" | "brpoplpush", _) => {
            vec![
                Event { class, name: names[1], db, key: key(args.get(2)) },
                Event { class, name: names[0], db, key: key(args.get(1)) },
            ]
        }
        (_, Reply::Array(items)) => match items.first() {
            Some(Reply::Bulk(k)) => vec![Event { class, name: names[0], db, key: key(k) }],
            _ => Vec::new(),
        },
        _ => Vec::new(),
    })
}

/// The events of a command that ran with `reply`, for the classes in `flags`.
pub fn command_events(spec: &Spec, args: Args, reply: &Reply, db: usize, flags: u32) -> Vec<Event> {
    if let Some(events) = pop_events(spec, args, reply, db, flags) {
        return events;
    }
    let Some(&(_, class, names, when)) = EVENTS.iter().find(|(n, ..)| *n == spec.name) else {
        return Vec::new();
    };
    if flags & class == 0 || (when == When::Changed && !changed(reply)) {
        return Vec::new();
    }
    let mut events: Vec<Event> = spec
        .keys
        .positions(args)
        .enumerate()
        .filter_map(|(ordinal, i)| {
            let name = names[ordinal.min(names.len() - 1)];
            (!name.is_empty()).then(|| Event { class, name, db, key: Key::from(args.get(i)) })
        })
        .collect();
    // A write that also sets a TTL reports it too.
    let ttl = match spec.name {
        "setex" | "psetex" => true,
        "set" => (3..args.len()).any(|i| ["EX", "PX", "EXAT", "PXAT"].iter().any(|o| args.is(i, o))),
        _ => false,
    };
    if ttl && flags & GENERIC != 0 {
        events.push(Event { class: GENERIC, name: "expire", db, key: Key::from(args.get(1)) });
    }
    events
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

    /// Publishes `first` (the events of `command`, if one ran) with the
    /// recorded ones to the subscribers of every shard: expired and new keys, then
    /// `first`, then what the command's steps noted.
    pub fn publish_events(self: &std::rc::Rc<Self>, first: Vec<Event>, command: Option<&Spec>) {
        let flags = self.notify_flags();
        if flags == 0 {
            return;
        }
        let mut events = first;
        events.extend(self.ks.borrow_mut().take_events());
        if command.is_some_and(|c| !reports_misses(c)) {
            events.retain(|e| e.class != KEY_MISS);
        }
        // Keys expire, miss and get created while a command looks them
        // up, so Redis reports those before the command's own events.
        events.sort_by_key(|e| !looked_up(e));
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
