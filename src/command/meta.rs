//! What Redis 7.0 tells clients about a command: the facts COMMAND INFO,
//! DOCS, GETKEYS and LIST report (arity, flags, ACL categories, tips, key
//! specs, argument shapes). The rows are generated from Redis's command
//! descriptions (`meta_table.rs`); cluster clients and redis-cli read them
//! to route and to hint, so they are Redis's, byte for byte.

use super::Args;
use super::meta_table::ALL;
use crate::protocol::resp::parse_i64;

/// One command's or subcommand's description.
#[derive(Debug)]
pub struct Meta {
    /// Lower case; `container|sub` for a subcommand.
    pub name: &'static str,
    pub arity: i32,
    pub group: &'static str,
    pub since: &'static str,
    /// COMMAND INFO's flags, in redis-server's order.
    pub flags: &'static [&'static str],
    /// Flags redis-server keeps but does not show (may_replicate...).
    pub hidden_flags: &'static [&'static str],
    /// Every ACL category, the implied ones (@write, @slow...) included.
    pub acl: &'static [&'static str],
    pub tips: &'static [&'static str],
    /// The legacy first key, last key and step.
    pub range: (i32, i32, i32),
    pub key_specs: &'static [KeySpec],
    /// Redis finds some of its keys with code rather than specs.
    pub has_key_finder: bool,
    pub args: &'static [Arg],
    pub doc_flags: &'static [&'static str],
    pub deprecated_since: Option<&'static str>,
}

/// Where a run of keys is and how the command uses them.
#[derive(Debug)]
pub struct KeySpec {
    /// RO/RW/OW/RM and access/update/insert/delete..., as Redis names them.
    pub flags: &'static [&'static str],
    pub begin: Begin,
    pub find: Find,
}

/// Where the search for a spec's keys starts.
#[derive(Debug)]
pub enum Begin {
    Index(i32),
    /// After this keyword, searched from `startfrom` (negative: from the
    /// end, backwards).
    Keyword(&'static str, i32),
    Unknown,
}

/// Which arguments from there on are keys.
#[derive(Debug)]
pub enum Find {
    /// `last` relative to the start (negative: from the end); with a
    /// `limit`, only 1/limit of what remains.
    Range {
        last: i32,
        step: i32,
        limit: i32,
    },
    /// The argument at `at` counts the keys, which start at `first`.
    Keynum {
        at: i32,
        first: i32,
        step: i32,
    },
    Unknown,
}

/// One argument in COMMAND DOCS.
#[derive(Debug)]
pub struct Arg {
    pub name: &'static str,
    pub kind: &'static str,
    /// The key spec of a key argument, -1 otherwise.
    pub key_spec: i32,
    pub token: Option<&'static str>,
    pub since: Option<&'static str>,
    pub deprecated_since: Option<&'static str>,
    pub flags: &'static [&'static str],
    /// A block's or a choice's parts.
    pub args: &'static [Arg],
}

/// A command's (`get`) or subcommand's (`config|get`) description.
pub fn get(name: &str) -> Option<&'static Meta> {
    ALL.binary_search_by(|m| m.name.cmp(name)).ok().map(|i| &ALL[i])
}

/// A key found in a call, with how the command uses it.
pub type FlaggedKey = (usize, &'static [&'static str]);

