//! SORT and SORT_RO (sort.c). The source list, set or sorted set, the
//! STORE destination and the keys its BY and GET patterns name are locked
//! as one transaction. The pattern keys are only known from the source's
//! elements: SORT reads the source, locks everything, reads it again, and
//! starts over if the elements now name keys it did not lock.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{Args, DENYOOM, Keys, READONLY, Typed, WRITE, Writes, parse_f64};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::events::{GENERIC, LIST};
use crate::storage::{Key, List, Value};

struct SortOptions {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    by: Option<Vec<u8>>,
    dont_sort: bool,
    gets: Vec<Vec<u8>>,
    store: Option<Vec<u8>>,
}

fn parse(args: Args, read_only: bool) -> Result<SortOptions, CmdError> {
    let mut o = SortOptions {
        desc: false,
        alpha: false,
        limit: None,
        by: None,
        dont_sort: false,
        gets: Vec::new(),
        store: None,
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        match args.keyword(j).as_str() {
            "ASC" => o.desc = false,
            "DESC" => o.desc = true,
            "ALPHA" => o.alpha = true,
            "LIMIT" if left >= 2 => {
                o.limit = Some((args.int(j + 1)?, args.int(j + 2)?));
                j += 2;
            }
            "STORE" if left >= 1 && !read_only => {
                o.store = Some(args.get(j + 1).to_vec());
                j += 1;
            }
            "BY" if left >= 1 => {
                let p = args.get(j + 1).to_vec();
                // A pattern without '*' means "do not sort".
                o.dont_sort = !p.contains(&b'*');
                o.by = Some(p);
                j += 1;
            }
            "GET" if left >= 1 => {
                o.gets.push(args.get(j + 1).to_vec());
                j += 1;
            }
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    Ok(o)
}

/// The key (and hash field) a pattern names for `element`; None when the
/// pattern has no '*'.
fn substitute(pattern: &[u8], element: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let star = pattern.iter().position(|&b| b == b'*')?;
    let arrow = pattern[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|i| star + 1 + i)
        .filter(|&a| a + 2 < pattern.len());
    let (key_part, field) = match arrow {
        Some(a) => (&pattern[..a], Some(pattern[a + 2..].to_vec())),
        None => (pattern, None),
    };
    let mut key = key_part[..star].to_vec();
    key.extend_from_slice(element);
    key.extend_from_slice(&key_part[star + 1..]);
    Some((key, field))
}

/// A key a pattern names: (element position, key, hash field).
type Lookup = (usize, Vec<u8>, Option<Vec<u8>>);

/// Values for `pattern` applied to every element ("#" is the element).
async fn lookup_all(client: &Client, pattern: &[u8], elements: &[Vec<u8>]) -> Vec<Option<Vec<u8>>> {
    if pattern == b"#" {
        return elements.iter().map(|e| Some(e.clone())).collect();
    }
    let mut by_shard: BTreeMap<usize, Vec<Lookup>> = BTreeMap::new();
    for (i, e) in elements.iter().enumerate() {
        if let Some((key, field)) = substitute(pattern, e) {
            by_shard.entry(client.shard.owner(&key)).or_default().push((i, key, field));
        }
    }
    let mut out = vec![None; elements.len()];
    let db = client.db();
    for (owner, wanted) in by_shard {
        let found = client
            .shard
            .run_on(owner, move |sh| {
                let mut ks = sh.ks.borrow_mut();
                let now = sh.now();
                wanted
                    .into_iter()
                    .map(|(i, key, field)| {
                        let v = ks.dbs[db].get(&key, now).and_then(|e| match (&e.value, &field) {
                            (Value::Str(s), None) => Some(s.as_bytes().into_owned()),
                            (Value::Hash(h), Some(f)) => h.get(f).map(|v| v.to_vec()),
                            _ => None,
                        });
                        (i, v)
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        for (i, v) in found {
            out[i] = v;
        }
    }
    out
}

/// What the source is: its elements' own order matters for the output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    List,
    Set,
    SortedSet,
}

/// The elements of the source, and what it is.
type Elements = (Vec<Vec<u8>>, Source);

fn read_source(ctx: &mut super::Ctx, key: &[u8]) -> Result<Elements, CmdError> {
    match ctx.read(key) {
        None => Ok((Vec::new(), Source::List)),
        Some(e) => match &e.value {
            Value::List(l) => Ok((l.iter().map(|x| x.to_vec()).collect(), Source::List)),
            Value::Set(s) => Ok((s.members().iter().map(|x| x.to_vec()).collect(), Source::Set)),
            Value::ZSet(z) => {
                Ok((z.range(0, z.len()).into_iter().map(|(_, m)| m.to_vec()).collect(), Source::SortedSet))
            }
            _ => Err(CmdError::WrongType),
        },
    }
}

/// The keys the BY and GET patterns name for `elements`.
fn pattern_keys(o: &SortOptions, elements: &[Vec<u8>]) -> BTreeSet<Key> {
    let by = o.by.iter().filter(|_| !o.dont_sort);
    let patterns: Vec<&Vec<u8>> = by.chain(o.gets.iter().filter(|g| g.as_slice() != b"#")).collect();
    let mut keys = BTreeSet::new();
    for p in patterns {
        keys.extend(elements.iter().filter_map(|e| substitute(p, e)).map(|(k, _)| Key::new(&k)));
    }
    keys
}

/// Locks the source, the destination and the pattern keys, and reads the
/// source under the locks; returns the held transaction and the elements.
async fn lock_and_read(client: &Client, o: &SortOptions, source: &Key) -> (Tx, Result<Elements, CmdError>) {
    let db = client.db();
    let mut pattern_locked = BTreeSet::new();
    // Bounded: each retry locks a strict superset of the keys before; after
    // four rounds the sort goes on with what it holds.
    let mut attempt = 0;
    loop {
        let mut locked: Vec<&[u8]> = vec![source];
        locked.extend(o.store.as_deref());
        locked.extend(pattern_locked.iter().map(|k: &Key| &k[..]));
        let tx = Tx::lock(client, db, locked.into_iter()).await;
        let read = tx.on(client, db, source, read_source).await;
        let needed = match &read {
            Ok((elements, _)) => pattern_keys(o, elements),
            Err(_) => BTreeSet::new(),
        };
        attempt += 1;
        if needed.is_subset(&pattern_locked) || attempt == 4 {
            return (tx, read);
        }
        tx.unlock().await;
        // Read again from scratch: the retried read is the one that counts.
        client.steps.take();
        pattern_locked.extend(needed);
    }
}

async fn sort_generic(client: &mut Client, args: Args<'_>, read_only: bool) -> CmdResult {
    let o = parse(args, read_only)?;
    let db = client.db();
    let source = Key::new(args.get(1));
    let (tx, read) = lock_and_read(client, &o, &source).await;
    let result = async {
        let (elements, source) = read?;
        // A set has no order of its own: where the output must repeat (it
        // is stored, or a script's), BY <constant> sorts it as ALPHA would.
        let by_member = o.dont_sort && source == Source::Set && (o.store.is_some() || client.in_script);
        let (dont_sort, alpha, by) =
            if by_member { (false, true, None) } else { (o.dont_sort, o.alpha, o.by.as_ref()) };
        let mut order: Vec<usize> = (0..elements.len()).collect();
        if !dont_sort {
            let keys: Vec<Option<Vec<u8>>> = match by {
                Some(p) => lookup_all(client, p, &elements).await,
                None => elements.iter().map(|e| Some(e.clone())).collect(),
            };
            if alpha {
                order.sort_by(|&a, &b| {
                    let c = match (&keys[a], &keys[b]) {
                        (None, None) => std::cmp::Ordering::Equal,
                        (None, Some(_)) => std::cmp::Ordering::Less,
                        (Some(_), None) => std::cmp::Ordering::Greater,
                        (Some(x), Some(y)) => x.cmp(y),
                    };
                    // Redis breaks no ties in ALPHA mode; the stable sort
                    // keeps the source order for equal keys.
                    if o.desc { c.reverse() } else { c }
                });
            } else {
                let scores = keys
                    .iter()
                    .map(|k| match k {
                        None => Ok(0.0),
                        Some(v) => parse_f64(v)
                            .ok_or_else(|| CmdError::err("One or more scores can't be converted into double")),
                    })
                    .collect::<Result<Vec<f64>, CmdError>>()?;
                order.sort_by(|&a, &b| {
                    let c = scores[a].total_cmp(&scores[b]).then_with(|| elements[a].cmp(&elements[b]));
                    if o.desc { c.reverse() } else { c }
                });
            }
        } else if o.desc && source == Source::SortedSet {
            order.reverse();
        }
        if let Some((offset, count)) = o.limit {
            let start = offset.max(0) as usize;
            let count = if count < 0 { usize::MAX } else { count as usize };
            order = order.into_iter().skip(start).take(count).collect();
        }
        let picked: Vec<Vec<u8>> = order.iter().map(|&i| elements[i].clone()).collect();
        let values: Vec<Option<Vec<u8>>> = if o.gets.is_empty() {
            picked.into_iter().map(Some).collect()
        } else {
            let mut columns = Vec::with_capacity(o.gets.len());
            for g in &o.gets {
                columns.push(lookup_all(client, g, &picked).await);
            }
            (0..picked.len()).flat_map(|i| columns.iter().map(move |c| c[i].clone())).collect()
        };
        match &o.store {
            None => Ok(Reply::Array(values.into_iter().map(|v| v.map_or(Reply::Null, |v| Reply::bulk(&v))).collect())),
            Some(dst) => {
                let n = values.len();
                tx.on(client, db, dst, move |ctx, k| {
                    let now = ctx.now;
                    if values.is_empty() {
                        if ctx.db().remove(k, now).is_some() {
                            ctx.event(GENERIC, "del", k);
                            ctx.changed(1);
                        }
                    } else {
                        let limits = super::lists::limits(ctx);
                        let mut l = List::default();
                        values
                            .iter()
                            .for_each(|v| l.push(crate::storage::End::Right, v.as_deref().unwrap_or(b""), limits));
                        ctx.set(k, l.wrap(), 0);
                        ctx.event(LIST, "sortstore", k);
                        ctx.changed(values.len() as u64);
                    }
                })
                .await;
                Ok(Reply::Int(n as i64))
            }
        }
    }
    .await;
    tx.unlock().await;
    result
}

/// SORT's key and its STORE destination (the last STORE counts, as in
/// Redis's sortGetKeys; BY, GET and LIMIT arguments are skipped).
fn sort_keys(args: Args) -> Vec<usize> {
    let mut keys = vec![1];
    let mut j = 2;
    while j < args.len() {
        let skip = match args.keyword(j).as_str() {
            "LIMIT" => 2,
            "GET" | "BY" => 1,
            "STORE" if j + 1 < args.len() => {
                keys.truncate(1);
                keys.push(j + 1);
                1
            }
            _ => 0,
        };
        j += skip + 1;
    }
    keys
}

fn sort<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(sort_generic(client, args, false))
}

fn sort_ro<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(sort_generic(client, args, true))
}

pub(super) const TABLE: &[Spec] = &[
    Spec::new("sort", -2, WRITE | DENYOOM, Keys::Find(sort_keys), Handler::Async(sort)).writing(Writes::AfterFirst),
    Spec::new("sort_ro", -2, READONLY, Keys::Range(1, 1, 1), Handler::Async(sort_ro)),
];

#[cfg(test)]
mod tests {
    use super::{sort_keys, substitute};
    use crate::command::OwnedArgs;

    #[test]
    fn patterns() {
        assert_eq!(substitute(b"w_*", b"1"), Some((b"w_1".to_vec(), None)));
        assert_eq!(substitute(b"h_*->f", b"1"), Some((b"h_1".to_vec(), Some(b"f".to_vec()))));
        assert_eq!(substitute(b"h_*->", b"1"), Some((b"h_1->".to_vec(), None)));
        assert_eq!(substitute(b"fixed", b"1"), None);
    }

    #[test]
    fn store_destination() {
        let keys = |words: &[&str]| {
            let mut o = OwnedArgs::default();
            words.iter().for_each(|w| o.push(w.as_bytes()));
            sort_keys(o.args())
        };
        assert_eq!(keys(&["sort", "k"]), vec![1]);
        assert_eq!(keys(&["sort", "k", "STORE", "d"]), vec![1, 3]);
        assert_eq!(keys(&["sort", "k", "GET", "store", "LIMIT", "0", "1", "store", "d"]), vec![1, 8]);
        assert_eq!(keys(&["sort", "k", "store", "a", "store", "b"]), vec![1, 5]);
    }
}
