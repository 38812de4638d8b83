"""Replication: percore and redis-server as masters and replicas of each
other, full and partial resyncs, chains, promotion, WAIT, kills.

After each scenario the replica's DEBUG DIGEST equals the master's."""

import os
import signal

import pytest

from conftest import wait_until


def node(start, tmp_path, name, *args):
    """A server with a directory of its own (replicas write dump.rdb)."""
    d = tmp_path / name
    d.mkdir()
    return start("--dir", d, *args)


def link_up(replica):
    return replica.client().info("replication").get("master_link_status") == "up"


def caught_up(master, replica):
    m = master.client().info("replication")["master_repl_offset"]
    r = replica.client().info("replication")
    return r.get("master_link_status") == "up" and r["slave_repl_offset"] == m


def same_data(master, replica, what="replica to catch up"):
    wait_until(lambda: caught_up(master, replica), what=what)
    digest = master.client().execute_command("DEBUG", "DIGEST")
    wait_until(lambda: replica.client().execute_command("DEBUG", "DIGEST") == digest, what="equal digests")
    assert digest != b"0" * 40 and digest != "0" * 40


def fill(c, prefix="k"):
    """Keys of every type, in several databases, with TTLs."""
    p = c.pipeline(transaction=False)
    for i in range(300):
        p.set(f"{prefix}:s:{i}", "v" * (i % 50))
        p.rpush(f"{prefix}:l:{i % 20}", i)
        p.sadd(f"{prefix}:set:{i % 20}", i)
        p.hset(f"{prefix}:h:{i % 20}", f"f{i}", i)
        p.zadd(f"{prefix}:z:{i % 20}", {f"m{i}": i})
    p.xadd(f"{prefix}:stream", {"a": "1"})
    p.set(f"{prefix}:ttl", "v", ex=1000)
    p.pfadd(f"{prefix}:hll", "a", "b", "c")
    p.execute()
    c.execute_command("SELECT", 3)
    c.set(f"{prefix}:db3", "x")
    c.execute_command("SELECT", 0)


def writes_of_every_shape(c, prefix="w"):
    c.incr(f"{prefix}:n")
    c.mset({f"{prefix}:a{i}": i for i in range(20)})
    with c.pipeline(transaction=True) as p:
        p.set(f"{prefix}:tx1", 1).lpush(f"{prefix}:tx2", 2).execute()
    c.eval("redis.call('set', KEYS[1], 'lua'); redis.call('incr', KEYS[2])", 2, f"{prefix}:{{e}}1", f"{prefix}:{{e}}2")
    c.xadd(f"{prefix}:xs", {"f": "v"})
    c.expire(f"{prefix}:n", 1000)
    c.execute_command("SELECT", 5)
    c.sadd(f"{prefix}:db5", "m")
    c.execute_command("SELECT", 0)
    c.delete(f"{prefix}:a0")


@pytest.mark.parametrize("diskless", ["yes", "no"])
def test_percore_replica_of_percore(start_percore, tmp_path, diskless):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync", diskless, "--repl-diskless-sync-delay", 0)
    replica = node(start_percore, tmp_path, "r")
    fill(master.client())
    assert replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port) in (b"OK", "OK", True)
    same_data(master, replica)
    writes_of_every_shape(master.client())
    same_data(master, replica)
    rc = replica.client()
    with pytest.raises(Exception, match="You can't write against a read only replica."):
        rc.set("x", 1)
    role = rc.execute_command("ROLE")
    assert role[0] == b"slave" and int(role[2]) == master.port and role[3] == b"connected"
    mrole = master.client().execute_command("ROLE")
    assert mrole[0] == b"master" and len(mrole[2]) == 1
    info = master.client().info("replication")
    assert info["connected_slaves"] == 1 and info["slave0"]["state"] == "online"
    assert master.client().info("stats")["sync_full"] == 1
    if diskless == "yes":
        assert "Starting BGSAVE for SYNC with target: replicas sockets" in master.output()
    else:
        assert "Starting BGSAVE for SYNC with target: disk" in master.output()
    for line in ["Connecting to MASTER", "MASTER <-> REPLICA sync started", "MASTER <-> REPLICA sync: Finished with success"]:
        assert line in replica.output()


