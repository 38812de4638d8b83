//! SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UN- forms, PUBLISH,
//! SPUBLISH, PUBSUB. Delivery is in `server::pubsub`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::future::LocalBoxFuture;

use super::{Handler, Spec};
use crate::command::{Args, CONTAINER, FAST, Keys, LOADING, MAY_REPLICATE, NOSCRIPT, STALE, SUBSCRIBE_MODE};
use crate::pattern::glob_match;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;
use crate::server::pubsub::Kind;

/// Keeps CLIENT LIST's counts in step with the client's subscriptions.
fn confirm(client: &Client, word: &'static str, name: Option<Bytes>, kind: Kind) -> Reply {
    Reply::Push(vec![
        Reply::text(word),
        name.map_or(Reply::Null, Reply::Bulk),
        Reply::Int(client.subs.count(kind) as i64),
    ])
}

fn subscribe(client: &mut Client, args: Args, kind: Kind) -> CmdResult {
    let mut replies = Vec::with_capacity(args.len() - 1);
    for name in args.iter().skip(1) {
        let name = Bytes::copy_from_slice(name);
        if client.subs.of(kind).insert(name.clone()) {
            client.shard.subscribe(kind, &name, client.meta.id);
        }
        replies.push(confirm(client, kind.words().0, Some(name), kind));
    }
    client.publish_sub_counts();
    Ok(Reply::Seq(replies))
}

fn unsubscribe(client: &mut Client, args: Args, kind: Kind) -> CmdResult {
    let names: Vec<Bytes> = if args.len() > 1 {
        args.iter().skip(1).map(Bytes::copy_from_slice).collect()
    } else {
        client.subs.of(kind).iter().cloned().collect()
    };
    let word = kind.words().1;
    if names.is_empty() {
        return Ok(confirm(client, word, None, kind));
    }
    let mut replies = Vec::with_capacity(names.len());
    for name in names {
        if client.subs.of(kind).swap_remove(&name) {
            client.shard.unsubscribe(kind, &name, client.meta.id);
        }
        replies.push(confirm(client, word, Some(name), kind));
    }
    client.publish_sub_counts();
    Ok(Reply::Seq(replies))
}

fn sub(client: &mut Client, args: Args) -> CmdResult {
    subscribe(client, args, Kind::Channel)
}

fn psub(client: &mut Client, args: Args) -> CmdResult {
    subscribe(client, args, Kind::Pattern)
}

fn ssub(client: &mut Client, args: Args) -> CmdResult {
    subscribe(client, args, Kind::Shard)
}

fn unsub(client: &mut Client, args: Args) -> CmdResult {
    unsubscribe(client, args, Kind::Channel)
}

fn punsub(client: &mut Client, args: Args) -> CmdResult {
    unsubscribe(client, args, Kind::Pattern)
}

fn sunsub(client: &mut Client, args: Args) -> CmdResult {
    unsubscribe(client, args, Kind::Shard)
}

/// Delivers on every shard that has subscribers; returns the receivers.
pub async fn publish_everywhere(client: &Client, sharded: bool, channel: Bytes, message: Bytes) -> usize {
    let shard = &client.shard;
    let mut received = 0;
    for (s, count) in shard.server.subscriptions.iter().enumerate() {
        if count.load(Ordering::Relaxed) == 0 {
            continue;
        }
        if s == shard.id {
            received += shard.deliver(sharded, &channel, &message);
        } else {
            let (c, m) = (channel.clone(), message.clone());
            received += shard.run_on(s, move |sh| sh.deliver(sharded, &c, &m)).await;
        }
    }
    received
}

fn publish_with<'a>(client: &'a mut Client, args: Args<'a>, sharded: bool) -> LocalBoxFuture<'a, CmdResult> {
    let (channel, message) = (Bytes::copy_from_slice(args.get(1)), Bytes::copy_from_slice(args.get(2)));
    Box::pin(async move { Ok(Reply::Int(publish_everywhere(client, sharded, channel, message).await as i64)) })
}

fn publish<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    publish_with(client, args, false)
}

