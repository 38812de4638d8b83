//! What commands cost. Each shard counts the calls it answers and their
//! time per command (INFO commandstats), keeps a latency histogram per
//! command (INFO latencystats, LATENCY HISTOGRAM) and counts error
//! replies by code (INFO errorstats); readers merge the shards. The slow
//! log (SLOWLOG) and the latency monitor (LATENCY) are server-wide and
//! only touched by the rare command over their thresholds.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::command::{Args, CONTAINER, FAST, Spec};

/// Redis's histogram bounds: 1 ns to 1 s, 2 significant digits.
const HISTOGRAM_MAX_NS: u64 = 1_000_000_000;
/// Distinct error codes errorstats tracks before it stops adding (as
/// Redis's ERRORSTATS_LIMIT), so odd error texts cannot grow it.
const ERROR_CODES_MAX: usize = 128;

#[derive(Clone, Default)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
    pub histogram: Option<Box<Histogram<u64>>>,
}

impl CommandStat {
    fn merge(&mut self, other: &CommandStat) {
        self.calls += other.calls;
        self.usec += other.usec;
        self.rejected += other.rejected;
        self.failed += other.failed;
        if let Some(h) = &other.histogram {
            match &mut self.histogram {
                Some(mine) => {
                    let _ = mine.add(h.as_ref());
                }
                None => self.histogram = Some(h.clone()),
            }
        }
    }
}

/// One shard's counts (or, merged, the server's).
#[derive(Clone, Default)]
pub struct CommandStats {
    /// By Redis's name for the call: `get`, `client|list`.
    pub commands: HashMap<Cow<'static, str>, CommandStat>,
    pub errors: HashMap<String, u64>,
    pub error_replies: u64,
}

/// The name stats file a call under (a listed subcommand's own, without
/// building it).
fn stat_name<C>(spec: &'static Spec<C>, args: Args) -> Cow<'static, str> {
    if !spec.has(CONTAINER) || args.len() < 2 {
        return Cow::Borrowed(spec.name);
    }
    match spec.subcommand(args.get(1)) {
        Some(sub) => Cow::Borrowed(sub),
        None => Cow::Owned(spec.full_name(args)),
    }
}

impl CommandStats {
    /// One lookup per call: a command's name is borrowed, never copied.
    fn entry(&mut self, name: Cow<'static, str>) -> &mut CommandStat {
        self.commands.entry(name).or_default()
    }

    /// A call that ran for `took`; `histogram`: latency-tracking is on.
    pub fn call<C>(&mut self, spec: &'static Spec<C>, args: Args, took: Duration, failed: bool, histogram: bool) {
        let stat = self.entry(stat_name(spec, args));
        stat.calls += 1;
        stat.usec += took.as_micros() as u64;
        stat.failed += u64::from(failed);
        if histogram {
            let h = stat.histogram.get_or_insert_with(|| {
                Box::new(Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 2).expect("valid bounds"))
            });
            h.saturating_record((took.as_nanos() as u64).clamp(1, HISTOGRAM_MAX_NS));
        }
    }

    /// A call refused before it ran (arity, authentication, OOM...).
    pub fn rejected<C>(&mut self, spec: &'static Spec<C>, args: Args) {
        self.entry(stat_name(spec, args)).rejected += 1;
    }

    /// An error reply: counted under its code (the first word).
    pub fn error(&mut self, text: &str) {
        self.error_replies += 1;
        // The word before a space within the first 32 bytes, else ERR
        // (Redis's afterErrorReply).
        let head = &text.as_bytes()[..text.len().min(31)];
        let code = head.iter().position(|&b| b == b' ').map_or("ERR", |i| &text[..i]);
        if let Some(n) = self.errors.get_mut(code) {
            *n += 1;
        } else if self.errors.len() < ERROR_CODES_MAX {
            self.errors.insert(code.to_string(), 1);
        }
    }

    /// The commands with their stats, by name.
    pub fn by_name(&self) -> Vec<(&str, &CommandStat)> {
        let mut all: Vec<(&str, &CommandStat)> = self.commands.iter().map(|(k, v)| (k.as_ref(), v)).collect();
        all.sort_by_key(|(name, _)| *name);
        all
    }

    pub fn merge(&mut self, other: &CommandStats) {
        for (name, stat) in &other.commands {
            self.entry(name.clone()).merge(stat);
        }
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        self.error_replies += other.error_replies;
    }
}

