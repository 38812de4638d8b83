#!/usr/bin/env python3
"""Writes src/command/meta_table.rs: what Redis 7.0 tells clients about each
command (COMMAND INFO / DOCS / GETKEYS / LIST), taken from the command
descriptions in Redis's source (src/commands/*.json at tag 7.0.15).

Only facts about the protocol are kept: arity, flags, ACL categories, tips,
key specs, argument shapes, group, versions. Summaries, complexity notes,
history and key-spec notes are Redis's prose and are left out.

    scripts/gen_command_meta.py $REDIS_MIRROR > src/command/meta_table.rs

REDIS_MIRROR is a git directory of redis/redis (`fetch github:redis/redis`).
"""

import json
import subprocess
import sys

TAG = "7.0.15"

# COMMAND INFO's flag names, in the order redis-server prints them
# (addReplyFlagsForCommand); may_replicate, sentinel, only_sentinel,
# protected and touches_arbitrary_keys are hidden there.
COMMAND_FLAGS = [
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
    "blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking",
    "fast", "no_auth", "no_mandatory_keys", "no_async_loading", "no_multi",
    "movablekeys", "allow_busy",
]
ACL_CATEGORIES = [
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
    "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast",
    "slow", "blocking", "dangerous", "connection", "transaction", "scripting",
]
KEY_FLAGS = [
    "RO", "RW", "OW", "RM", "access", "update", "insert", "delete", "not_key",
    "incomplete", "variable_flags",
]
GROUPS = {"sorted_set": "sorted-set"}


def git(mirror, *args):
    return subprocess.run(["git", "-C", mirror, *args], check=True, capture_output=True, text=True).stdout


def commands(mirror):
    for file in git(mirror, "ls-tree", "--name-only", f"{TAG}:src/commands").split():
        if not file.endswith(".json"):
            continue
        for name, desc in json.loads(git(mirror, "show", f"{TAG}:src/commands/{file}")).items():
            container = desc.get("container")
            full = f"{container}|{name}" if container else name
            yield full.lower(), desc


def ordered(names, order):
    names = set(names)
    unknown = names - set(order)
    assert not unknown, unknown
    return [n for n in order if n in names]


def legacy_range(specs):
    """first, last, step and whether the keys are movable, as redis-server
    derives them from the key specs (populateCommandLegacyRangeSpec)."""
    if not specs:
        return (0, 0, 0), False

    def simple(s):
        return "index" in s["begin_search"] and "range" in s["find_keys"]

    def incomplete(s):
        return "INCOMPLETE" in s["flags"]

    if len(specs) == 1 and simple(specs[0]):
        s = specs[0]
        first = s["begin_search"]["index"]["pos"]
        rng = s["find_keys"]["range"]
        last = rng["lastkey"] + first if rng["lastkey"] >= 0 else rng["lastkey"]
        return (first, last, rng["step"]), incomplete(s)
    movable = False
    first, last, prev_last = None, 0, 0
    unsigned = lambda v: v & 0xFFFFFFFF
    for s in specs:
        if not simple(s):
            movable = True
            continue
        pos = s["begin_search"]["index"]["pos"]
        rng = s["find_keys"]["range"]
        if rng["step"] != 1 or (prev_last and prev_last != pos - 1):
            movable = True
            continue
        movable |= incomplete(s)
        first = pos if first is None else min(first, pos)
        abs_last = rng["lastkey"] + pos if rng["lastkey"] >= 0 else rng["lastkey"]
        last = abs_last if unsigned(abs_last) > unsigned(last) else last
        prev_last = last
    if first is None:
        return (0, 0, 0), True
    return (first, last, 1), movable


def rust_str(s):
    return json.dumps(s)


def strs(items):
    return "&[" + ", ".join(rust_str(i) for i in items) + "]"


def opt(s):
    return f"Some({rust_str(s)})" if s is not None else "None"


