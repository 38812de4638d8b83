//! PFADD PFCOUNT PFMERGE over Redis-format HLL strings (storage/hll.rs).
//! PFCOUNT and PFMERGE read and write their keys under one transaction,
//! wherever the keys live.

use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{ADMIN, Args, Ctx, DENYOOM, FAST, Keys, MAY_REPLICATE, READONLY, WRITE, Writes};
use crate::config::Hot;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::events::STRING;
use crate::storage::hll::{self, HllError};
use crate::storage::{Key, Str, Value};

impl From<HllError> for CmdError {
    fn from(e: HllError) -> CmdError {
        match e {
            HllError::NotHll => CmdError::Raw("WRONGTYPE Key is not a valid HyperLogLog string value.".into()),
            HllError::Corrupt => CmdError::Raw("INVALIDOBJ Corrupted HLL object detected".into()),
        }
    }
}

fn max_sparse(ctx: &Ctx) -> usize {
    Hot::get(&ctx.hot.hll_sparse_max_bytes) as usize
}

/// The HLL bytes at `key` for writing (validated), if any.
fn hll_mut<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c mut Vec<u8>>, CmdError> {
    let Some(s) = ctx.lookup_str(key)? else { return Ok(None) };
    let s = s.value.as_str_mut().ok_or(CmdError::WrongType)?;
    if matches!(s, Str::Int(_)) {
        return Err(HllError::NotHll.into());
    }
    let raw = s.make_raw();
    hll::validate(raw)?;
    Ok(Some(raw))
}

/// A validated copy of the HLL at `key`, if any (a read: a miss counts).
fn hll_copy(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
    if ctx.read(key).is_none() {
        return Ok(None);
    }
    Ok(hll_mut(ctx, key)?.map(|h| h.clone()))
}

fn pfadd(ctx: &mut Ctx, args: Args) -> CmdResult {
    let key = args.get(1);
    let max = max_sparse(ctx);
    // As Redis counts changes: the creation, and each register raised.
    let mut updated = 0;
    if hll_mut(ctx, key)?.is_none() {
        ctx.set(key, Value::Str(Str::raw(hll::create())), 0);
        updated += 1;
    }
    let h = hll_mut(ctx, key)?.expect("created above");
    for i in 2..args.len() {
        updated += u64::from(hll::add(h, args.get(i), max)?);
    }
    if updated > 0 {
        hll::invalidate_cache(h);
        ctx.event(STRING, "pfadd", key);
    }
    ctx.changed(updated);
    Ok(Reply::Int((updated > 0) as i64))
}

/// PFCOUNT of one key: uses and refreshes the cached value.
fn count_one(ctx: &mut Ctx, key: &[u8]) -> Result<i64, CmdError> {
    if ctx.read(key).is_none() {
        return Ok(0);
    }
    let Some(h) = hll_mut(ctx, key)? else {
        return Ok(0);
    };
    let refreshed = hll::cache_stale(h);
    let n = hll::count(h)?;
    // Refreshing the cached cardinality changes the value: a WATCH on
    // the key breaks and PFCOUNT propagates, as in Redis.
    ctx.changed(refreshed as u64);
    Ok(n as i64)
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key: Redis's HLL inspection.
fn pfdebug(ctx: &mut Ctx, args: Args) -> CmdResult {
    let sub = args.keyword(1);
    let key = args.get(2);
    if ctx.lookup(key).is_none() {
        return Err(CmdError::err("The specified key does not exist"));
    }
    let h = hll_mut(ctx, key)?.expect("looked up above");
    if !matches!(sub.as_str(), "GETREG" | "DECODE" | "ENCODING" | "TODENSE") {
        return Err(CmdError::err(format!("Unknown PFDEBUG subcommand '{}'", args.str(1))));
    }
    if args.len() != 3 {
        return Err(CmdError::err(format!("Wrong number of arguments for the '{}' subcommand", args.str(1))));
    }
    Ok(match sub.as_str() {
        "GETREG" => {
            // As in Redis, reading the registers leaves the HLL dense.
            let converted = hll::make_dense(h)?;
            ctx.changed(converted as u64);
            let regs = hll::registers(hll_mut(ctx, key)?.expect("looked up above"))?;
            Reply::Array(regs.into_iter().map(|r| Reply::Int(r as i64)).collect())
        }
        "DECODE" => match hll::decode_sparse(h)? {
            Some(text) => {
                ctx.changed(0);
                Reply::bulk(text.as_bytes())
            }
            None => return Err(CmdError::err("HLL encoding is not sparse")),
        },
        "ENCODING" => {
            let dense = hll::is_dense(h);
            ctx.changed(0);
            Reply::status(if dense { "dense" } else { "sparse" })
        }
        _ => {
            let converted = hll::make_dense(h)?;
            ctx.changed(converted as u64);
            Reply::Int(converted as i64)
        }
    })
}

/// PFSELFTEST: checks the register packing and the estimator's error on
/// both encodings.
fn pfselftest(client: &mut Client, _args: Args) -> CmdResult {
    let failed = |what: String| CmdError::Raw(format!("ERR TESTFAILED {what}"));
    let mut h = hll::create();
    let mut dense = hll::create();
    hll::make_dense(&mut dense)?;
    let limit = Hot::get(&client.shard.server.hot.hll_sparse_max_bytes) as usize;
    for n in 1..=20_000u32 {
        let element = n.to_le_bytes();
        hll::add(&mut h, &element, limit)?;
        hll::add(&mut dense, &element, limit)?;
        if n % 1000 == 0 {
            for (name, s) in [("sparse", &mut h), ("dense", &mut dense)] {
                hll::invalidate_cache(s);
                let estimate = hll::count(s)? as f64;
                let error = (estimate - n as f64).abs() / n as f64;
                // 1.04/sqrt(16384) is 0.8%: 5 standard errors.
                if error > 0.05 {
                    return Err(failed(format!("{name} HLL estimates {estimate} for {n} elements")));
                }
            }
        }
    }
    if hll::registers(&h)? != hll::registers(&dense)? {
        return Err(failed("sparse and dense registers differ".into()));
    }
    Ok(Reply::Ok)
}

/// Reads the HLLs at `keys` on their owners under `tx`.
async fn gather(client: &Client, tx: &Tx, keys: &[Key]) -> Result<Vec<Option<Vec<u8>>>, CmdError> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(tx.on(client, client.db(), k, hll_copy).await?);
    }
    Ok(out)
}