/// One SLOWLOG entry.
#[derive(Clone, Debug)]
pub struct SlowEntry {
    pub id: u64,
    pub unix_secs: i64,
    pub usec: u64,
    pub args: Vec<Bytes>,
    pub peer: String,
    pub name: String,
}

/// Most arguments and bytes per argument an entry keeps (Redis's
/// SLOWLOG_ENTRY_MAX_ARGC and _MAX_STRING).
const SLOW_MAX_ARGS: usize = 32;
const SLOW_MAX_STRING: usize = 128;

#[derive(Debug, Default)]
pub struct SlowLog {
    entries: VecDeque<SlowEntry>,
    next_id: u64,
}

/// The arguments of a call as the slow log shows them: secrets redacted,
/// long ones and long lists cut with a note of what was left out.
fn slow_args(args: Args, redacted: &dyn Fn(usize) -> bool) -> Vec<Bytes> {
    let argc = args.len();
    let kept = argc.min(SLOW_MAX_ARGS);
    (0..kept)
        .map(|j| {
            if kept != argc && j == kept - 1 {
                return Bytes::from(format!("... ({} more arguments)", argc - kept + 1));
            }
            if redacted(j) {
                return Bytes::from_static(b"(redacted)");
            }
            let a = args.get(j);
            if a.len() > SLOW_MAX_STRING {
                let mut cut = a[..SLOW_MAX_STRING].to_vec();
                cut.extend_from_slice(format!("... ({} more bytes)", a.len() - SLOW_MAX_STRING).as_bytes());
                Bytes::from(cut)
            } else {
                Bytes::copy_from_slice(a)
            }
        })
        .collect()
}

/// Which arguments of a call hold secrets (AUTH's, HELLO's AUTH pair,
/// MIGRATE's AUTH / AUTH2, CONFIG SET of a password, ACL SETUSER's rules):
/// the slow log and MONITOR show them as `(redacted)`, as Redis does.
pub fn secret(args: Args, j: usize) -> bool {
    let word = |i: usize| String::from_utf8_lossy(args.get(i)).to_ascii_lowercase();
    match word(0).as_str() {
        "auth" => j >= 1,
        "hello" => (1..args.len()).any(|i| word(i) == "auth" && (j == i + 1 || j == i + 2)),
        "migrate" => (1..args.len()).any(|i| match word(i).as_str() {
            "auth" => j == i + 1,
            "auth2" => j == i + 1 || j == i + 2,
            _ => false,
        }),
        "config" if args.len() > 2 && word(1) == "set" => {
            j >= 3 && j % 2 == 1 && matches!(word(j - 1).as_str(), "masterauth" | "masteruser" | "requirepass")
        }
        "acl" if args.len() > 2 && word(1) == "setuser" => j >= 3,
        _ => false,
    }
}

impl SlowLog {
    pub fn push(&mut self, args: Args, usec: u64, peer: String, name: String, max_len: usize) {
        let entry = SlowEntry {
            id: self.next_id,
            unix_secs: crate::server::shared::now_ms() / 1000,
            usec,
            args: slow_args(args, &|j| secret(args, j)),
            peer,
            name,
        };
        self.next_id += 1;
        self.entries.push_front(entry);
        self.entries.truncate(max_len);
    }

    pub fn trim(&mut self, max_len: usize) {
        self.entries.truncate(max_len);
    }

