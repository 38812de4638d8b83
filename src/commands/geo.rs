//! Geo commands (geo.c): points are sorted set members scored with
//! their 52-bit geohash (`storage::geohash`). GEOADD is a ZADD of those
//! scores and propagates as one; the searches scan the cells around the
//! centre and filter by exact distance, with Redis's reply formats (4
//! decimal distances, long-double coordinates).

use futures::future::LocalBoxFuture;

use super::long_double::human;
use super::zsets::{store_zset, zadd};
use super::{Handler, Spec};
use crate::command::{Args, Ctx, DENYOOM, Keys, OwnedArgs, READONLY, WRITE, Writes};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::transaction::Tx;
use crate::storage::geohash::{self, Search, Shape};
use crate::storage::{Key, SmallBytes, ZSet};

fn lon_lat(args: Args, i: usize) -> Result<(f64, f64), CmdError> {
    let (lon, lat) = (args.float(i)?, args.float(i + 1)?);
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon) || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(CmdError::err(format!("invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

/// Metres per unit.
fn unit(args: Args, i: usize) -> Result<f64, CmdError> {
    match args.keyword(i).as_str() {
        "M" => Ok(1.0),
        "KM" => Ok(1000.0),
        "FT" => Ok(0.3048),
        "MI" => Ok(1609.34),
        _ => Err(CmdError::err("unsupported unit provided. please use M, KM, FT, MI")),
    }
}

fn number(args: Args, i: usize, what: &str) -> Result<f64, CmdError> {
    args.float(i).map_err(|_| CmdError::err(format!("need numeric {what}")))
}

/// A radius and its unit at `i`.
fn radius(args: Args, i: usize) -> Result<(Shape, f64), CmdError> {
    let r = number(args, i, "radius")?;
    if r < 0.0 {
        return Err(CmdError::err("radius cannot be negative"));
    }
    Ok((Shape::Radius(r), unit(args, i + 1)?))
}

/// A box's width, height and unit at `i`.
fn rectangle(args: Args, i: usize) -> Result<(Shape, f64), CmdError> {
    let (w, h) = (number(args, i, "width")?, number(args, i + 1, "height")?);
    if w < 0.0 || h < 0.0 {
        return Err(CmdError::err("height or width cannot be negative"));
    }
    Ok((Shape::Box(w, h), unit(args, i + 2)?))
}

fn member_point(z: &ZSet, member: &[u8]) -> Result<(f64, f64), CmdError> {
    z.score(member)
        .and_then(geohash::decode_score)
        .ok_or_else(|| CmdError::err("could not decode requested zset member"))
}

fn distance_reply(d: f64) -> Reply {
    Reply::bulk(geohash::format_distance(d).as_bytes())
}

fn coords_reply((lon, lat): (f64, f64)) -> Reply {
    Reply::Array(vec![Reply::DoubleText(human(lon)), Reply::DoubleText(human(lat))])
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]: a ZADD of
/// the members' geohash scores.
fn geoadd(ctx: &mut Ctx, args: Args) -> CmdResult {
    let mut at = 2;
    let (mut nx, mut xx) = (false, false);
    while at < args.len() {
        match args.keyword(at).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "CH" => {}
            _ => break,
        }
        at += 1;
    }
    if !(args.len() - at).is_multiple_of(3) || (nx && xx) {
        return Err(CmdError::Syntax);
    }
    let mut zadd_args = OwnedArgs::default();
    zadd_args.push(b"ZADD");
    (1..at).for_each(|i| zadd_args.push(args.get(i)));
    for i in (at..args.len()).step_by(3) {
        let (lon, lat) = lon_lat(args, i)?;
        let score = geohash::score_of(lon, lat).unwrap_or(0);
        zadd_args.push(itoa::Buffer::new().format(score).as_bytes());
        zadd_args.push(args.get(i + 2));
    }
    let reply = zadd(ctx, zadd_args.args())?;
    // It propagates as the ZADD it amounts to, as Redis's does.
    let words: Vec<&[u8]> = zadd_args.args().iter().collect();
    ctx.propagate(&words);
    Ok(reply)
}

fn geodist(ctx: &mut Ctx, args: Args) -> CmdResult {
    let to_m = match args.len() {
        4 => 1.0,
        5 => unit(args, 4)?,
        _ => return Err(CmdError::Syntax),
    };
    let Some(z) = ctx.read_as::<ZSet>(args.get(1))? else { return Ok(Reply::Null) };
    let point = |m: &[u8]| z.score(m).and_then(geohash::decode_score);
    Ok(match (point(args.get(2)), point(args.get(3))) {
        (Some(a), Some(b)) => distance_reply(geohash::distance(a.0, a.1, b.0, b.1) / to_m),
        _ => Reply::Null,
    })
}

fn geohash_cmd(ctx: &mut Ctx, args: Args) -> CmdResult {
    let z = ctx.read_as::<ZSet>(args.get(1))?;
    let hashes = (2..args.len()).map(|i| {
        match z.as_ref().and_then(|z| z.score(args.get(i))).and_then(geohash::geohash_string) {
            Some(h) => Reply::bulk(&h),
            None => Reply::Null,
        }
    });
    Ok(Reply::Array(hashes.collect()))
}

fn geopos(ctx: &mut Ctx, args: Args) -> CmdResult {
    let z = ctx.read_as::<ZSet>(args.get(1))?;
    let points =
        (2..args.len()).map(|i| match z.as_ref().and_then(|z| z.score(args.get(i))).and_then(geohash::decode_score) {
            Some(p) => coords_reply(p),
            None => Reply::NullArray,
        });
    Ok(Reply::Array(points.collect()))
}

/// Which search command runs: where its centre and shape come from, and
/// whether it may store.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// GEORADIUS[_RO] key lon lat radius unit
    Radius { store: bool },
    /// GEORADIUSBYMEMBER[_RO] key member radius unit
    ByMember { store: bool },
    /// GEOSEARCH key FROM... BY...
    Search,
    /// GEOSEARCHSTORE dst src FROM... BY...
    SearchStore,
}

impl Kind {
    fn source(self) -> usize {
        if self == Kind::SearchStore { 2 } else { 1 }
    }
}

/// A point a search found.
struct Found {
    member: SmallBytes,
    score: f64,
    point: (f64, f64),
    /// In the search's unit once sorted.
    dist: f64,
}

/// What a search answers: a reply, or the members (and scores) to store.
enum Outcome {
    Reply(Reply),
    Store { dst: Key, items: Vec<(f64, SmallBytes)>, geosearch: bool },
}

/// The points of `z` inside `search`, scanning its cells in Redis's
/// order; with `limit` (ANY), it stops once it has that many.
fn points_within(z: &ZSet, search: &Search, limit: usize) -> Vec<Found> {
    let mut found = Vec::new();
    for cell in search.cells() {
        if limit > 0 && found.len() >= limit {
            break;
        }
        let (min, max) = cell.score_range();
        let start = z.count_while(&|s, _| s < min);
        for (score, member) in z.iter_from(start) {
            if score >= max {
                break;
            }
            if let Some(point) = geohash::decode_score(score)
                && let Some(dist) = search.within(point.0, point.1)
            {
                found.push(Found { member: member.into(), score, point, dist });
            }
            if limit > 0 && found.len() >= limit {
                break;
            }
        }
    }
    found
}

/// Redis's georadiusGeneric: every search command's parsing, checks (in
/// Redis's order), search and reply.
fn search(ctx: &mut Ctx, args: Args, kind: Kind) -> Result<Outcome, CmdError> {
    let src = args.get(kind.source());
    let z = ctx.read_as::<ZSet>(src)?;
    let mut center = None;
    let mut shape = None;
    let base = match kind {
        Kind::Radius { .. } => {
            center = Some(lon_lat(args, 2)?);
            shape = Some(radius(args, 4)?);
            6
        }
        Kind::ByMember { .. } => {
            if let Some(z) = z.as_deref() {
                center = Some(member_point(z, args.get(2))?);
                shape = Some(radius(args, 3)?);
            }
            5
        }
        Kind::Search => 2,
        Kind::SearchStore => 3,
    };
    let geosearch = matches!(kind, Kind::Search | Kind::SearchStore);
    let may_store = matches!(kind, Kind::Radius { store: true } | Kind::ByMember { store: true });
    let mut store: Option<Key> = (kind == Kind::SearchStore).then(|| args.get(1).into());
    let (mut storedist, mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false, false);
    let (mut from_member, mut from_lonlat) = (false, false);
    let mut desc = None;
    let mut count = 0usize;
    let mut i = base;
    while i < args.len() {
        let left = args.len() - 1 - i;
        match args.keyword(i).as_str() {
            "WITHDIST" => withdist = true,
            "WITHHASH" => withhash = true,
            "WITHCOORD" => withcoord = true,
            "ANY" => any = true,
            "ASC" => desc = Some(false),
            "DESC" => desc = Some(true),
            "COUNT" if left >= 1 => {
                let n = args.int(i + 1)?;
                if n <= 0 {
                    return Err(CmdError::err("COUNT must be > 0"));
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
                i += 1;
            }
            w @ ("STORE" | "STOREDIST") if left >= 1 && may_store => {
                store = Some(args.get(i + 1).into());
                storedist = w == "STOREDIST";
                i += 1;
            }
            "STOREDIST" if kind == Kind::SearchStore => storedist = true,
            "FROMMEMBER" if left >= 1 && geosearch && !from_lonlat => {
                if let Some(z) = z.as_deref() {
                    center = Some(member_point(z, args.get(i + 1))?);
                }
                from_member = true;
                i += 1;
            }
            "FROMLONLAT" if left >= 2 && geosearch && !from_member => {
                center = Some(lon_lat(args, i + 1)?);
                from_lonlat = true;
                i += 2;
            }
            "BYRADIUS" if left >= 2 && geosearch && !matches!(shape, Some((Shape::Box(..), _))) => {
                shape = Some(radius(args, i + 1)?);
                i += 2;
            }
            "BYBOX" if left >= 3 && geosearch && !matches!(shape, Some((Shape::Radius(_), _))) => {
                shape = Some(rectangle(args, i + 1)?);
                i += 3;
            }
            _ => return Err(CmdError::Syntax),
        }
        i += 1;
    }
    let name = || args.str(0).to_ascii_lowercase();
    if store.is_some() && (withdist || withhash || withcoord) {
        let what = if kind == Kind::SearchStore { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return Err(CmdError::err(format!("{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")));
    }
    if geosearch && !(from_member || from_lonlat) {
        return Err(CmdError::err(format!("exactly one of FROMMEMBER or FROMLONLAT can be specified for {}", name())));
    }
    if geosearch && shape.is_none() {
        return Err(CmdError::err(format!("exactly one of BYRADIUS and BYBOX can be specified for {}", name())));
    }
    if any && count == 0 {
        return Err(CmdError::err("the ANY argument requires COUNT argument"));
    }
    let (Some(z), Some((lon, lat)), Some((shape, to_m))) = (z, center, shape) else {
        // No source: nothing found (a store deletes its destination).
        return Ok(match store {
            Some(dst) => Outcome::Store { dst, items: Vec::new(), geosearch },
            None => Outcome::Reply(Reply::Array(Vec::new())),
        });
    };
    // COUNT picks the nearest: it sorts unless ANY says any will do.
    if count > 0 && desc.is_none() && !any {
        desc = Some(false);
    }
    let query = Search { lon, lat, shape, to_m };
    let mut found = points_within(z, &query, if any { count } else { 0 });
    match desc {
        Some(false) => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Some(true) => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
        None => {}
    }
    if count > 0 {
        found.truncate(count);
    }
    found.iter_mut().for_each(|f| f.dist /= to_m);
    if let Some(dst) = store {
        let items = found.into_iter().map(|f| (if storedist { f.dist } else { f.score }, f.member)).collect();
        return Ok(Outcome::Store { dst, items, geosearch });
    }
    let plain = !(withdist || withhash || withcoord);
    let replies = found.into_iter().map(|f| {
        if plain {
            return Reply::bulk(&f.member);
        }
        let mut item = vec![Reply::bulk(&f.member)];
        if withdist {
            item.push(distance_reply(f.dist));
        }
        if withhash {
            item.push(Reply::Int(f.score as i64));
        }
        if withcoord {
            item.push(coords_reply(f.point));
        }
        Reply::Array(item)
    });
    Ok(Outcome::Reply(Reply::Array(replies.collect())))
}

/// The read-only searches run where their key lives.
fn search_here(ctx: &mut Ctx, args: Args, kind: Kind) -> CmdResult {
    match search(ctx, args, kind)? {
        Outcome::Reply(r) => Ok(r),
        Outcome::Store { .. } => Err(CmdError::Syntax),
    }
}

fn georadius_ro(ctx: &mut Ctx, args: Args) -> CmdResult {
    search_here(ctx, args, Kind::Radius { store: false })
}

fn georadiusbymember_ro(ctx: &mut Ctx, args: Args) -> CmdResult {
    search_here(ctx, args, Kind::ByMember { store: false })
}

fn geosearch(ctx: &mut Ctx, args: Args) -> CmdResult {
    search_here(ctx, args, Kind::Search)
}

/// A search that may store: it runs on the source's owner, and the
/// result goes to the destination under the same transaction.
async fn search_and_store(client: &mut Client, args: Args<'_>, kind: Kind) -> CmdResult {
    let db = client.db();
    let keys: Vec<&[u8]> = store_keys(args, kind).into_iter().map(|i| args.get(i)).collect();
    let tx = Tx::lock(client, db, keys.into_iter()).await;
    let result = async {
        let mut owned = OwnedArgs::default();
        args.iter().for_each(|a| owned.push(a));
        let src = args.get(kind.source());
        match tx.on(client, db, src, move |ctx, _| search(ctx, owned.args(), kind)).await? {
            Outcome::Reply(r) => Ok(r),
            Outcome::Store { dst, items, geosearch } => {
                let n = items.len();
                let event = if geosearch { "geosearchstore" } else { "georadiusstore" };
                // Redis counts every member stored.
                store_zset(client, &tx, &dst, items, event, n as u64).await;
                Ok(Reply::Int(n as i64))
            }
        }
    }
    .await;
    tx.unlock().await;
    result
}

/// The keys of a storing search: its source, then its destination.
fn store_keys(args: Args, kind: Kind) -> Vec<usize> {
    if kind == Kind::SearchStore {
        return vec![2, 1];
    }
    let base = if matches!(kind, Kind::Radius { .. }) { 6 } else { 5 };
    let mut keys = vec![1];
    let mut i = base;
    while i < args.len() {
        if (args.is(i, "STORE") || args.is(i, "STOREDIST")) && i + 1 < args.len() {
            keys.truncate(1);
            keys.push(i + 1);
            i += 1;
        }
        i += 1;
    }
    keys
}

fn georadius_keys(args: Args) -> Vec<usize> {
    store_keys(args, Kind::Radius { store: true })
}

fn georadiusbymember_keys(args: Args) -> Vec<usize> {
    store_keys(args, Kind::ByMember { store: true })
}

fn georadius<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(search_and_store(client, args, Kind::Radius { store: true }))
}

fn georadiusbymember<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(search_and_store(client, args, Kind::ByMember { store: true }))
}

fn geosearchstore<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(search_and_store(client, args, Kind::SearchStore))
}