/// PFCOUNT key [key ...]: several keys are merged into a scratch
/// register set, under one transaction wherever they live.
fn pfcount<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let keys: Vec<Key> = (1..args.len()).map(|i| Key::new(args.get(i))).collect();
        let tx = Tx::lock(client, client.db(), keys.iter().map(|k| &**k)).await;
        let result = if let [key] = &keys[..] {
            tx.on(client, client.db(), key, count_one).await.map(Reply::Int)
        } else {
            gather(client, &tx, &keys).await.and_then(|hlls| {
                let mut max = vec![0u8; hll::REGISTER_COUNT];
                for h in hlls.into_iter().flatten() {
                    hll::merge_into(&mut max, &h)?;
                }
                Ok(Reply::Int(hll::count_raw(&max) as i64))
            })
        };
        tx.unlock().await;
        result
    })
}

/// PFMERGE dst [src ...], wherever the keys live.
fn pfmerge<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let keys: Vec<Key> = (1..args.len()).map(|i| Key::new(args.get(i))).collect();
        let tx = Tx::lock(client, client.db(), keys.iter().map(|k| &**k)).await;
        let result = async {
            let mut max = vec![0u8; hll::REGISTER_COUNT];
            let mut dense = false;
            for h in gather(client, &tx, &keys).await?.into_iter().flatten() {
                dense |= hll::is_dense(&h);
                hll::merge_into(&mut max, &h)?;
            }
            tx.on(client, client.db(), &keys[0], move |ctx, k| {
                let limit = max_sparse(ctx);
                if hll_mut(ctx, k)?.is_none() {
                    ctx.set(k, Value::Str(Str::raw(hll::create())), 0);
                }
                hll::store(hll_mut(ctx, k)?.expect("created above"), &max, dense, limit)?;
                ctx.event(STRING, "pfadd", k);
                ctx.changed(1);
                Ok::<_, CmdError>(())
            })
            .await?;
            Ok(Reply::Ok)
        }
        .await;
        tx.unlock().await;
        result
    })
}

pub(super) const TABLE: &[Spec] = &[
    Spec::new("pfadd", -2, WRITE | DENYOOM | FAST, Keys::Range(1, 1, 1), Handler::Data(pfadd)),
    Spec::new("pfcount", -2, READONLY | MAY_REPLICATE, Keys::Range(1, -1, 1), Handler::Async(pfcount)),
    Spec::new("pfmerge", -2, WRITE | DENYOOM, Keys::Range(1, -1, 1), Handler::Async(pfmerge)).writing(Writes::First),
    Spec::new("pfdebug", 3, WRITE | DENYOOM | ADMIN, Keys::Range(2, 2, 1), Handler::Data(pfdebug)),
    Spec::new("pfselftest", 1, ADMIN, Keys::None, Handler::Conn(pfselftest)),
];
