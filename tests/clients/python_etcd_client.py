"""Drives keygate with the python-etcd library (PyPI `python-etcd`).

Usage: python_etcd_client.py HOST PORT CA CERT KEY

Prints one line per check and exits 0 when all of them pass. The first check
that fails prints `FAIL <check>: <detail>` and exits 1. tests/clients.rs runs
the script and compares its whole output.
"""

import re
import sys
import threading
import time

import etcd


def main():
    host, port, ca, cert, key = sys.argv[1:6]
    port = int(port)
    url = "https://%s:%d" % (host, port)

    def connect():
        return etcd.Client(
            host=host,
            port=port,
            protocol="https",
            cert=(cert, key),
            ca_cert=ca,
            allow_reconnect=False,
            read_timeout=15,
        )

    client = connect()

    def ok(name, detail):
        print("ok %s: %s" % (name, detail), flush=True)

    def expect(name, got, want):
        if got != want:
            raise Failure(name, "got %r, want %r" % (got, want))

    def raises(name, exc, fn):
        try:
            fn()
        except exc as e:
            return e
        raise Failure(name, "no %s was raised" % exc.__name__)

    # Reads and writes.
    r = client.write("/py/key", "hello")
    expect("write", (r.action, r.key, r.value, r.newKey), ("set", "/py/key", "hello", True))
    ok("write", "%s %s=%s newKey=%s" % (r.action, r.key, r.value, r.newKey))
    r = client.read("/py/key")
    expect("read", (r.action, r.key, r.value, r.dir, r.ttl), ("get", "/py/key", "hello", False, None))
    expect("read etcd_index", r.etcd_index >= r.modifiedIndex, True)
    ok("read", "%s %s=%s" % (r.action, r.key, r.value))
    expect("get", client.get("/py/key").value, "hello")
    expect("contains", ("/py/key" in client, "/py/nokey" in client), (True, False))
    ok("contains", "/py/key in client, /py/nokey not in client")
    e = raises("read missing", etcd.EtcdKeyNotFound, lambda: client.read("/py/nokey"))
    expect("read missing", str(e), "Key not found : /py/nokey")
    ok("read missing", "EtcdKeyNotFound(%s)" % e)
    e = raises(
        "create existing",
        etcd.EtcdAlreadyExist,
        lambda: client.write("/py/key", "again", prevExist=False),
    )
    expect("create existing", str(e), "Key already exists : /py/key")
    ok("create existing", "EtcdAlreadyExist(%s)" % e)

    # TTL: the write answers the TTL it was given, a read the time left.
    r = client.write("/py/ttl", "short-lived", ttl=60)
    expect("write ttl", (r.value, r.ttl, r.expiration is not None), ("short-lived", 60, True))
    ok("write ttl", "ttl=%d expiration set" % r.ttl)
    r = client.read("/py/ttl")
    expect("read ttl", r.ttl in (59, 60), True)
    ok("read ttl", "59 <= ttl <= 60")
    r = client.refresh("/py/ttl", ttl=300)
    expect("refresh", (r.value, r.ttl), ("short-lived", 300))
    ok("refresh", "ttl=%d value=%s" % (r.ttl, r.value))
    r = client.write("/py/gone", "x", ttl=1)
    time.sleep(2.2)
    raises("ttl expiry", etcd.EtcdKeyNotFound, lambda: client.read("/py/gone"))
    ok("ttl expiry", "/py/gone expired after 1 s")

    # Directories.
    r = client.write("/py/dir", None, dir=True)
    expect("mkdir", (r.action, r.key, r.dir), ("set", "/py/dir", True))
    ok("mkdir", "%s %s dir=%s" % (r.action, r.key, r.dir))
    client.write("/py/dir/a", "1")
    client.write("/py/dir/sub/b", "2")
    client.write("/py/dir/sub/c", "3")
    r = client.read("/py/dir", recursive=True, sorted=True)
    leaves = [(n.key, n.value) for n in r.leaves]
    expect(
        "read recursive",
        leaves,
        [("/py/dir/a", "1"), ("/py/dir/sub/b", "2"), ("/py/dir/sub/c", "3")],
    )
    ok("read recursive", " ".join("%s=%s" % kv for kv in leaves))
    every = [(n.key, n.dir) for n in r.get_subtree()]
    expect(
        "subtree",
        every,
        [
            ("/py/dir", True),
            ("/py/dir/a", False),
            ("/py/dir/sub", True),
            ("/py/dir/sub/b", False),
            ("/py/dir/sub/c", False),
        ],
    )
    ok("subtree", " ".join(k + ("/" if d else "") for k, d in every))
    e = raises(
        "rmdir not empty",
        etcd.EtcdDirNotEmpty,
        lambda: client.delete("/py/dir", dir=True),
    )
    expect("rmdir not empty", str(e), "Directory not empty : /py/dir")
    ok("rmdir not empty", "EtcdDirNotEmpty(%s)" % e)
    e = raises("delete dir as file", etcd.EtcdNotFile, lambda: client.delete("/py/dir"))
    expect("delete dir as file", str(e), "Not a file : /py/dir")
    ok("delete dir as file", "EtcdNotFile(%s)" % e)
    r = client.delete("/py/dir", recursive=True, dir=True)
    expect("delete recursive", (r.action, r.key), ("delete", "/py/dir"))
    raises("delete recursive", etcd.EtcdKeyNotFound, lambda: client.read("/py/dir/sub/b"))
    ok("delete recursive", "%s %s, /py/dir/sub/b is gone" % (r.action, r.key))

    # Compare-and-swap and compare-and-delete.
    client.write("/py/cas", "one")
    r = client.test_and_set("/py/cas", "two", "one")
    expect("test_and_set", (r.action, r.value, r._prev_node.value), ("compareAndSwap", "two", "one"))
    ok("test_and_set", "%s one -> %s" % (r.action, r.value))
    e = raises(
        "test_and_set failure",
        etcd.EtcdCompareFailed,
        lambda: client.test_and_set("/py/cas", "three", "one"),
    )
    expect("test_and_set failure", str(e), "Compare failed : [one != two]")
    ok("test_and_set failure", "EtcdCompareFailed(%s)" % e)
    r = client.write("/py/cas", "three", prevValue="two")
    expect("prevValue", r.value, "three")
    ok("write prevValue", "two -> %s" % r.value)
    r = client.read("/py/cas")
    stale = r.modifiedIndex
    r.value = "four"
    r = client.update(r)
    expect("update", (r.action, r.value), ("compareAndSwap", "four"))
    ok("update", "prevIndex CAS three -> %s" % r.value)
    e = raises(
        "prevIndex failure",
        etcd.EtcdCompareFailed,
        lambda: client.write("/py/cas", "five", prevIndex=stale),
    )
    expect("prevIndex failure", str(e).startswith("Compare failed : [%d != " % stale), True)
    ok("prevIndex failure", "EtcdCompareFailed")
    e = raises(
        "compare-and-delete failure",
        etcd.EtcdCompareFailed,
        lambda: client.delete("/py/cas", prevValue="three"),
    )
    expect("compare-and-delete failure", str(e), "Compare failed : [three != four]")
    r = client.delete("/py/cas", prevValue="four")
    expect("compare-and-delete", r.action, "compareAndDelete")
    ok("compare-and-delete", "wrong prevValue refused, right one deleted")

    # In-order keys.
    first = client.write("/py/queue", "job1", append=True)
    second = client.write("/py/queue", "job2", append=True)
    for r in (first, second):
        if not re.fullmatch(r"/py/queue/\d{20}", r.key):
            raise Failure("append", "key %r is not /py/queue/<20 digits>" % r.key)
    expect("append", (first.action, first.newKey, first.key < second.key), ("create", True, True))
    ok("append", "create /py/queue/<20 digits>, increasing")
    r = client.read("/py/queue", recursive=True, sorted=True)
    expect("append order", [n.value for n in r.leaves], ["job1", "job2"])
    ok("append order", "job1 job2")

    # Watch: a second client writes once the watch is waiting.
    client.write("/py/watched", "before")

    def writer():
        other = connect()
        time.sleep(0.5)
        deadline = time.time() + 10
        while other.store_stats["watchers"] < 1 and time.time() < deadline:
            time.sleep(0.05)
        other.write("/py/watched", "after")

    t = threading.Thread(target=writer)
    t.start()
    r = client.watch("/py/watched", timeout=10)
    t.join()
    expect("watch", (r.action, r.key, r.value, r._prev_node.value), ("set", "/py/watched", "after", "before"))
    ok("watch", "%s %s=%s" % (r.action, r.key, r.value))
    # A watch from an index already in the history answers at once.
    r = client.watch("/py/watched", index=r.modifiedIndex, timeout=5)
    expect("watch index", r.value, "after")
    ok("watch index", "waitIndex in history answers %s" % r.value)
    e = raises(
        "watch timeout",
        etcd.EtcdWatchTimedOut,
        lambda: client.watch("/py/quiet", timeout=1),
    )
    ok("watch timeout", "EtcdWatchTimedOut after 1 s")

    # Cluster endpoints.
    expect("machines", client.machines, [url])
    ok("machines", " ".join(client.machines))
    members = client.members
    expect("members", [(m["name"], m["clientURLs"]) for m in members.values()], [("keygate", [url])])
    ok("members", "keygate %s" % url)
    leader = client.leader
    expect("leader", (leader["name"], leader["clientURLs"]), ("keygate", [url]))
    ok("leader", "%s %s" % (leader["name"], " ".join(leader["clientURLs"])))
    expect("version", (client.version, client.cluster_version), ("3.4.0", "3.4.0"))
    ok("version", "etcdserver %s etcdcluster %s" % (client.version, client.cluster_version))
    stats = client.stats
    expect("stats", (stats["state"], stats["name"]), ("StateLeader", "keygate"))
    ok("stats", "%s %s" % (stats["name"], stats["state"]))

    print("all checks passed", flush=True)


class Failure(Exception):
    def __init__(self, name, detail):
        super().__init__("%s: %s" % (name, detail))


if __name__ == "__main__":
    try:
        main()
    except Failure as f:
        print("FAIL %s" % f, flush=True)
        sys.exit(1)
