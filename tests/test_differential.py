"""Differential tests: every command of tests/corpus/*.txt is sent to a real
redis-server and to percore, in RESP2 and in RESP3; replies must be
byte-for-byte identical.

Corpus syntax: one command per line (shell-style quoting, \\xHH escapes in
double quotes are kept as text), `#` comments. A line may start with:
  @sort   the reply is an array whose order is unspecified: compare sorted
  @run    send to both, do not compare (e.g. values that depend on time)
"""

import glob
import os
import shlex

import pytest

from resp import Conn

CORPUS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "corpus", "*.txt")))


def load(path):
    cases = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            mode = "exact"
            if line.startswith("@"):
                mode, line = line[1:].split(" ", 1)
            args = [a.encode().decode("unicode_escape").encode("latin-1") for a in shlex.split(line)]
            cases.append((lineno, mode, args))
    return cases


def normalize(mode, reply):
    raw, value = reply
    if mode == "sort" and isinstance(value, tuple):
        kind, items = value
        return (kind, sorted(repr(i) for i in items))
    return raw


@pytest.mark.parametrize("proto", [2, 3])
@pytest.mark.parametrize("path", CORPUS, ids=[os.path.basename(p) for p in CORPUS])
def test_corpus(path, proto, percore, reference):
    conns = [Conn(reference.port), Conn(percore.port)]
    try:
        for c in conns:
            c.call("FLUSHALL")
            if proto == 3:
                c.call("HELLO", "3")
        mismatches = []
        for lineno, mode, args in load(path):
            replies = [c.call(*args) for c in conns]
            if mode == "run":
                continue
            want, got = (normalize(mode, r) for r in replies)
            if got != want:
                mismatches.append(f"{os.path.basename(path)}:{lineno} {args!r} (RESP{proto})\n redis:   {replies[0][0]!r}\n percore: {replies[1][0]!r}")
        assert not mismatches, "\n".join(mismatches)
    finally:
        for c in conns:
            c.close()