impl Meta {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.contains(&flag) || self.hidden_flags.contains(&flag)
    }

    /// Whether any call can have keys (Redis's doesCommandHaveKeys).
    pub fn may_have_keys(&self) -> bool {
        self.has_key_finder || self.key_specs.iter().any(|s| !s.flags.contains(&"not_key"))
    }

    /// The keys the specs locate in a call (argument 0 is the command
    /// name), or None where a spec cannot say (an unknown or incomplete
    /// spec, a bad count, a missing argument) and the command's own key
    /// finder must answer (Redis's getKeysUsingKeySpecs).
    pub fn spec_keys(&self, args: Args) -> Option<Vec<FlaggedKey>> {
        if self.key_specs.iter().any(|s| s.flags.contains(&"variable_flags")) {
            return None;
        }
        let argc = args.len() as i64;
        let mut keys = Vec::new();
        for spec in self.key_specs.iter().filter(|s| !s.flags.contains(&"not_key")) {
            let first = match spec.begin {
                Begin::Index(pos) => pos as i64,
                Begin::Keyword(word, from) => {
                    let from = from as i64;
                    // The last argument cannot be the keyword (a key must
                    // follow it), nor can the first when searching back.
                    let mut candidates: Box<dyn Iterator<Item = i64>> =
                        if from > 0 { Box::new(from..argc - 1) } else { Box::new((2..=argc + from).rev()) };
                    match candidates.find(|&i| args.get(i as usize).eq_ignore_ascii_case(word.as_bytes())) {
                        Some(i) => i + 1,
                        None => continue,
                    }
                }
                Begin::Unknown => return None,
            };
            let (first, last, step) = match spec.find {
                Find::Range { last, step, limit } => {
                    let last = match (last, limit) {
                        (l, _) if l >= 0 => first + l as i64,
                        (l, 0) => argc + l as i64,
                        (l, limit) => first + ((argc - first) / limit as i64 + l as i64),
                    };
                    (first, last, step as i64)
                }
                Find::Keynum { at, first: start, step } => {
                    let at = first + at as i64;
                    if at >= argc {
                        return None;
                    }
                    let numkeys = parse_i64(args.get(at as usize)).filter(|&n| n >= 0)?;
                    let first = first + start as i64;
                    (first, first + numkeys - 1, step as i64)
                }
                Find::Unknown => return None,
            };
            if last >= argc || last < first || first >= argc {
                return None;
            }
            keys.extend((first..=last).step_by(step.max(1) as usize).map(|i| (i as usize, spec.flags)));
            if spec.flags.contains(&"incomplete") {
                return None;
            }
        }
        Some(keys)
    }

    /// How a key the command's own finder located is used: by the first
    /// spec for the first key, by the last spec for the keys after it (a
    /// destination: SORT's STORE, GEORADIUS's STORE); where the flags
    /// depend on the call, as the call says (Redis's getkeys procs).
    pub fn found_key_flags(&self, args: Args, nth: usize) -> &'static [&'static str] {
        let has = |word: &str| (2..args.len()).any(|i| args.get(i).eq_ignore_ascii_case(word.as_bytes()));
        match self.name {
            "set" if has("GET") => &["RW", "access", "update"],
            "set" => &["OW", "update"],
            "bitfield" if has("SET") || has("INCRBY") => &["RW", "access", "update"],
            "bitfield" => &["RO", "access"],
            _ => {
                let spec = if nth == 0 { self.key_specs.first() } else { self.key_specs.last() };
                spec.map_or(&[], |s| s.flags)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::OwnedArgs;

    fn owned(words: &str) -> OwnedArgs {
        let mut o = OwnedArgs::default();
        words.split(' ').for_each(|w| o.push(w.as_bytes()));
        o
    }

    fn spec_keys(line: &str) -> Option<Vec<(usize, Vec<&'static str>)>> {
        let call = owned(line);
        let meta = get(&String::from_utf8_lossy(call.args().get(0)).to_ascii_lowercase()).expect("a Redis command");
        meta.spec_keys(call.args()).map(|keys| keys.into_iter().map(|(i, f)| (i, f.to_vec())).collect())
    }

    #[test]
    fn rows_are_sorted_and_unique() {
        assert!(ALL.windows(2).all(|w| w[0].name < w[1].name));
        assert!(get("get").is_some() && get("config|get").is_some() && get("nosuch").is_none());
    }

    #[test]
    fn keys_by_spec() {
        assert_eq!(spec_keys("mset a 1 b 2"), Some(vec![(1, vec!["OW", "update"]), (3, vec!["OW", "update"])]));
        assert_eq!(
            spec_keys("lmove a b left right"),
            Some(vec![(1, vec!["RW", "access", "delete"]), (2, vec!["RW", "insert"])])
        );
        // Keywords, limits: XREAD's keys are the first half after STREAMS.
        let xread = spec_keys("xread count 2 streams s1 s2 0 0").expect("keys");
        assert_eq!(xread.iter().map(|k| k.0).collect::<Vec<_>>(), vec![4, 5]);
        // Counted keys, and a count that overruns the call.
        let zunion = spec_keys("zunionstore d 2 a b weights 1 2").expect("keys");
        assert_eq!(zunion.iter().map(|k| k.0).collect::<Vec<_>>(), vec![1, 3, 4]);
        assert_eq!(spec_keys("zunionstore d 5 a b"), None);
        assert_eq!(spec_keys("eval s 0"), None);
        // Unknown and call-dependent specs leave it to the command.
        assert_eq!(spec_keys("sort k store d"), None);
        assert_eq!(spec_keys("set k v"), None);
    }
}