fn spublish<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    publish_with(client, args, true)
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// The distinct names with subscribers on any shard.
async fn all_names(client: &Client, kind: Kind) -> BTreeSet<Bytes> {
    let per_shard = client.shard.broadcast(move |sh| sh.pubsub.borrow().names(kind).cloned().collect::<Vec<_>>()).await;
    per_shard.into_iter().flatten().collect()
}

async fn numsub(client: &Client, kind: Kind, names: Vec<Bytes>) -> Reply {
    let asked = names.clone();
    let counts = client
        .shard
        .broadcast(move |sh| {
            let reg = sh.pubsub.borrow();
            asked.iter().map(|n| reg.subscribers(kind, n)).collect::<Vec<_>>()
        })
        .await;
    let totals = (0..names.len()).map(|i| counts.iter().map(|c| c[i]).sum::<usize>());
    Reply::Array(names.into_iter().zip(totals).flat_map(|(n, t)| [Reply::Bulk(n), Reply::Int(t as i64)]).collect())
}

fn pubsub<'a>(client: &'a mut Client, args: Args<'a>) -> LocalBoxFuture<'a, CmdResult> {
    Box::pin(async move {
        let sub = String::from_utf8_lossy(args.get(1)).to_ascii_uppercase();
        let argc = args.len();
        match sub.as_str() {
            "HELP" if argc == 2 => Ok(Reply::help(PUBSUB_HELP)),
            "CHANNELS" | "SHARDCHANNELS" if argc <= 3 => {
                let kind = if sub == "CHANNELS" { Kind::Channel } else { Kind::Shard };
                let pattern = (argc == 3).then(|| args.get(2).to_vec());
                let names = all_names(client, kind).await;
                let matching = names.into_iter().filter(|n| pattern.as_ref().is_none_or(|p| glob_match(p, n, false)));
                Ok(Reply::Array(matching.map(Reply::Bulk).collect()))
            }
            "NUMSUB" | "SHARDNUMSUB" => {
                let kind = if sub == "NUMSUB" { Kind::Channel } else { Kind::Shard };
                Ok(numsub(client, kind, args.iter().skip(2).map(Bytes::copy_from_slice).collect()).await)
            }
            "NUMPAT" if argc == 2 => Ok(Reply::Int(all_names(client, Kind::Pattern).await.len() as i64)),
            "HELP" | "CHANNELS" | "SHARDCHANNELS" | "NUMPAT" => {
                Err(CmdError::SubcommandSyntax { cmd: "PUBSUB".into(), sub: args.str(1) })
            }
            _ => Err(CmdError::UnknownSubcommand { cmd: "PUBSUB".into(), sub: args.str(1) }),
        }
    })
}

const SUB: u32 = NOSCRIPT | LOADING | STALE | SUBSCRIBE_MODE;

pub(super) const TABLE: &[Spec] = &[
    Spec::new("subscribe", -2, SUB, Keys::None, Handler::Conn(sub)),
    Spec::new("psubscribe", -2, SUB, Keys::None, Handler::Conn(psub)),
    Spec::new("ssubscribe", -2, SUB, Keys::Range(1, -1, 1), Handler::Conn(ssub)),
    Spec::new("unsubscribe", -1, SUB, Keys::None, Handler::Conn(unsub)),
    Spec::new("punsubscribe", -1, SUB, Keys::None, Handler::Conn(punsub)),
    Spec::new("sunsubscribe", -1, SUB, Keys::Range(1, -1, 1), Handler::Conn(sunsub)),
    Spec::new("publish", 3, LOADING | STALE | FAST | MAY_REPLICATE, Keys::None, Handler::Async(publish)),
    Spec::new("spublish", 3, LOADING | STALE | FAST | MAY_REPLICATE, Keys::Range(1, 1, 1), Handler::Async(spublish)),
    Spec::new("pubsub", -2, CONTAINER | LOADING | STALE, Keys::None, Handler::Async(pubsub)).with_subcommands(&[
        "pubsub|channels",
        "pubsub|help",
        "pubsub|numpat",
        "pubsub|numsub",
        "pubsub|shardchannels",
        "pubsub|shardnumsub",
    ]),
];
