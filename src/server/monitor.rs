//! MONITOR: every command any client runs, on every shard, as one line
//! in Redis's format (`+1339518083.107412 [0 127.0.0.1:60866] "get" "k"`)
//! to the clients that asked. Monitors live on their own shards; a
//! command is shown to each shard that has some.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::client::Client;
use super::client::Spec;
use super::shard::Shard;
use crate::command::{self, Args};

/// Whether any client anywhere monitors (the cost of MONITOR when none).
pub fn active(client: &Client) -> bool {
    client.shard.server.monitoring.load(Ordering::Relaxed) > 0
}

/// One argument as `sdscatrepr` quotes it.
fn repr(out: &mut String, arg: &[u8]) {
    out.push('"');
    for &b in arg {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            7 => out.push_str("\\a"),
            8 => out.push_str("\\b"),
            b if b.is_ascii_graphic() || b == b' ' => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
}

/// Shows a command run by `client` to every monitor; administrative ones
/// are not shown, and AUTH / HELLO ... AUTH arguments are redacted.
pub async fn feed(client: &Client, spec: &Spec, args: Args<'_>, from_script: bool) {
    // (A container's subcommand may be administrative: CLIENT LIST.)
    let admin = spec.has(command::ADMIN)
        || (spec.has(command::CONTAINER)
            && command::meta::get(&spec.full_name(args)).is_some_and(|m| m.has_flag("admin")));
    if admin {
        return;
    }
    let now = crate::server::shared::now_us();
    let mut line = format!("+{}.{:06} [{} ", now / 1_000_000, now % 1_000_000, client.db());
    line.push_str(if from_script { "lua" } else { &client.meta.addr });
    line.push(']');
    for (i, arg) in args.iter().enumerate() {
        line.push(' ');
        if super::stats::secret(args, i) {
            line.push_str("\"(redacted)\"");
        } else {
            repr(&mut line, arg);
        }
    }
    line.push_str("\r\n");
    let line: Rc<str> = line.into();
    for s in 0..client.shard.count {
        if client.shard.server.monitors[s].load(Ordering::Relaxed) == 0 {
            continue;
        }
        let text = line.to_string();
        client.shard.run_on(s, move |sh| sh.to_monitors(&text)).await;
    }
}

impl Shard {
    fn to_monitors(&self, line: &str) {
        let clients = self.clients.borrow();
        for id in self.monitors.borrow().iter() {
            if let Some(meta) = clients.get(id) {
                meta.outbox.borrow_mut().extend_from_slice(line.as_bytes());
                meta.wake();
            }
        }
    }

    /// A client of this shard starts monitoring.
    pub fn add_monitor(&self, id: u64) {
        let mut monitors = self.monitors.borrow_mut();
        if !monitors.contains(&id) {
            monitors.push(id);
            self.server.monitors[self.id].fetch_add(1, Ordering::Relaxed);
            self.server.monitoring.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A monitoring client left.
    pub fn remove_monitor(&self, id: u64) {
        let mut monitors = self.monitors.borrow_mut();
        if let Some(at) = monitors.iter().position(|&m| m == id) {
            monitors.swap_remove(at);
            self.server.monitors[self.id].fetch_sub(1, Ordering::Relaxed);
            self.server.monitoring.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