@pytest.mark.parametrize("load", ["disabled", "on-empty-db", "swapdb"])
def test_replica_loads_as_repl_diskless_load_says(start_percore, tmp_path, load):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync-delay", 0)
    replica = node(start_percore, tmp_path, "r", "--repl-diskless-load", load)
    replica.client().set("old", "data")
    fill(master.client())
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    same_data(master, replica)
    assert replica.client().get("old") is None
    target = "disk" if load == "disabled" else "memory"
    assert f"receiving streamed RDB from master with EOF to {target}" in replica.output()


def test_redis_replica_of_percore(start_percore, start_redis, tmp_path):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync-delay", 0)
    replica = node(start_redis, tmp_path, "redis")
    fill(master.client())
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    same_data(master, replica)
    writes_of_every_shape(master.client())
    # A key that expires on the master reaches the replica as a DEL.
    master.client().set("short", "v", px=200)
    wait_until(lambda: master.client().exists("short") == 0)
    same_data(master, replica)
    wait_until(lambda: replica.client().execute_command("DBSIZE") == master.client().execute_command("DBSIZE"))
    assert master.client().execute_command("WAIT", 1, 5000) == 1


def test_percore_replica_of_redis(start_percore, start_redis, tmp_path):
    master = node(start_redis, tmp_path, "redis", "--repl-diskless-sync-delay", 0)
    replica = node(start_percore, tmp_path, "r")
    fill(master.client())
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    same_data(master, replica)
    writes_of_every_shape(master.client())
    same_data(master, replica)
    assert master.client().execute_command("WAIT", 1, 5000) == 1
    # The link is dropped: the replica continues from its offset.
    full = master.client().info("stats")["sync_full"]
    master.client().execute_command("CLIENT", "KILL", "TYPE", "replica")
    master.client().set("during", "drop")
    same_data(master, replica)
    stats = master.client().info("stats")
    assert stats["sync_full"] == full and stats["sync_partial_ok"] >= 1


def test_partial_resync_after_a_dropped_link(start_percore, tmp_path):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync-delay", 0)
    replica = node(start_percore, tmp_path, "r")
    fill(master.client())
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    same_data(master, replica)
    db4 = master.client(db=4)
    for kill in (replica, master):
        target = "master" if kill is replica else "replica"
        # The stream's last SELECT came before the drop: the writes after
        # it still land in that database.
        db4.set(f"before-{target}", 1)
        assert kill.client().execute_command("CLIENT", "KILL", "TYPE", target) == 1
        db4.set(f"after-{target}", 1)
        same_data(master, replica)
        assert replica.client(db=4).get(f"after-{target}") == b"1"
        writes_of_every_shape(master.client(), prefix=f"after-{target}")
        same_data(master, replica)
    stats = master.client().info("stats")
    assert stats["sync_full"] == 1 and stats["sync_partial_ok"] == 2
    assert "Master accepted a Partial Resynchronization" in replica.output()


def test_full_resync_once_the_backlog_overflowed(start_percore, tmp_path):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync-delay", 0, "--repl-backlog-size", "16kb")
    replica = node(start_percore, tmp_path, "r")
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    master.client().set("a", 1)
    same_data(master, replica)
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        mc = master.client()
        mc.execute_command("CLIENT", "KILL", "TYPE", "replica")
        # Far more than the backlog holds, while the replica is away.
        for i in range(200):
            mc.set(f"big{i}", "x" * 1000)
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    same_data(master, replica)
    assert master.client().info("stats")["sync_full"] == 2


