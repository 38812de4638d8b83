//! COMMAND: the command table as clients read it. Redis's descriptions
//! (`command::meta`) of the commands and subcommands percore has: COUNT,
//! LIST, INFO, DOCS, GETKEYS, GETKEYSANDFLAGS.

use super::{Handler, Spec};
use crate::command::meta::{self, Arg, Begin, Find, FlaggedKey, KeySpec, Meta};
use crate::command::{Args, CONTAINER, Keys, LOADING, STALE, arity_fits};
use crate::pattern::glob_match;
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::server::client::Client;

/// One command or subcommand percore has, with Redis's description of it.
#[derive(Clone, Copy)]
struct Described {
    spec: &'static Spec,
    meta: &'static Meta,
}

/// Redis's description of a row or of one of its subcommands (the table's
/// test makes sure every row has one).
fn meta_of(name: &str) -> &'static Meta {
    meta::get(name).unwrap_or(&NO_META)
}

static NO_META: Meta = Meta {
    name: "",
    arity: 0,
    group: "server",
    since: "",
    flags: &[],
    hidden_flags: &[],
    acl: &[],
    tips: &[],
    range: (0, 0, 0),
    key_specs: &[],
    has_key_finder: false,
    args: &[],
    doc_flags: &[],
    deprecated_since: None,
};

/// Every command, by name.
fn commands() -> Vec<Described> {
    let mut all: Vec<_> = super::table().all().map(|spec| Described { spec, meta: meta_of(spec.name) }).collect();
    all.sort_by_key(|d| d.spec.name);
    all
}

impl Described {
    fn subcommands(self) -> impl Iterator<Item = Described> {
        self.spec.subcommands.iter().map(move |name| Described { spec: self.spec, meta: meta_of(name) })
    }

    /// A command (`get`) or a subcommand (`config|get`) by name, any case.
    fn find(name: &[u8]) -> Option<Described> {
        let mut parts = name.splitn(3, |&b| b == b'|');
        let spec = super::table().lookup(parts.next()?)?;
        match (parts.next(), parts.next()) {
            (None, _) => Some(Described { spec, meta: meta_of(spec.name) }),
            (Some(sub), None) => spec.subcommand(sub).map(|name| Described { spec, meta: meta_of(name) }),
            _ => None,
        }
    }

    /// The command a call names: a container's subcommand when it has one.
    fn of_call(call: Args) -> Option<Described> {
        let spec = super::table().lookup(call.get(0))?;
        if !spec.has(CONTAINER) {
            return Some(Described { spec, meta: meta_of(spec.name) });
        }
        let sub = (call.len() > 1).then(|| spec.subcommand(call.get(1))).flatten()?;
        Some(Described { spec, meta: meta_of(sub) })
    }

    fn info(self) -> Reply {
        let (first, last, step) = self.meta.range;
        Reply::Array(vec![
            Reply::text(self.meta.name),
            Reply::Int(self.meta.arity as i64),
            statuses(self.meta.flags),
            Reply::Int(first as i64),
            Reply::Int(last as i64),
            Reply::Int(step as i64),
            statuses(self.meta.acl),
            Reply::Set(self.meta.tips.iter().map(|t| Reply::text(*t)).collect()),
            Reply::Set(self.meta.key_specs.iter().map(key_spec).collect()),
            if self.is_container() {
                Reply::Array(self.subcommands().map(Described::info).collect())
            } else {
                Reply::Set(vec![])
            },
        ])
    }

    fn is_container(self) -> bool {
        !self.meta.name.contains('|') && !self.spec.subcommands.is_empty()
    }

    fn docs(self) -> Reply {
        let mut map = vec![(Reply::text("since"), Reply::text(self.meta.since))];
        map.push((Reply::text("group"), Reply::text(self.meta.group)));
        if !self.meta.doc_flags.is_empty() {
            map.push((Reply::text("doc_flags"), statuses(self.meta.doc_flags)));
        }
        if let Some(since) = self.meta.deprecated_since {
            map.push((Reply::text("deprecated_since"), Reply::text(since)));
        }
        if !self.meta.args.is_empty() {
            map.push((Reply::text("arguments"), args_docs(self.meta.args)));
        }
        if self.is_container() {
            let subs = self.subcommands().map(|d| (Reply::text(d.meta.name), d.docs())).collect();
            map.push((Reply::text("subcommands"), Reply::Map(subs)));
        }
        Reply::Map(map)
    }

    /// A call's keys with how it uses them: by Redis's key specs, or where
    /// they cannot say, by the row's own key positions.
    fn keys(self, call: Args) -> Vec<FlaggedKey> {
        if let Some(keys) = self.meta.spec_keys(call) {
            return keys;
        }
        let found = self.spec.keys.positions(call);
        found.enumerate().map(|(nth, i)| (i, self.meta.found_key_flags(call, nth))).collect()
    }
}

fn statuses(words: &[&str]) -> Reply {
    Reply::Set(words.iter().map(|w| Reply::Status(w.to_string().into())).collect())
}

fn pairs(items: Vec<(&str, Reply)>) -> Reply {
    Reply::Map(items.into_iter().map(|(k, v)| (Reply::text(k), v)).collect())
}

