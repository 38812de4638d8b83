//! Where a command's keys are among its arguments.

use super::Args;
use crate::protocol::resp::parse_i64;

/// Where a command's keys are among its arguments (the name is argument 0).
#[derive(Clone, Copy, Debug)]
pub enum Keys {
    None,
    /// first, last (negative counts from the end), step.
    Range(i32, i32, i32),
    /// The argument at this index counts the keys that follow it
    /// (SINTERCARD, ZUNIONSTORE's sources, EVAL).
    Numkeys(i32),
    /// A key-finder for what first/last/step cannot say: ZUNIONSTORE's
    /// destination before its numkeys sources, SORT's STORE destination.
    /// It returns ascending argument positions; malformed calls yield what
    /// can be found (the command itself reports the error).
    Find(fn(Args) -> Vec<usize>),
}

/// Argument positions of a call's keys.
#[derive(Clone)]
pub enum KeyPositions {
    Step(std::iter::StepBy<std::ops::RangeInclusive<usize>>),
    Found(std::vec::IntoIter<usize>),
}

impl Iterator for KeyPositions {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            KeyPositions::Step(r) => r.next(),
            KeyPositions::Found(v) => v.next(),
        }
    }
}

/// No positions at all (argument 0 is the name, never a key).
#[allow(clippy::reversed_empty_ranges)]
const NO_KEYS: std::ops::RangeInclusive<usize> = 1..=0;

/// `numkeys` at argument `at` counts the keys that follow it: their range,
/// empty when the count is invalid.
fn numkeys_range(args: Args, at: usize) -> std::ops::RangeInclusive<usize> {
    let argc = args.len();
    match (at < argc).then(|| parse_i64(args.get(at))).flatten() {
        Some(n) if n > 0 && (n as u64) < (argc - at) as u64 => at + 1..=at + n as usize,
        _ => NO_KEYS,
    }
}

/// ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE: the destination, then numkeys
/// sources; none when the count is bad (the command reports it).
pub fn store_numkeys(args: Args) -> Vec<usize> {
    let sources = numkeys_range(args, 2);
    if sources.is_empty() {
        return Vec::new();
    }
    std::iter::once(1).chain(sources).collect()
}

impl Keys {
    /// Argument indexes that are keys, ascending.
    pub fn positions(self, args: Args) -> KeyPositions {
        let argc = args.len();
        let (range, step) = match self {
            Keys::None => (NO_KEYS, 1),
            Keys::Range(f, l, s) => {
                let last = if l < 0 { argc as i64 + l as i64 } else { l as i64 };
                let last = last.min(argc as i64 - 1);
                if last < f as i64 { (NO_KEYS, 1) } else { (f as usize..=last as usize, s.max(1) as usize) }
            }
            Keys::Numkeys(at) => (numkeys_range(args, at as usize), 1),
            Keys::Find(find) => return KeyPositions::Found(find(args).into_iter()),
        };
        KeyPositions::Step(range.step_by(step))
    }

    /// A key range open to the end with a step (MSET's key value pairs)
    /// needs whole groups; anything else is the arity rule's business.
    pub fn fits(self, argc: usize) -> bool {
        match self {
            Keys::Range(first, last, step) if last < 0 && step > 1 => (argc as i64 - first as i64) % step as i64 == 0,
            _ => true,
        }
    }

    pub fn step(self) -> usize {
        match self {
            Keys::None | Keys::Numkeys(_) | Keys::Find(_) => 1,
            Keys::Range(_, _, s) => s.max(1) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::OwnedArgs;

    #[test]
    fn key_positions() {
        let owned = |words: &[&str]| {
            let mut o = OwnedArgs::default();
            words.iter().for_each(|w| o.push(w.as_bytes()));
            o
        };
        let five = owned(&["mset", "a", "1", "b", "2"]);
        assert_eq!(Keys::Range(1, -1, 2).positions(five.args()).collect::<Vec<_>>(), vec![1, 3]);
        let two = owned(&["get", "a"]);
        assert_eq!(Keys::Range(1, 1, 1).positions(two.args()).collect::<Vec<_>>(), vec![1]);
        assert_eq!(Keys::Range(2, 2, 1).positions(two.args()).count(), 0);
        assert_eq!(Keys::None.positions(two.args()).count(), 0);
        let card = owned(&["sintercard", "2", "a", "b", "LIMIT", "1"]);
        assert_eq!(Keys::Numkeys(1).positions(card.args()).collect::<Vec<_>>(), vec![2, 3]);
        for bad in
            [&["sintercard", "9", "a"][..], &["sintercard", "0", "a"], &["sintercard", "x", "a"], &["sintercard"]]
        {
            assert_eq!(Keys::Numkeys(1).positions(owned(bad).args()).count(), 0);
        }
        assert!(Keys::Range(1, -1, 2).fits(5));
        assert!(!Keys::Range(1, -1, 2).fits(4));
        assert!(Keys::Range(1, -1, 1).fits(4));
    }
}