    /// The newest `count` entries (all with None).
    pub fn newest(&self, count: Option<usize>) -> Vec<SlowEntry> {
        self.entries.iter().take(count.unwrap_or(usize::MAX)).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// Samples the latency monitor keeps per event (Redis's LATENCY_TS_LEN).
const LATENCY_SAMPLES: usize = 160;

#[derive(Clone, Debug, Default)]
pub struct LatencyEvent {
    /// (unix seconds, milliseconds), oldest first; one per second.
    pub samples: VecDeque<(i64, u64)>,
    pub max: u64,
}

#[derive(Debug, Default)]
pub struct LatencyMonitor {
    pub events: HashMap<&'static str, LatencyEvent>,
}

impl LatencyMonitor {
    pub fn add(&mut self, event: &'static str, ms: u64) {
        let now = crate::server::shared::now_ms() / 1000;
        let e = self.events.entry(event).or_default();
        e.max = e.max.max(ms);
        if let Some(last) = e.samples.back_mut().filter(|(t, _)| *t == now) {
            last.1 = last.1.max(ms);
            return;
        }
        if e.samples.len() == LATENCY_SAMPLES {
            e.samples.pop_front();
        }
        e.samples.push_back((now, ms));
    }
}

/// The server-wide records, behind locks only the slow path takes.
#[derive(Debug, Default)]
pub struct Records {
    pub slowlog: Mutex<SlowLog>,
    pub latency: Mutex<LatencyMonitor>,
    pub rates: Mutex<Rates>,
}

/// Samples Redis keeps per instantaneous metric (STATS_METRIC_SAMPLES),
/// one every 100 ms (STATS_METRIC_SAMPLE period).
const METRIC_SAMPLES: usize = 16;
pub const METRIC_PERIOD: Duration = Duration::from_millis(100);

/// A counter's rate over the last samples (INFO's instantaneous_*).
#[derive(Debug, Default)]
struct Rate {
    samples: [f64; METRIC_SAMPLES],
    next: usize,
    last: Option<(std::time::Instant, u64)>,
}

impl Rate {
    fn sample(&mut self, at: std::time::Instant, value: u64) {
        if let Some((then, before)) = self.last {
            let secs = at.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                self.samples[self.next] = value.saturating_sub(before) as f64 / secs;
                self.next = (self.next + 1) % METRIC_SAMPLES;
            }
        }
        self.last = Some((at, value));
    }

    fn per_sec(&self) -> f64 {
        self.samples.iter().sum::<f64>() / METRIC_SAMPLES as f64
    }
}

/// The instantaneous rates: commands, and network bytes in and out.
#[derive(Debug, Default)]
pub struct Rates {
    ops: Rate,
    input: Rate,
    output: Rate,
}

impl Rates {
    /// Takes a sample of the server's totals.
    pub fn sample(&mut self, commands: u64, input: u64, output: u64) {
        let now = std::time::Instant::now();
        self.ops.sample(now, commands);
        self.input.sample(now, input);
        self.output.sample(now, output);
    }

    /// Commands per second, and kB per second in and out.
    pub fn current(&self) -> (u64, f64, f64) {
        (self.ops.per_sec() as u64, self.input.per_sec() / 1024.0, self.output.per_sec() / 1024.0)
    }
}

/// What the thresholds are now (from the hot settings).
pub struct Thresholds {
    /// slowlog-log-slower-than in µs; negative: off.
    pub slower_than: i64,
    pub slowlog_max_len: usize,
    /// latency-monitor-threshold in ms; 0: off.
    pub latency_ms: u64,
}

impl Records {
    /// After a call that took `took`: the slow log and latency monitor
    /// get it if it crossed their thresholds. EXEC itself is not logged
    /// (its commands are).
    pub fn note<C>(
        &self,
        spec: &'static Spec<C>,
        args: Args,
        took: Duration,
        t: &Thresholds,
        who: impl FnOnce() -> (String, String),
    ) {
        let usec = took.as_micros() as u64;
        if t.slower_than >= 0 && usec >= t.slower_than as u64 && !spec.has(crate::command::RUNS_QUEUE) {
            let (peer, name) = who();
            let mut log = self.slowlog.lock().unwrap_or_else(|p| p.into_inner());
            log.push(args, usec, peer, name, t.slowlog_max_len);
        }
        let event = if spec.has(FAST) { "fast-command" } else { "command" };
        self.sample(event, took, t.latency_ms);
    }

