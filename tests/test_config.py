"""Config files written for redis-server 7.0 start percore; a directive
percore does not honour yet is never accepted silently."""

import pytest
import redis

from conftest import wait_until

# Settings that name this process's own resources: the test chooses them.
OWN = {"port", "bind", "dir", "pidfile", "logfile", "unixsocket", "daemonize", "supervised", "tls-port"}


def quote(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_every_redis_directive_starts_percore(tmp_path, start_percore, reference):
    """A file with every directive redis-server 7.0 reports, at the values
    it reports, starts percore, and CONFIG GET answers the same names."""
    names = reference.client().config_get("*")
    lines = [f"{name} {quote(value)}" for name, value in sorted(names.items()) if name not in OWN]
    lines.append("no-appendfsync-on-rewrite no")
    conf = tmp_path / "redis7.conf"
    conf.write_text("\n".join(lines) + "\n")
    server = start_percore(config_file=conf)
    got = server.client().config_get("*")
    missing = sorted(set(names) - set(got) - {"server_cpulist", "bio_cpulist", "aof_rewrite_cpulist", "bgsave_cpulist"})
    assert missing == []
    for name in ("maxmemory-policy", "hash-max-listpack-entries", "appendfsync", "repl-backlog-size"):
        assert got[name] == names[name], name


def test_unhonoured_directive_warns_at_startup(tmp_path, start_percore):
    conf = tmp_path / "x.conf"
    conf.write_text("activedefrag yes\nrename-command FLUSHALL \"\"\nactive-defrag-cycle-max 25\n")
    server = start_percore(config_file=conf)
    log = wait_until(lambda: "Ready to accept" in server.output() and server.output(), what="startup log")
    assert "activedefrag" in log and "has no effect" in log
    assert "rename-command" in log
    # At its default, an unhonoured directive is no news.
    assert "active-defrag-cycle-max" not in log


def test_config_set_of_unhonoured_directive_is_refused(percore):
    c = percore.client()
    with pytest.raises(redis.ResponseError, match="activedefrag"):
        c.config_set("activedefrag", "yes")
    assert c.config_get("activedefrag") == {"activedefrag": "no"}
    assert c.config_set("activedefrag", "no")


def test_bad_directive_still_stops_startup(tmp_path, start_percore):
    conf = tmp_path / "bad.conf"
    conf.write_text("port 1\nno-such-directive 3\n")
    server = start_percore(config_file=conf, wait=False)
    wait_until(lambda: server.proc.poll() is not None, what="percore to exit")
    assert "no-such-directive" in server.output()
    assert server.proc.returncode != 0


def test_include(tmp_path, start_percore):
    inner = tmp_path / "inner.conf"
    inner.write_text("maxmemory-samples 7\n")
    outer = tmp_path / "outer.conf"
    outer.write_text(f"include {inner}\n")
    server = start_percore(config_file=outer)
    assert server.client().config_get("maxmemory-samples") == {"maxmemory-samples": "7"}


@pytest.mark.parametrize("setting", ["no", "yes", "local"])
def test_protected_commands_and_configs(tmp_path, start_percore, setting):
    server = start_percore(
        "--enable-debug-command", setting, "--enable-module-command", setting,
        "--enable-protected-configs", setting,
    )
    c = server.client()
    allowed = setting != "no"  # the test connects from 127.0.0.1
    assert c.execute_command("MODULE", "LIST") == []
    if allowed:
        assert c.execute_command("DEBUG", "SLEEP", 0)
        with pytest.raises(redis.ResponseError, match="no such module"):
            c.execute_command("MODULE", "UNLOAD", "nosuchmodule")
        assert c.config_set("dir", str(tmp_path))
    else:
        for cmd in (("DEBUG", "SLEEP", 0), ("MODULE", "UNLOAD", "nosuchmodule")):
            with pytest.raises(redis.ResponseError, match="command not allowed"):
                c.execute_command(*cmd)
        with pytest.raises(redis.ResponseError, match="can't set protected config"):
            c.config_set("dir", str(tmp_path))


def test_protected_errors_match_redis(percore, start_redis):
    ref = start_redis("--enable-debug-command", "no", "--enable-module-command", "no")
    server = percore
    server.client().config_set("loglevel", "notice")
    answers = []
    for s in (server, ref):
        c = s.client()
        row = []
        for cmd in (("MODULE", "LIST"), ("MODULE", "LOAD", "/x.so"), ("CONFIG", "SET", "dir", "/tmp")):
            try:
                row.append(c.execute_command(*cmd))
            except redis.ResponseError as e:
                row.append(str(e))
        answers.append(row)
    assert answers[0] == answers[1]


def test_loglevel_changes_at_runtime(start_percore):
    server = start_percore("--enable-module-command", "yes")
    c = server.client()
    c.config_set("loglevel", "warning")
    with pytest.raises(redis.ResponseError):
        c.execute_command("MODULE", "LOAD", "/first-module.so")
    # The warning is written before the reply leaves.
    assert "first-module" in server.output()
    c.config_set("loglevel", "nothing")
    with pytest.raises(redis.ResponseError):
        c.execute_command("MODULE", "LOAD", "/second-module.so")
    assert "second-module" not in server.output()


def test_hidden_directives_answer_only_to_their_name(percore, reference):
    for server in (reference, percore):
        c = server.client()
        everything = c.config_get("*")
        for hidden in ("key-load-delay", "rdb-key-save-delay", "watchdog-period"):
            assert hidden not in everything, (server, hidden)
            assert hidden in c.config_get(hidden), (server, hidden)


def test_config_set_of_every_value_to_itself_is_accepted(percore):
    """Redis's CONFIG sanity: setting a directive to what it is changes
    nothing, so it is accepted even where a change would be refused."""
    c = percore.client()
    before = c.config_get("*")
    for name in ("port", "activedefrag", "bind", "maxmemory", "hz"):
        assert c.config_set(name, before[name]), name
    assert c.config_get("*") == before
    with pytest.raises(redis.ResponseError, match="immutable"):
        c.config_set("databases", str(int(before["databases"]) + 1))


def test_percentage_values_and_first_failing_argument_as_redis(percore, reference):
    answers = []
    for server in (percore, reference):
        c = server.client()
        got = []
        for args in (
            ["maxmemory", "10000001", "maxmemory-clients", "200%", "client-query-buffer-limit", "invalid"],
            ["maxmemory-clients", "x"],
            ["maxmemory-clients", "-5%"],
        ):
            try:
                got.append(c.execute_command("CONFIG", "SET", *args))
            except redis.ResponseError as e:
                got.append(str(e))
        got.append(c.config_get("maxmemory"))
        answers.append(got)
    assert answers[0] == answers[1]


def test_config_rewrite_keeps_the_file_and_persists_changes(tmp_path, start_percore, reference):
    conf = tmp_path / "p.conf"
    original = [
        "# my settings",
        "hash-max-ziplist-entries 21",
        "",
        "# kept as written",
        'rename-command FLUSHALL ""',
        "maxmemory-policy allkeys-lru",
    ]
    conf.write_text("\n".join(original) + "\n")
    server = start_percore(config_file=conf)
    c = server.client()
    c.config_set("hash-max-listpack-entries", "100")
    c.config_set("maxmemory", "10mb")
    c.config_set("notify-keyspace-events", "KEA")
    assert c.execute_command("CONFIG", "REWRITE")
    lines = conf.read_text().splitlines()
    # Comments, blank lines and unknown-to-CONFIG lines stay where they
    # were; a directive's line (under its old name too) is rewritten in
    # place; the rest follow Redis's marker.
    assert lines[:6] == [
        "# my settings",
        "hash-max-listpack-entries 100",
        "",
        "# kept as written",
        'rename-command FLUSHALL ""',
        "maxmemory-policy allkeys-lru",
    ]
    rest = lines[lines.index("# Generated by CONFIG REWRITE") + 1:]
    assert "maxmemory 10485760" in rest and "notify-keyspace-events AKE" in rest
    server.stop()
    again = start_percore(config_file=conf).client()
    got = again.config_get("*")
    assert (got["hash-max-listpack-entries"], got["maxmemory"], got["notify-keyspace-events"]) == ("100", "10485760", "AKE")
    # Without a file, as Redis answers.
    for s in (start_percore(), reference):
        with pytest.raises(redis.ResponseError, match="^The server is running without a config file$"):
            s.client().execute_command("CONFIG", "REWRITE")


def test_save_lines_add_up_as_redis_reads_them(tmp_path, start_percore):
    conf = tmp_path / "s.conf"
    conf.write_text("save 900 1\nsave 300 10\n")
    assert start_percore(config_file=conf).client().config_get("save") == {"save": "900 1 300 10"}


@pytest.mark.parametrize("name,value", [("lazyfree-lazy-expire", "yes"), ("lazyfree-lazy-eviction", "yes"),
                                        ("lfu-log-factor", "5"), ("lfu-decay-time", "3")])
def test_honoured_eviction_directives_are_settable(percore, reference, name, value):
    for server in (percore, reference):
        c = server.client()
        old = c.config_get(name)[name]
        assert c.config_set(name, value)
        assert c.config_get(name) == {name: value}
        c.config_set(name, old)


def test_latency_percentiles_are_checked_normalized_and_reported_as_redis(percore, reference):
    answers = []
    for server in (percore, reference):
        c = server.client()
        got = []
        for value in ("abc", "50 101", "-1", "nan", "99.90 50.0 0", ""):
            try:
                got.append(c.config_set("latency-tracking-info-percentiles", value))
            except redis.ResponseError as e:
                got.append(str(e))
            got.append(c.config_get("latency-tracking-info-percentiles"))
        c.config_set("latency-tracking-info-percentiles", "25 99.5")
        c.config_resetstat()
        c.set("k", "v")
        latency = c.info("latencystats")["latency_percentiles_usec_set"]
        got.append(sorted(latency))
        answers.append(got)
    assert answers[0] == answers[1]
    assert answers[1][-1] == ["p25", "p99.5"]


def test_config_set_port_moves_every_core_and_a_busy_port_changes_nothing(start_percore, reference):
    import socket

    from conftest import free_port

    percore = start_percore(threads=2)
    for server in (reference, percore):
        c = server.client()
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            taken = busy.getsockname()[1]
            with pytest.raises(redis.ResponseError) as e:
                c.config_set("maxmemory", "10000001", "port", str(taken), "client-query-buffer-limit", "10m")
            assert str(e.value).startswith(
                "CONFIG SET failed (possibly related to argument 'port') - Unable to listen on this port"
            )
        # Nothing of the refused command was applied.
        assert c.config_get("maxmemory")["maxmemory"] == "0"
        assert c.config_get("port")["port"] == str(server.port)
        assert c.config_get("client-query-buffer-limit")["client-query-buffer-limit"] == str(1 << 30)
        # Set to the port it listens on, nothing is reopened.
        assert c.config_set("port", str(server.port))

    new = free_port()
    c = percore.client()
    assert c.config_set("port", str(new))
    # The connection that moved the port stays, on its old port.
    assert c.ping() and c.info("server")["tcp_port"] == new
    moved = [redis.Redis(port=new) for _ in range(16)]
    try:
        # Connections land on both cores and are served there.
        wait_until(lambda: all(m.ping() for m in moved))
        for i, m in enumerate(moved):
            m.set(f"k{i}", i)
        assert sum(int(c.get(f"k{i}")) for i in range(16)) == sum(range(16))
    finally:
        for m in moved:
            m.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=percore.port).ping()
    percore.port = new
