"""Expiry: millisecond precision, lazy on access, and active reclamation of
keys nobody touches again."""

import time

from conftest import wait_until


def test_millisecond_expiry(percore):
    c = percore.client()
    c.set("short", "v", px=150)
    assert c.get("short") == b"v"
    assert 0 < c.pttl("short") <= 150
    wait_until(lambda: c.get("short") is None, timeout=3, what="key to expire")
    assert c.exists("short") == 0
    assert c.ttl("short") == -2


def test_active_expiry_reclaims_untouched_keys(start_percore):
    percore = start_percore(threads=2)
    c = percore.client()
    pipe = c.pipeline(transaction=False)
    for i in range(5000):
        pipe.set(f"temp:{i}", "x", px=1500)
    for i in range(100):
        pipe.set(f"keep:{i}", "x")
    pipe.execute()
    assert c.dbsize() == 5100
    # DBSIZE counts keys not yet reclaimed; only the active cycle can bring
    # it down, since nothing reads the expired keys.
    wait_until(lambda: c.dbsize() == 100, timeout=10, what="active expiry")
    assert int(c.info("stats")["expired_keys"]) == 5000
    assert c.info("keyspace")["db0"]["expires"] == 0


def test_expire_options_and_persist(percore):
    c = percore.client()
    c.set("k", "v")
    assert c.expire("k", 100, nx=True) is True
    assert c.expire("k", 50, gt=True) is False
    assert c.expire("k", 500, gt=True) is True
    assert c.persist("k") is True
    assert c.ttl("k") == -1
    now = int(time.time())
    assert c.expireat("k", now + 1000) is True
    assert abs(c.expiretime("k") - (now + 1000)) <= 1
    assert c.expire("k", -1) is True
    assert c.exists("k") == 0


def test_overwrite_clears_ttl_and_keepttl_keeps_it(percore):
    c = percore.client()
    c.set("k", "v", ex=100)
    c.set("k", "w", keepttl=True)
    assert c.ttl("k") > 0
    c.set("k", "x")
    assert c.ttl("k") == -1
    c.set("n", 1, ex=100)
    c.incr("n")
    assert c.ttl("n") > 0


def test_lazy_expiry_alone_when_active_expiry_is_off(start_percore):
    percore = start_percore(threads=2)
    c = percore.client()
    assert c.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "0") == b"OK"
    pipe = c.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"lazy:{i}", "x", px=20)
    pipe.execute()
    # The last key set expires last; reading it reclaims only that one.
    wait_until(lambda: c.pttl("lazy:49") == -2, timeout=3, what="last key to expire")
    # Nothing reclaims the others until they are touched.
    assert c.dbsize() == 49
    assert c.exists(*[f"lazy:{i}" for i in range(50)]) == 0
    assert c.dbsize() == 0
    c.execute_command("DEBUG", "SET-ACTIVE-EXPIRE", "1")


def test_debug_object(percore):
    c = percore.client()
    c.set("n", 12)
    c.set("s", "hello")
    assert c.debug_object("n")["encoding"] == "int"
    info = c.debug_object("s")
    assert info["encoding"] == "embstr" and info["serializedlength"] == 6