    /// Gives the latency monitor `event` if it took at least
    /// `threshold_ms` (0: the monitor is off).
    pub fn sample(&self, event: &'static str, took: Duration, threshold_ms: u64) {
        let ms = took.as_millis() as u64;
        if threshold_ms > 0 && ms >= threshold_ms {
            self.latency.lock().unwrap_or_else(|p| p.into_inner()).add(event, ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::OwnedArgs;

    fn owned(words: &[&[u8]]) -> OwnedArgs {
        let mut a = OwnedArgs::default();
        words.iter().for_each(|w| a.push(w));
        a
    }

    #[test]
    fn slow_log_cuts_long_calls_and_hides_secrets() {
        let long = vec![b'x'; 130];
        let a = owned(&[b"SET", b"k", &long]);
        let got = slow_args(a.args(), &|_| false);
        assert_eq!(got[2].len(), 128 + "... (2 more bytes)".len());
        let many: Vec<Vec<u8>> = (0..40).map(|i| format!("a{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = many.iter().map(|v| v.as_slice()).collect();
        let a = owned(&refs);
        let got = slow_args(a.args(), &|_| false);
        assert_eq!(got.len(), 32);
        assert_eq!(&got[31][..], b"... (9 more arguments)");
        let a = owned(&[b"CONFIG", b"SET", b"masterauth", b"pw", b"maxmemory", b"1"]);
        let hidden: Vec<bool> = (0..6).map(|j| secret(a.args(), j)).collect();
        assert_eq!(hidden, [false, false, false, true, false, false]);
        let a = owned(&[b"HELLO", b"3", b"AUTH", b"u", b"p", b"SETNAME", b"n"]);
        let hidden: Vec<bool> = (0..7).map(|j| secret(a.args(), j)).collect();
        assert_eq!(hidden, [false, false, false, true, true, false, false]);
    }

    #[test]
    fn latency_keeps_one_sample_per_second_and_the_max() {
        let mut m = LatencyMonitor::default();
        m.add("command", 5);
        m.add("command", 9);
        m.add("command", 3);
        let e = &m.events["command"];
        assert_eq!(e.samples.len(), 1);
        assert_eq!(e.samples[0].1, 9);
        assert_eq!(e.max, 9);
    }

    #[test]
    fn rates_average_the_last_samples() {
        let mut r = Rate::default();
        let t0 = std::time::Instant::now();
        r.sample(t0, 0);
        r.sample(t0 + Duration::from_millis(100), 100);
        // One sample of 1000/s among 16.
        assert!((r.per_sec() - 1000.0 / 16.0).abs() < 1e-6);
        for i in 2..=17 {
            r.sample(t0 + Duration::from_millis(100 * i), 100 * i);
        }
        assert!((r.per_sec() - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn error_codes_are_bounded() {
        let mut s = CommandStats::default();
        for i in 0..200 {
            s.error(&format!("CODE{i} something"));
        }
        s.error("CODE0 again");
        assert_eq!(s.errors.len(), ERROR_CODES_MAX);
        assert_eq!(s.errors["CODE0"], 2);
        assert_eq!(s.error_replies, 201);
        // No space early on: the code is ERR.
        let mut s = CommandStats::default();
        s.error("plain");
        s.error(&format!("{} late", "X".repeat(40)));
        assert_eq!(s.errors["ERR"], 2);
    }
}
