//! What commands cost, as operators read it: SLOWLOG, LATENCY (the
//! latency monitor's events and the per-command histograms), and INFO's
//! commandstats, errorstats and latencystats sections. The counting is
//! in `server::stats`; here the shards' records are merged and shown.

use std::fmt::Write;

use futures::future::LocalBoxFuture;
use hdrhistogram::Histogram;

use super::{Handler, Spec};
use crate::command::{ADMIN, Args, CONTAINER, LOADING, STALE};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::stats::{CommandStats, LatencyEvent};

/// Every shard's command stats, merged.
pub(super) async fn merged(client: &Client) -> CommandStats {
    let parts = client.shard.broadcast(|sh| sh.cmdstats.borrow().clone()).await;
    let mut total = CommandStats::default();
    parts.iter().for_each(|p| total.merge(p));
    total
}

/// CONFIG RESETSTAT's part: every shard forgets its command stats.
pub(super) async fn reset(client: &Client) {
    client.shard.broadcast(|sh| *sh.cmdstats.borrow_mut() = CommandStats::default()).await;
}

pub(super) fn commandstats(stats: &CommandStats) -> String {
    let mut out = String::new();
    for (name, s) in stats.by_name() {
        if s.calls == 0 && s.rejected == 0 && s.failed == 0 {
            continue;
        }
        let per_call = if s.calls == 0 { 0.0 } else { s.usec as f64 / s.calls as f64 };
        let _ = write!(
            out,
            "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
            s.calls, s.usec, s.rejected, s.failed
        );
    }
    out
}

pub(super) fn errorstats(stats: &CommandStats) -> String {
    let mut out = String::new();
    let mut codes: Vec<_> = stats.errors.iter().collect();
    codes.sort();
    for (code, n) in codes {
        let _ = write!(out, "errorstat_{code}:count={n}\r\n");
    }
    out
}

/// `latency-tracking-info-percentiles` as numbers.
fn percentiles(client: &Client) -> Vec<f64> {
    client
        .shard
        .server
        .config(|c| c.str("latency-tracking-info-percentiles").to_string())
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

pub(super) fn latencystats(client: &Client, stats: &CommandStats) -> String {
    let wanted = percentiles(client);
    let mut out = String::new();
    for (name, s) in stats.by_name() {
        let Some(h) = s.histogram.as_ref().filter(|h| !h.is_empty()) else { continue };
        let values: Vec<String> = wanted
            .iter()
            .map(|&p| {
                let usec = h.value_at_quantile(p / 100.0) as f64 / 1000.0;
                format!("p{}={usec:.3}", crate::config::format_percentile(p))
            })
            .collect();
        let _ = write!(out, "latency_percentiles_usec_{name}:{}\r\n", values.join(","));
    }
    out
}

/// One command's LATENCY HISTOGRAM entry: its calls and the cumulative
/// counts at power-of-two microsecond bounds (from 1024 ns).
fn histogram_reply(h: &Histogram<u64>) -> Reply {
    let mut buckets = Vec::new();
    let mut cumulative = 0;
    let mut previous = 0;
    for step in h.iter_log(1024, 2.0) {
        cumulative += step.count_since_last_iteration();
        if cumulative > previous {
            buckets.push((Reply::Int((step.value_iterated_to() / 1000) as i64), Reply::Int(cumulative as i64)));
        }
        previous = cumulative;
    }
    Reply::Map(vec![
        (Reply::bulk(b"calls"), Reply::Int(h.len() as i64)),
        (Reply::bulk(b"histogram_usec"), Reply::Map(buckets)),
    ])
}

const SLOWLOG_HELP: &[&str] = &[
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
];

fn slowlog<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let records = &client.shard.server.records;
        let mut log = records.slowlog.lock().unwrap_or_else(|p| p.into_inner());
        // A lowered slowlog-max-len applies at once.
        log.trim(crate::config::Hot::get(&client.shard.server.hot.slowlog_max_len) as usize);
        match (args.keyword(1).as_str(), args.len()) {
            ("GET", 2 | 3) => {
                let count = match args.len() {
                    3 => {
                        let n =
                            args.int(2).map_err(|_| CmdError::err("count should be greater than or equal to -1"))?;
                        if n < -1 {
                            return Err(CmdError::err("count should be greater than or equal to -1"));
                        }
                        (n >= 0).then_some(n as usize)
                    }
                    _ => Some(10),
                };
                let entries = log.newest(count).into_iter().map(|e| {
                    Reply::Array(vec![
                        Reply::Int(e.id as i64),
                        Reply::Int(e.unix_secs),
                        Reply::Int(e.usec as i64),
                        Reply::Array(e.args.iter().map(|a| Reply::Bulk(a.clone())).collect()),
                        Reply::bulk(e.peer.as_bytes()),
                        Reply::bulk(e.name.as_bytes()),
                    ])
                });
                Ok(Reply::Array(entries.collect()))
            }
            ("LEN", 2) => Ok(Reply::Int(log.len() as i64)),
            ("RESET", 2) => {
                log.reset();
                Ok(Reply::Ok)
            }
            ("HELP", 2) => Ok(Reply::help(SLOWLOG_HELP)),
            (sub @ ("GET" | "LEN" | "RESET" | "HELP"), _) => Err(CmdError::sub_arity("slowlog", sub)),
            _ => Err(CmdError::SubcommandSyntax { cmd: "SLOWLOG".into(), sub: args.str(1) }),
        }
    })
}