def key_spec(s):
    flags = ordered([f if f in ("RO", "RW", "OW", "RM") else f.lower() for f in s["flags"]], KEY_FLAGS)
    bs = s["begin_search"]
    if "index" in bs:
        begin = f"Begin::Index({bs['index']['pos']})"
    elif "keyword" in bs:
        begin = f"Begin::Keyword({rust_str(bs['keyword']['keyword'])}, {bs['keyword']['startfrom']})"
    else:
        begin = "Begin::Unknown"
    fk = s["find_keys"]
    if "range" in fk:
        r = fk["range"]
        find = f"Find::Range {{ last: {r['lastkey']}, step: {r['step']}, limit: {r['limit']} }}"
    elif "keynum" in fk:
        k = fk["keynum"]
        find = f"Find::Keynum {{ at: {k['keynumidx']}, first: {k['firstkey']}, step: {k['step']} }}"
    else:
        find = "Find::Unknown"
    return f"KeySpec {{ flags: {strs(flags)}, begin: {begin}, find: {find} }}"


def arg(a, indent):
    flags = [f for f in ("optional", "multiple", "multiple_token") if a.get(f)]
    sub = args(a.get("arguments", []), indent + 4) if a["type"] in ("oneof", "block") else "&[]"
    return (
        f"Arg {{ name: {rust_str(a['name'].lower())}, kind: {rust_str(a['type'])}, "
        f"key_spec: {a.get('key_spec_index', -1)}, token: {opt(a.get('token') and a['token'].upper())}, "
        f"since: {opt(a.get('since'))}, deprecated_since: {opt(a.get('deprecated_since'))}, "
        f"flags: {strs(flags)}, args: {sub} }}"
    )


def args(items, indent):
    if not items:
        return "&[]"
    pad = " " * indent
    inner = "".join(f"{pad}    {arg(a, indent + 4)},\n" for a in items)
    return f"&[\n{inner}{pad}]"


def main():
    mirror = sys.argv[1]
    rows = sorted(commands(mirror))
    print(f"//! Generated by scripts/gen_command_meta.py from Redis {TAG}'s command")
    print("//! descriptions (src/commands/*.json): do not edit by hand.")
    print()
    print("use super::meta::{Arg, Begin, Find, KeySpec, Meta};")
    print()
    print("/// Every Redis 7.0 command and subcommand, sorted by full name.")
    print("pub static ALL: &[Meta] = &[")
    for full, d in rows:
        specs = d.get("key_specs", [])
        rng, movable = legacy_range(specs)
        flags = [f.lower() for f in d.get("command_flags", [])]
        if movable:
            flags.append("movablekeys")
        shown = ordered([f for f in flags if f in COMMAND_FLAGS], COMMAND_FLAGS)
        acl = {c.lower() for c in d.get("acl_categories", [])}
        if "write" in flags:
            acl.add("write")
        if "readonly" in flags and "scripting" not in acl:
            acl.add("read")
        if "admin" in flags:
            acl |= {"admin", "dangerous"}
        if "pubsub" in flags:
            acl.add("pubsub")
        if "fast" in flags:
            acl.add("fast")
        if "blocking" in flags:
            acl.add("blocking")
        if "fast" not in acl:
            acl.add("slow")
        acl = ["@" + c for c in ordered(acl, ACL_CATEGORIES)]
        tips = [t.lower() for t in d.get("command_tips", [])]
        doc_flags = [f.lower() for f in d.get("doc_flags", [])]
        print("    Meta {")
        print(f"        name: {rust_str(full)},")
        print(f"        arity: {d['arity']},")
        print(f"        group: {rust_str(GROUPS.get(d['group'], d['group']))},")
        print(f"        since: {rust_str(d['since'])},")
        print(f"        flags: {strs(shown)},")
        print(f"        hidden_flags: {strs([f for f in flags if f not in COMMAND_FLAGS])},")
        print(f"        acl: {strs(acl)},")
        print(f"        tips: {strs(tips)},")
        print(f"        range: ({rng[0]}, {rng[1]}, {rng[2]}),")
        if specs:
            print("        key_specs: &[")
            for s in specs:
                print(f"            {key_spec(s)},")
            print("        ],")
        else:
            print("        key_specs: &[],")
        print(f"        has_key_finder: {str(bool(d.get('get_keys_function'))).lower()},")
        print(f"        args: {args(d.get('arguments', []), 8)},")
        print(f"        doc_flags: {strs(doc_flags)},")
        print(f"        deprecated_since: {opt(d.get('deprecated_since'))},")
        print("    },")
    print("];")


if __name__ == "__main__":
    main()