fn key_spec(spec: &KeySpec) -> Reply {
    let int = |v: i32| Reply::Int(v as i64);
    let (begin, begin_spec) = match spec.begin {
        Begin::Index(pos) => ("index", vec![("index", int(pos))]),
        Begin::Keyword(word, from) => ("keyword", vec![("keyword", Reply::text(word)), ("startfrom", int(from))]),
        Begin::Unknown => ("unknown", vec![]),
    };
    let (find, find_spec) = match spec.find {
        Find::Range { last, step, limit } => {
            ("range", vec![("lastkey", int(last)), ("keystep", int(step)), ("limit", int(limit))])
        }
        Find::Keynum { at, first, step } => {
            ("keynum", vec![("keynumidx", int(at)), ("firstkey", int(first)), ("keystep", int(step))])
        }
        Find::Unknown => ("unknown", vec![]),
    };
    pairs(vec![
        ("flags", statuses(spec.flags)),
        ("begin_search", pairs(vec![("type", Reply::text(begin)), ("spec", pairs(begin_spec))])),
        ("find_keys", pairs(vec![("type", Reply::text(find)), ("spec", pairs(find_spec))])),
    ])
}

fn args_docs(args: &[Arg]) -> Reply {
    Reply::Array(
        args.iter()
            .map(|a| {
                let mut map = vec![("name", Reply::text(a.name)), ("type", Reply::text(a.kind))];
                if a.key_spec >= 0 {
                    map.push(("key_spec_index", Reply::Int(a.key_spec as i64)));
                }
                let texts = [("token", a.token), ("since", a.since), ("deprecated_since", a.deprecated_since)];
                map.extend(texts.into_iter().filter_map(|(k, v)| v.map(|v| (k, Reply::text(v)))));
                if !a.flags.is_empty() {
                    map.push(("flags", statuses(a.flags)));
                }
                if matches!(a.kind, "oneof" | "block") {
                    map.push(("arguments", args_docs(a.args)));
                }
                pairs(map)
            })
            .collect(),
    )
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Print this help.",
];

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob].
fn list(args: Args) -> CmdResult {
    let everything = commands().into_iter().flat_map(|d| std::iter::once(d).chain(d.subcommands()));
    let keep: Box<dyn Fn(&Described) -> bool> = match args.len() {
        2 => Box::new(|_| true),
        5 if args.is(2, "FILTERBY") => match args.keyword(3).as_str() {
            "PATTERN" => {
                let pattern = args.get(4);
                Box::new(move |d| glob_match(pattern, d.meta.name.as_bytes(), true))
            }
            "ACLCAT" => {
                let category = format!("@{}", args.str(4).to_ascii_lowercase());
                Box::new(move |d| d.meta.acl.contains(&category.as_str()))
            }
            // No modules are loaded: none of their commands exist.
            "MODULE" => Box::new(|_| false),
            _ => return Err(CmdError::Syntax),
        },
        _ => return Err(CmdError::Syntax),
    };
    Ok(Reply::bulks(everything.filter(|d| keep(d)).map(|d| d.meta.name)))
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS <command> [args...].
fn getkeys(args: Args, with_flags: bool) -> CmdResult {
    let call = args.skip(2);
    let described = Described::of_call(call).ok_or_else(|| CmdError::err("Invalid command specified"))?;
    if !described.meta.may_have_keys() {
        return Err(CmdError::err("The command has no key arguments"));
    }
    if !arity_fits(described.meta.arity, call.len()) {
        return Err(CmdError::err("Invalid number of arguments specified for command"));
    }
    let keys = described.keys(call);
    if keys.is_empty() && !described.meta.has_flag("no_mandatory_keys") {
        return Err(CmdError::err("Invalid arguments specified for command"));
    }
    Ok(Reply::Array(
        keys.into_iter()
            .map(|(i, flags)| match with_flags {
                true => Reply::Array(vec![Reply::Bulk(call.get(i).to_vec().into()), statuses(flags)]),
                false => Reply::Bulk(call.get(i).to_vec().into()),
            })
            .collect(),
    ))
}

fn command(_client: &mut Client, args: Args) -> CmdResult {
    if args.len() == 1 {
        return Ok(Reply::Array(commands().into_iter().map(Described::info).collect()));
    }
    let named = || (2..args.len()).map(|i| Described::find(args.get(i)));
    match args.keyword(1).as_str() {
        "COUNT" if args.len() == 2 => Ok(Reply::Int(super::table().all().count() as i64)),
        "INFO" if args.len() == 2 => Ok(Reply::Array(commands().into_iter().map(Described::info).collect())),
        "INFO" => Ok(Reply::Array(named().map(|d| d.map_or(Reply::Null, Described::info)).collect())),
        "DOCS" if args.len() == 2 => {
            Ok(Reply::Map(commands().into_iter().map(|d| (Reply::text(d.meta.name), d.docs())).collect()))
        }
        "DOCS" => Ok(Reply::Map(named().flatten().map(|d| (Reply::text(d.meta.name), d.docs())).collect())),
        "LIST" => list(args),
        "GETKEYS" => getkeys(args, false),
        "GETKEYSANDFLAGS" => getkeys(args, true),
        "HELP" if args.len() == 2 => Ok(Reply::help(COMMAND_HELP)),
        _ => Err(CmdError::UnknownSubcommand { cmd: "COMMAND".into(), sub: args.str(1) }),
    }
}

const ANY: u32 = LOADING | STALE;

pub const TABLE: &[Spec] = &[Spec::new("command", -1, CONTAINER | ANY, Keys::None, Handler::Conn(command))
    .with_subcommands(&[
        "command|count",
        "command|docs",
        "command|getkeys",
        "command|getkeysandflags",
        "command|help",
        "command|info",
        "command|list",
    ])];