def test_chain_of_three_and_promotion(start_percore, start_redis, tmp_path):
    a = node(start_percore, tmp_path, "a", "--repl-diskless-sync-delay", 0)
    b = node(start_percore, tmp_path, "b", "--repl-diskless-sync-delay", 0)
    c = node(start_redis, tmp_path, "redis")
    fill(a.client())
    b.client().execute_command("REPLICAOF", "127.0.0.1", a.port)
    same_data(a, b)
    c.client().execute_command("REPLICAOF", "127.0.0.1", b.port)
    wait_until(lambda: link_up(c), what="c's link")
    writes_of_every_shape(a.client())
    same_data(a, b)
    same_data(a, c)
    # The same history down the chain: replid and offsets.
    ai, ci = a.client().info("replication"), c.client().info("replication")
    assert ai["master_replid"] == ci["master_replid"] and ai["master_repl_offset"] == ci["master_repl_offset"]
    # b is promoted; a rejoins as its replica and continues (PSYNC2).
    b.client().execute_command("REPLICAOF", "NO", "ONE")
    bi = b.client().info("replication")
    assert bi["role"] == "master" and bi["master_replid2"] == ai["master_replid"]
    b.client().set("on-b", "1")
    a.client().execute_command("REPLICAOF", "127.0.0.1", b.port)
    same_data(b, a)
    same_data(b, c)
    assert a.client().get("on-b") == b"1"
    assert b.client().info("stats")["sync_full"] == 1, "a and c continued partially"


def test_wait_and_min_replicas(start_percore, tmp_path):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync-delay", 0)
    replica = node(start_percore, tmp_path, "r")
    mc = master.client()
    assert mc.execute_command("WAIT", 1, 100) == 0
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    wait_until(lambda: caught_up(master, replica))
    mc.set("a", 1)
    assert mc.execute_command("WAIT", 1, 5000) == 1
    with pytest.raises(Exception, match="WAIT cannot be used with replica instances"):
        replica.client().execute_command("WAIT", 1, 10)
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        mc.set("b", 2)
        assert mc.execute_command("WAIT", 1, 300) == 0
        mc.config_set("min-replicas-max-lag", 1)
        mc.config_set("min-replicas-to-write", 1)
        wait_until(lambda: _refused(mc), what="NOREPLICAS")
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    wait_until(lambda: not _refused(mc), what="writes accepted again")
    same_data(master, replica)


def _refused(c):
    try:
        c.set("probe", 1)
        return False
    except Exception as e:  # noqa: BLE001
        assert "NOREPLICAS Not enough good replicas to write." in str(e)
        return True


def test_no_acknowledged_write_is_lost_when_the_master_dies(start_percore, tmp_path):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync-delay", 0)
    replica = node(start_percore, tmp_path, "r")
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    wait_until(lambda: caught_up(master, replica))
    mc = master.client()
    acked = []
    for i in range(200):
        mc.set(f"k{i}", i)
        if i % 20 == 19:
            assert mc.execute_command("WAIT", 1, 5000) == 1
            acked = list(range(i + 1))
    os.kill(master.pid, signal.SIGKILL)
    rc = replica.client()
    rc.execute_command("REPLICAOF", "NO", "ONE")
    values = rc.mget([f"k{i}" for i in acked])
    assert values == [str(i).encode() for i in acked]
    rc.set("writable", 1)


def test_replica_keeps_expired_keys_for_its_master(start_percore, tmp_path):
    master = node(start_percore, tmp_path, "m", "--repl-diskless-sync-delay", 0)
    replica = node(start_percore, tmp_path, "r")
    replica.client().execute_command("REPLICAOF", "127.0.0.1", master.port)
    wait_until(lambda: caught_up(master, replica))
    master.client().execute_command("DEBUG", "SET-ACTIVE-EXPIRE", 0)
    master.client().set("t", "v", px=100)
    wait_until(lambda: caught_up(master, replica))
    wait_until(lambda: replica.client().get("t") is None, what="the key to read as expired")
    # Read as missing, but kept until the master deletes it.
    assert replica.client().execute_command("DBSIZE") == 1
    assert master.client().get("t") is None
    wait_until(lambda: replica.client().execute_command("DBSIZE") == 0, what="the master's DEL")
