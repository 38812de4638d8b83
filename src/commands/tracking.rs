//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO: client-side
//! caching's commands (the tables and messages are `server::tracking`).

use bytes::Bytes;

use crate::command::Args;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::tracking::Mode;

/// What CLIENT TRACKING's options asked for.
#[derive(Default)]
struct Options {
    redirect: Option<(u64, usize)>,
    bcast: bool,
    optin: bool,
    optout: bool,
    noloop: bool,
    prefixes: Vec<Bytes>,
}

/// CLIENT TRACKING (ON|OFF) [REDIRECT id] [BCAST] [PREFIX p ...] [OPTIN]
/// [OPTOUT] [NOLOOP], checked in Redis's order and with its errors.
pub(super) async fn tracking(client: &mut Client, args: Args<'_>) -> CmdResult {
    let mut o = Options::default();
    let mut j = 3;
    while j < args.len() {
        let more = j + 1 < args.len();
        match args.keyword(j).as_str() {
            "REDIRECT" if more => {
                j += 1;
                if o.redirect.is_some() {
                    return Err(CmdError::err("A client can only redirect to a single other client"));
                }
                let id = args.int(j)?;
                let shard = client_shard(client, id).await;
                o.redirect = Some((
                    id as u64,
                    shard.ok_or_else(|| CmdError::err("The client ID you want redirect to does not exist"))?,
                ));
            }
            "BCAST" => o.bcast = true,
            "OPTIN" => o.optin = true,
            "OPTOUT" => o.optout = true,
            "NOLOOP" => o.noloop = true,
            "PREFIX" if more => {
                j += 1;
                o.prefixes.push(Bytes::copy_from_slice(args.get(j)));
            }
            _ => return Err(CmdError::Syntax),
        }
        j += 1;
    }
    match args.keyword(2).as_str() {
        "ON" => {
            check(&client.meta.tracking.borrow(), &o)?;
            enable(client, o).await;
        }
        "OFF" => client.disable_tracking().await,
        _ => return Err(CmdError::Syntax),
    }
    Ok(Reply::Ok)
}

/// The shard of the connection of client `id`, if it exists.
async fn client_shard(client: &Client, id: i64) -> Option<usize> {
    let id = u64::try_from(id).ok()?;
    let found = client.shard.broadcast(move |sh| sh.clients.borrow().contains_key(&id)).await;
    found.iter().position(|&f| f)
}

/// Whether the options fit together and with the mode the client is in.
fn check(mode: &Mode, o: &Options) -> Result<(), CmdError> {
    if !o.bcast && !o.prefixes.is_empty() {
        return Err(CmdError::err("PREFIX option requires BCAST mode to be enabled"));
    }
    if mode.on && mode.bcast != o.bcast {
        return Err(CmdError::err(
            "You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if o.bcast && (o.optin || o.optout) {
        return Err(CmdError::err("OPTIN and OPTOUT are not compatible with BCAST"));
    }
    if o.optin && o.optout {
        return Err(CmdError::err("You can't specify both OPTIN mode and OPTOUT mode"));
    }
    if (o.optin && mode.optout) || (o.optout && mode.optin) {
        return Err(CmdError::err(
            "You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if o.bcast {
        check_prefixes(&mode.prefixes, &o.prefixes)?;
    }
    Ok(())
}

/// A client's prefixes must not overlap (one a prefix of another), with
/// those it has or among the new ones.
fn check_prefixes(existing: &[Bytes], new: &[Bytes]) -> Result<(), CmdError> {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for (i, p) in new.iter().enumerate() {
        if let Some(old) = existing.iter().find(|old| overlap(old, p)) {
            return Err(CmdError::err(format!(
                "Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                text(p),
                text(old)
            )));
        }
        if let Some(other) = new[i + 1..].iter().find(|other| overlap(p, other)) {
            return Err(CmdError::err(format!(
                "Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                text(p),
                text(other)
            )));
        }
    }
    Ok(())
}

/// Turns tracking on (or changes its options), as Redis's enableTracking:
/// BCAST prefixes add to those the client has.
async fn enable(client: &mut Client, o: Options) {
    let counts = &client.shard.server.tracking;
    let mut mode = client.meta.tracking.borrow().clone();
    if !mode.on {
        counts.clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let (redirect, redirect_shard) = o.redirect.unwrap_or((0, 0));
    let new_prefixes = match (o.bcast, o.prefixes.is_empty()) {
        (false, _) => Vec::new(),
        (true, true) => vec![Bytes::new()],
        (true, false) => o.prefixes,
    };
    let new_prefixes: Vec<Bytes> = new_prefixes.into_iter().filter(|p| !mode.prefixes.contains(p)).collect();
    if o.bcast && !mode.bcast {
        counts.bcast_clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    mode = Mode {
        on: true,
        bcast: o.bcast,
        optin: o.optin,
        optout: o.optout,
        noloop: o.noloop,
        caching: mode.caching,
        broken_redirect: false,
        redirect,
        redirect_shard,
        prefixes: mode.prefixes,
    };
    mode.prefixes.extend(new_prefixes.iter().cloned());
    *client.meta.tracking.borrow_mut() = mode;
    if !new_prefixes.is_empty() {
        let reader = client.tracker();
        client.shard.broadcast(move |sh| sh.bcast_prefixes(reader, &new_prefixes, true)).await;
    }
}

/// CLIENT CACHING YES|NO: the next command's keys are (OPTIN) or are
/// not (OPTOUT) remembered.
pub(super) fn caching(client: &mut Client, args: Args) -> CmdResult {
    let mut mode = client.meta.tracking.borrow_mut();
    if !mode.on {
        return Err(CmdError::err(
            "CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    }
    match args.keyword(2).as_str() {
        "YES" if mode.optin => mode.caching = true,
        "YES" => return Err(CmdError::err("CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")),
        "NO" if mode.optout => mode.caching = true,
        "NO" => return Err(CmdError::err("CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")),
        _ => return Err(CmdError::Syntax),
    }
    Ok(Reply::Ok)
}

/// CLIENT GETREDIR: the client invalidations go to (0: none, -1: off).
pub(super) fn getredir(client: &Client) -> CmdResult {
    let mode = client.meta.tracking.borrow();
    Ok(Reply::Int(if mode.on { mode.redirect as i64 } else { -1 }))
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes.
pub(super) fn trackinginfo(client: &Client) -> CmdResult {
    let mode = client.meta.tracking.borrow();
    let mut flags = vec![if mode.on { "on" } else { "off" }];
    let set = [
        (mode.bcast, "bcast"),
        (mode.optin, "optin"),
        (mode.optin && mode.caching, "caching-yes"),
        (mode.optout, "optout"),
        (mode.optout && mode.caching, "caching-no"),
        (mode.noloop, "noloop"),
        (mode.broken_redirect, "broken_redirect"),
    ];
    flags.extend(set.iter().filter(|(on, _)| *on).map(|&(_, name)| name));
    Ok(Reply::Map(vec![
        (Reply::text("flags"), Reply::Set(flags.into_iter().map(Reply::text).collect())),
        (Reply::text("redirect"), Reply::Int(if mode.on { mode.redirect as i64 } else { -1 })),
        (Reply::text("prefixes"), Reply::Array(mode.prefixes.iter().map(|p| Reply::Bulk(p.clone())).collect())),
    ]))
}