const LATENCY_HELP: &[&str] = &[
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
];

/// LATENCY DOCTOR's report: each event's spikes, average and worst.
fn doctor(events: &[(&'static str, LatencyEvent)], enabled: bool) -> String {
    if events.is_empty() && !enabled {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    if events.is_empty() {
        return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep tonight.\n".into();
    }
    let mut out = String::from(
        "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
    );
    for (i, (name, e)) in events.iter().enumerate() {
        let n = e.samples.len() as u64;
        let avg = e.samples.iter().map(|s| s.1).sum::<u64>() / n.max(1);
        let mad = e.samples.iter().map(|s| s.1.abs_diff(avg)).sum::<u64>() / n.max(1);
        let period = match (e.samples.front(), e.samples.back()) {
            (Some(a), Some(b)) if n > 0 => (b.0 - a.0) as f64 / n as f64,
            _ => 0.0,
        };
        let _ = writeln!(
            out,
            "{}. {name}: {n} latency spikes (average {avg}ms, mean deviation {mad}ms, period {period:.2} sec). Worst all time event {}ms.",
            i + 1,
            e.max
        );
    }
    out.push_str("\nI have a few advices for you:\n\n- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    out
}

/// LATENCY GRAPH: the event's samples as columns of '#', scaled between
/// its lowest and highest, with each sample's age under it.
fn graph(name: &str, e: &LatencyEvent) -> String {
    let (low, high) = e.samples.iter().fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.1), hi.max(s.1)));
    let mut out = format!("{name} - high {high} ms, low {low} ms (all time high {} ms)\n", e.max);
    out.push_str(&"-".repeat(80));
    out.push('\n');
    const ROWS: u64 = 4;
    for row in (1..=ROWS).rev() {
        let line: String = e
            .samples
            .iter()
            .map(|s| {
                let level = if high == low { ROWS } else { 1 + (s.1 - low) * (ROWS - 1) / (high - low) };
                if level >= row { '#' } else { ' ' }
            })
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn latency<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let server = client.shard.server.clone();
        let events = || {
            let m = server.records.latency.lock().unwrap_or_else(|p| p.into_inner());
            let mut v: Vec<(&'static str, LatencyEvent)> = m.events.iter().map(|(k, e)| (*k, e.clone())).collect();
            v.sort_by_key(|(k, _)| *k);
            v
        };
        match (args.keyword(1).as_str(), args.len()) {
            ("LATEST", 2) => Ok(Reply::Array(
                events()
                    .into_iter()
                    .filter_map(|(name, e)| {
                        let (t, ms) = *e.samples.back()?;
                        Some(Reply::Array(vec![
                            Reply::bulk(name.as_bytes()),
                            Reply::Int(t),
                            Reply::Int(ms as i64),
                            Reply::Int(e.max as i64),
                        ]))
                    })
                    .collect(),
            )),
            ("HISTORY", 3) => {
                let wanted = args.str(2);
                let samples = events().into_iter().find(|(n, _)| *n == wanted).map(|(_, e)| e.samples);
                let pairs = samples.unwrap_or_default().into_iter();
                Ok(Reply::Array(
                    pairs.map(|(t, ms)| Reply::Array(vec![Reply::Int(t), Reply::Int(ms as i64)])).collect(),
                ))
            }
            ("GRAPH", 3) => {
                let wanted = args.str(2);
                match events().into_iter().find(|(n, _)| *n == wanted) {
                    Some((name, e)) => Ok(Reply::Verbatim(graph(name, &e).into())),
                    None => Err(CmdError::err(format!("No samples available for event '{wanted}'"))),
                }
            }
            ("DOCTOR", 2) => {
                let enabled = crate::config::Hot::get(&server.hot.latency_monitor_ms) > 0;
                Ok(Reply::Verbatim(doctor(&events(), enabled).into()))
            }
            ("RESET", _) => {
                let mut m = server.records.latency.lock().unwrap_or_else(|p| p.into_inner());
                let removed = if args.len() == 2 {
                    std::mem::take(&mut m.events).len()
                } else {
                    (2..args.len()).filter(|&i| m.events.remove(args.str(i).as_str()).is_some()).count()
                };
                Ok(Reply::Int(removed as i64))
            }
            ("HISTOGRAM", _) => {
                let stats = merged(client).await;
                let table = server.commands;
                // Named commands (a container names all its subcommands);
                // unknown names are skipped.
                let wanted = |name: &str| {
                    args.len() == 2
                        || (2..args.len()).any(|i| {
                            let asked = args.str(i).to_ascii_lowercase();
                            let known = table.lookup(asked.split('|').next().unwrap_or("").as_bytes()).is_some();
                            known && (name == asked || name.split('|').next() == Some(asked.as_str()))
                        })
                };
                let mut entries = Vec::new();
                for (name, s) in stats.by_name() {
                    if let Some(h) = s.histogram.as_ref().filter(|h| !h.is_empty())
                        && wanted(name)
                    {
                        entries.push((Reply::bulk(name.as_bytes()), histogram_reply(h)));
                    }
                }
                Ok(Reply::Map(entries))
            }
            ("HELP", 2) => Ok(Reply::help(LATENCY_HELP)),
            (sub @ ("LATEST" | "HISTORY" | "GRAPH" | "DOCTOR" | "HELP"), _) => Err(CmdError::sub_arity("latency", sub)),
            _ => Err(CmdError::SubcommandSyntax { cmd: "LATENCY".into(), sub: args.str(1) }),
        }
    })
}

pub(super) const TABLE: &[Spec] = &[
    Spec::new("slowlog", -2, ADMIN | LOADING | STALE | CONTAINER, crate::command::Keys::None, Handler::Async(slowlog))
        .with_subcommands(&["slowlog|get", "slowlog|help", "slowlog|len", "slowlog|reset"]),
    Spec::new("latency", -2, ADMIN | LOADING | STALE | CONTAINER, crate::command::Keys::None, Handler::Async(latency))
        .with_subcommands(&[
            "latency|doctor",
            "latency|graph",
            "latency|help",
            "latency|histogram",
            "latency|history",
            "latency|latest",
            "latency|reset",
        ]),
];
