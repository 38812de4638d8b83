//! Per-client buffer sizing, after Redis's clientsCron: the reply buffer
//! follows the client's recent peak (1 KiB for a client that gets small
//! replies, doubling up to 16 KiB for one that fills it), and an idle
//! client's read buffer is released until it sends again. The shard's
//! cron decides; the connection applies the decision when it is idle, as
//! only it owns the buffers.

use std::cell::Cell;

/// Smallest and largest reply buffer (Redis's PROTO_REPLY_MIN_BYTES and
/// PROTO_REPLY_CHUNK_BYTES).
pub const REPLY_MIN: usize = 1024;
pub const REPLY_CHUNK: usize = 16 * 1024;
/// How often the observed peak restarts from the pending bytes, unless
/// DEBUG REPLYBUFFER PEAK-RESET-TIME says otherwise.
pub const PEAK_RESET_MS: i64 = 5000;
/// A client idle this long gives its read buffer back when it wastes more
/// than `READ_SLACK` bytes.
const READ_IDLE_MS: i64 = 2000;
const READ_SLACK: usize = 4096;
/// A read buffer past this size, twice its recent peak, is cut down to
/// the peak (Redis's PROTO_RESIZE_THRESHOLD), never below `READ_CHUNK`.
const READ_RESIZE_FROM: usize = 32 * 1024;
/// The read buffer a client gets once it sends (Redis's PROTO_IOBUF_LEN).
pub const READ_CHUNK: usize = 16 * 1024;

/// What one cron pass did to a reply buffer, for INFO's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    Shrink,
    Expand,
}

#[derive(Debug)]
pub struct Sizing {
    reply: Cell<usize>,
    peak: Cell<usize>,
    peak_reset_at: Cell<i64>,
    /// The most bytes the read buffer held since the last check.
    read_peak: Cell<usize>,
    /// Decisions the connection has not applied yet: a new reply buffer
    /// size, a new read buffer size (0: none until the client sends).
    reply_changed: Cell<bool>,
    read_target: Cell<Option<usize>>,
}

impl Sizing {
    pub fn new(now_ms: i64) -> Sizing {
        Sizing {
            reply: Cell::new(REPLY_CHUNK),
            peak: Cell::new(0),
            peak_reset_at: Cell::new(now_ms),
            read_peak: Cell::new(0),
            reply_changed: Cell::new(false),
            read_target: Cell::new(None),
        }
    }

    /// The reply buffer's size (CLIENT LIST's rbs).
    pub fn reply_size(&self) -> usize {
        self.reply.get()
    }

    /// The largest fill of the reply buffer since the last reset (rbp).
    pub fn peak(&self) -> usize {
        self.peak.get()
    }

    /// Replies of `len` bytes were composed in one go: a fill past the
    /// buffer counts as filling it (Redis spills the rest into a list).
    pub fn note_reply(&self, len: usize) {
        self.peak.set(self.peak.get().max(len.min(self.reply.get())));
    }

    /// The read buffer holds `pending` bytes of requests.
    pub fn note_read(&self, pending: usize) {
        self.read_peak.set(self.read_peak.get().max(pending));
    }

    /// The periodic check of one client. `peak_reset_ms` < 0 never resets
    /// the peak; `resizing` false leaves the reply buffer as it is.
    pub fn cron(
        &self,
        now_ms: i64,
        peak_reset_ms: i64,
        resizing: bool,
        idle_ms: i64,
        read: (usize, usize),
    ) -> Option<Resize> {
        let size = self.reply.get();
        let peak = self.peak.get();
        let resize = if !resizing {
            None
        } else if size / 2 >= REPLY_MIN && peak < size / 2 {
            self.reply.set(REPLY_MIN.max(peak + 1));
            Some(Resize::Shrink)
        } else if size * 2 < REPLY_CHUNK * 2 && peak == size {
            self.reply.set(REPLY_CHUNK.min(size * 2));
            Some(Resize::Expand)
        } else {
            None
        };
        if peak_reset_ms >= 0 && now_ms - self.peak_reset_at.get() >= peak_reset_ms {
            // An idle connection has nothing pending.
            self.peak.set(0);
            self.peak_reset_at.set(now_ms);
        }
        let (read_len, pending) = read;
        let keep = self.read_peak.replace(pending).max(pending);
        if idle_ms > READ_IDLE_MS && pending == 0 && read_len > READ_SLACK {
            self.read_target.set(Some(0));
        } else if read_len > READ_RESIZE_FROM && read_len / 2 > keep {
            self.read_target.set(Some(keep.max(READ_CHUNK)));
        }
        if resize.is_some() {
            self.reply_changed.set(true);
        }
        resize
    }

    /// Whether the connection has a decision to apply (cron then wakes it).
    pub fn pending(&self) -> bool {
        self.reply_changed.get() || self.read_target.get().is_some()
    }

    /// The new reply buffer size, once.
    pub fn take_reply_change(&self) -> Option<usize> {
        self.reply_changed.replace(false).then(|| self.reply.get())
    }

    /// The read buffer's new size, once.
    pub fn take_read_target(&self) -> Option<usize> {
        self.read_target.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_replies_shrink_the_buffer_and_full_ones_grow_it_back() {
        let s = Sizing::new(0);
        s.note_reply(5);
        assert_eq!(s.cron(100, 5000, true, 0, (0, 0)), Some(Resize::Shrink));
        assert_eq!(s.reply_size(), REPLY_MIN);
        assert_eq!(s.take_reply_change(), Some(REPLY_MIN));
        assert_eq!(s.take_reply_change(), None);
        let mut sizes = vec![];
        for t in 0..6 {
            s.note_reply(40_000);
            s.cron(200 + t, -1, true, 0, (0, 0));
            sizes.push(s.reply_size());
        }
        assert_eq!(sizes, [2048, 4096, 8192, 16384, 16384, 16384]);
    }

    #[test]
    fn the_peak_resets_on_schedule_and_resizing_can_be_off() {
        let s = Sizing::new(0);
        s.note_reply(REPLY_CHUNK);
        assert_eq!(s.cron(10, 100, true, 0, (0, 0)), None);
        assert_eq!(s.peak(), REPLY_CHUNK);
        assert_eq!(s.cron(100, 100, false, 0, (0, 0)), None);
        assert_eq!(s.peak(), 0);
        assert_eq!(s.cron(150, 100, true, 0, (0, 0)), Some(Resize::Shrink));
    }

    #[test]
    fn an_idle_read_buffer_is_released_only_when_empty() {
        let s = Sizing::new(0);
        s.cron(0, -1, false, 3000, (16384, 10));
        assert_eq!(s.take_read_target(), None);
        s.cron(0, -1, false, 1000, (16384, 0));
        assert_eq!(s.take_read_target(), None);
        s.cron(0, -1, false, 3000, (16384, 0));
        assert!(s.pending());
        assert_eq!(s.take_read_target(), Some(0));
    }

    #[test]
    fn a_large_read_buffer_follows_the_peak_down() {
        let s = Sizing::new(0);
        s.note_read(400_000);
        // Still at its peak: kept.
        s.cron(0, -1, false, 0, (524_288, 0));
        assert_eq!(s.take_read_target(), None);
        s.note_read(120);
        s.cron(0, -1, false, 0, (524_288, 0));
        assert_eq!(s.take_read_target(), Some(READ_CHUNK));
        s.note_read(100_000);
        s.cron(0, -1, false, 0, (150_000, 0));
        assert_eq!(s.take_read_target(), None);
    }
}
