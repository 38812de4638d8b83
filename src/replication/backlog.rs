//! The replication buffer: the stream's recent bytes, shared by the
//! backlog (what a partial resync may ask for) and the replicas' output
//! (what each has not been sent yet), as Redis 7 shares one buffer
//! between them. Offsets are stream positions: `end` is
//! master_repl_offset, the count of bytes ever fed.

use std::collections::VecDeque;

#[derive(Debug)]
pub struct Backlog {
    buf: VecDeque<u8>,
    /// The stream position of `buf[0]`.
    start: u64,
    /// repl-backlog-size: what is kept for partial resyncs.
    size: usize,
}

impl Backlog {
    /// An empty backlog whose stream is at `offset`.
    pub fn new(offset: u64, size: usize) -> Backlog {
        Backlog { buf: VecDeque::new(), start: offset, size: size.max(1) }
    }

    /// master_repl_offset.
    pub fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    /// repl_backlog_first_byte_offset, as Redis counts it (from 1).
    pub fn first_byte_offset(&self) -> u64 {
        self.start + 1
    }

    /// repl_backlog_histlen: bytes held for partial resyncs.
    pub fn histlen(&self) -> usize {
        self.buf.len().min(self.size)
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// CONFIG SET repl-backlog-size (the next feed trims to it).
    pub fn set_size(&mut self, size: usize) {
        self.size = size.max(1);
    }

    /// Appends `data`, then drops what neither the backlog's size nor a
    /// replica still to be sent it (`keep_from`) needs.
    pub fn feed(&mut self, data: &[u8], keep_from: Option<u64>) {
        self.buf.extend(data);
        self.trim(keep_from);
    }

    /// Drops the oldest bytes beyond `size`, but none at or after
    /// `keep_from`.
    pub fn trim(&mut self, keep_from: Option<u64>) {
        let mut drop_to = self.end().saturating_sub(self.size as u64);
        if let Some(keep) = keep_from {
            drop_to = drop_to.min(keep);
        }
        if drop_to > self.start {
            let n = (drop_to - self.start) as usize;
            self.buf.drain(..n);
            self.start = drop_to;
        }
    }

    /// Whether a replica that has the stream up to `offset` (its next
    /// byte is `offset + 1`) can continue from here.
    pub fn covers(&self, offset: u64) -> bool {
        offset >= self.start && offset <= self.end()
    }

    /// Copies at most `max` bytes from stream position `from` into `out`;
    /// None when they are gone.
    pub fn read(&self, from: u64, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        if !self.covers(from) {
            return None;
        }
        let at = (from - self.start) as usize;
        let n = (self.buf.len() - at).min(max);
        let (a, b) = self.buf.as_slices();
        let end = at + n;
        if at < a.len() {
            out.extend_from_slice(&a[at..end.min(a.len())]);
        }
        if end > a.len() {
            out.extend_from_slice(&b[at.saturating_sub(a.len())..end - a.len()]);
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_its_size_and_what_replicas_still_need() {
        let mut b = Backlog::new(100, 4);
        b.feed(b"abcdef", None);
        assert_eq!((b.end(), b.first_byte_offset(), b.histlen()), (106, 103, 4));
        let mut out = Vec::new();
        assert_eq!(b.read(101, 10, &mut out), None, "trimmed away");
        assert_eq!(b.read(102, 10, &mut out), Some(4));
        assert_eq!(out, b"cdef");
        // A replica at 103 keeps everything from there.
        b.feed(b"ghij", Some(103));
        assert_eq!(b.first_byte_offset(), 104);
        out.clear();
        assert_eq!(b.read(103, 3, &mut out), Some(3));
        assert_eq!(out, b"def");
        assert!(b.covers(110) && !b.covers(111));
        out.clear();
        assert_eq!(b.read(110, 3, &mut out), Some(0));
    }
}