const KEY1: Keys = Keys::Range(1, 1, 1);

pub(super) const TABLE: &[Spec] = &[
    Spec::new("geoadd", -5, WRITE | DENYOOM, KEY1, Handler::Data(geoadd)),
    Spec::new("geodist", -4, READONLY, KEY1, Handler::Data(geodist)),
    Spec::new("geohash", -2, READONLY, KEY1, Handler::Data(geohash_cmd)),
    Spec::new("geopos", -2, READONLY, KEY1, Handler::Data(geopos)),
    Spec::new("georadius", -6, WRITE | DENYOOM, Keys::Find(georadius_keys), Handler::Async(georadius))
        .writing(Writes::AfterFirst),
    Spec::new(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM,
        Keys::Find(georadiusbymember_keys),
        Handler::Async(georadiusbymember),
    )
    .writing(Writes::AfterFirst),
    Spec::new("georadius_ro", -6, READONLY, KEY1, Handler::Data(georadius_ro)),
    Spec::new("georadiusbymember_ro", -5, READONLY, KEY1, Handler::Data(georadiusbymember_ro)),
    Spec::new("geosearch", -7, READONLY, KEY1, Handler::Data(geosearch)),
    Spec::new("geosearchstore", -8, WRITE | DENYOOM, Keys::Range(1, 2, 1), Handler::Async(geosearchstore))
        .writing(Writes::First),
];
