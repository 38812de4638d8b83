"""Geo searches against redis-server on random data: the same points
found, in the same order, with the same distances, hashes and
coordinates, for circles and boxes of every size, anywhere on the map
(poles and the antimeridian included), and the stored results equal."""

import random

import pytest

from resp import Conn


def random_point(rng):
    # Near the latitude limits and the antimeridian as often as anywhere.
    lon = rng.choice([rng.uniform(-180, 180), rng.uniform(175, 180), rng.uniform(-180, -175)])
    lat = rng.choice([rng.uniform(-85.05, 85.05), rng.uniform(80, 85.05), rng.uniform(-85.05, -80)])
    return lon, lat


def random_search(rng, key):
    lon, lat = random_point(rng)
    unit = rng.choice(["m", "km", "mi", "ft"])
    size = rng.choice([0, 1, 500, 5000, 50000, 500000, 3000000]) / {"m": 1, "km": 1000, "mi": 1609.34, "ft": 0.3048}[unit]
    shape = rng.choice([["BYRADIUS", f"{size:.3f}", unit], ["BYBOX", f"{size:.3f}", f"{size * rng.uniform(0.2, 3):.3f}", unit]])
    center = rng.choice([["FROMLONLAT", f"{lon:.6f}", f"{lat:.6f}"], ["FROMMEMBER", f"p{rng.randrange(300)}"]])
    opts = ["WITHDIST", "WITHCOORD", "WITHHASH", rng.choice(["ASC", "DESC"])]
    if rng.random() < 0.3:
        opts += ["COUNT", str(rng.randrange(1, 20))]
    return ["GEOSEARCH", key, *center, *shape, *opts]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_searches_match_redis(percore, reference, seed):
    rng = random.Random(seed)
    conns = [Conn(reference.port), Conn(percore.port)]
    try:
        for c in conns:
            c.call("FLUSHALL")
        points = [random_point(rng) for _ in range(300)]
        # Clusters, so that small searches find something.
        for i in range(0, 300, 30):
            lon, lat = points[i]
            for j in range(1, 10):
                points[i + j] = (max(-180, min(180, lon + rng.uniform(-0.05, 0.05))), max(-85, min(85, lat + rng.uniform(-0.05, 0.05))))
        args = ["GEOADD", "g"]
        for i, (lon, lat) in enumerate(points):
            args += [f"{lon:.6f}", f"{lat:.6f}", f"p{i}"]
        replies = [c.call(*args) for c in conns]
        assert replies[0] == replies[1]
        mismatches = []
        nonempty = 0
        for _ in range(150):
            cmd = random_search(rng, "g")
            want, got = (c.call(*cmd)[0] for c in conns)
            nonempty += want != b"*0\r\n"
            if want != got:
                mismatches.append(f"{cmd}\n redis:   {want[:300]!r}\n percore: {got[:300]!r}")
        assert not mismatches, "\n".join(mismatches[:5])
        assert nonempty > 30, "the searches should find points"
        # The stored forms: scores (or distances) equal too.
        for _ in range(20):
            cmd = random_search(rng, "g")
            store = ["GEOSEARCHSTORE", "dst{g}", "g", *[a for a in cmd[2:] if a not in ("WITHDIST", "WITHCOORD", "WITHHASH")]]
            if rng.random() < 0.5:
                store.append("STOREDIST")
            want, got = ([c.call(*store)[0], c.call("ZRANGE", "dst{g}", "0", "-1", "WITHSCORES")[0]] for c in conns)
            assert want == got, store
    finally:
        for c in conns:
            c.close()


def test_geoadd_is_a_zadd_for_events_and_the_aof(start_percore, tmp_path):
    s = start_percore("--appendonly", "yes", "--dir", str(tmp_path))
    c = s.client()
    c.config_set("notify-keyspace-events", "KEA")
    p = c.pubsub()
    p.psubscribe("__keyspace@0__:*")
    assert p.get_message(timeout=5)["type"] == "psubscribe"
    c.geoadd("pts", [13.361389, 38.115556, "Palermo"])
    c.execute_command("GEORADIUS", "pts", "13", "38", "100", "km", "STORE", "near")
    events = []
    while len(events) < 2:
        m = p.get_message(timeout=5)
        assert m is not None, events
        if m["type"] == "pmessage":
            events.append((m["channel"], m["data"]))
    assert events == [(b"__keyspace@0__:pts", b"zadd"), (b"__keyspace@0__:near", b"georadiusstore")]
    before = c.zrange("pts", 0, -1, withscores=True), c.zrange("near", 0, -1, withscores=True)
    c.execute_command("DEBUG", "LOADAOF")
    assert (c.zrange("pts", 0, -1, withscores=True), c.zrange("near", 0, -1, withscores=True)) == before
    # GEOADD was written as the ZADD of its score.
    with open(sorted((tmp_path / "appendonlydir").glob("*.incr.aof"))[-1], "rb") as f:
        aof = f.read()
    assert b"ZADD\r\n$3\r\npts\r\n$16\r\n3479099956230698\r\n" in aof.replace(b"zadd", b"ZADD")
