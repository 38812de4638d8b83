//! Log lines in Redis's format, so operators' scripts keep working:
//! `PID:M 22 Nov 2026 03:04:05.123 * Ready to accept connections tcp`.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

struct RedisFormat {
    pid: u32,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, usize, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (month <= 2) as i64, (month - 1) as usize, day)
}

pub fn timestamp(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!("{d} {} {y} {:02}:{:02}:{:02}.{:03}", MONTHS[m], t / 3600, t / 60 % 60, t % 60, ms.rem_euclid(1000))
}

impl<S, N> FormatEvent<S, N> for RedisFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mark = match *event.metadata().level() {
            Level::ERROR | Level::WARN => '#',
            Level::INFO => '*',
            Level::DEBUG => '-',
            Level::TRACE => '.',
        };
        write!(w, "{}:M {} {} ", self.pid, timestamp(crate::server::shared::now_ms()), mark)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Where log lines go: the `logfile` (appended) or standard output.
struct Sink(Option<Mutex<std::fs::File>>);

impl Write for &Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &self.0 {
            Some(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write(buf),
            None => std::io::stdout().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many levels are logged, from ERROR (0: none, as `loglevel
/// nothing`; 5: down to TRACE): `loglevel`, which CONFIG SET changes at
/// runtime.
static LEVEL: AtomicU8 = AtomicU8::new(3);

fn rank(level: Level) -> u8 {
    match level {
        Level::ERROR => 0,
        Level::WARN => 1,
        Level::INFO => 2,
        Level::DEBUG => 3,
        Level::TRACE => 4,
    }
}

/// Applies a `loglevel` value (already validated by the config).
pub fn set_level(loglevel: &str) {
    let levels = match loglevel {
        "debug" => 5,
        "verbose" => 4,
        "warning" => 2,
        "nothing" => 0,
        _ => 3,
    };
    LEVEL.store(levels, Ordering::Relaxed);
}

/// Installs the global subscriber for `loglevel` and `logfile`.
pub fn init(loglevel: &str, logfile: &str) -> std::io::Result<()> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    set_level(loglevel);
    let file = if logfile.is_empty() {
        None
    } else {
        Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(logfile)?))
    };
    let sink: &'static Sink = Box::leak(Box::new(Sink(file)));
    let format = tracing_subscriber::fmt::layer()
        .event_format(RedisFormat { pid: std::process::id() })
        .with_writer(move || sink)
        // A dynamic filter: its answer is not cached per call site, so a
        // new level applies at once.
        .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|meta, _| {
            rank(*meta.level()) < LEVEL.load(Ordering::Relaxed)
        }));
    tracing_subscriber::registry().with(format).init();
    log_panics();
    Ok(())
}

/// Panics go to the log with their thread and place: a command that
/// panicked fails alone (its shard keeps serving), and this line is what
/// says why.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let place = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!("panic in {} at {place}: {message}", thread.name().unwrap_or("?"));
    }));
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp(0), "1 Jan 1970 00:00:00.000");
        assert_eq!(super::timestamp(1_795_316_645_123), "22 Nov 2026 03:04:05.123");
    }
}
