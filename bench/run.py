#!/usr/bin/env python3
"""keygate against etcd 3.4, on this machine, in one run.

    python3 bench/run.py                 # everything (about 15 minutes)
    python3 bench/run.py get put         # some scenarios
    python3 bench/run.py --rounds 5 --secs 10 get

Both servers speak mTLS with the same certificates (made here by
`keygate dev-certs`), keep their data on the same disk (under
target/bench/), and run pinned to core 0 while the load generator runs
pinned to core 1. etcd is Debian's etcd-server 3.4 with --enable-v2,
--client-cert-auth and its default fsync; keygate runs the embedded store
with its policy on and `log.audit = false` (GET c64 is also measured with
audit on). Request rates are measured in rounds; within a round the
servers take turns of half a second (etcd, keygate, keygate, etcd, ...),
each on its own keep-alive connections, until each had --secs of load, so
that every server sees the same moments of a shared, noisy machine. Results
are reported as the median [min-max] of the rounds. The load generator is
`kgbench` (see examples/kgbench.rs): keep-alive connections that present a
client certificate, one thread, cheaper per request than either server.

The report goes to stdout and to target/bench/report.md; raw results to
target/bench/results.json.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench")
CERTS = os.path.join(WORK, "certs")
KEYGATE = os.path.join(ROOT, "target", "release", "keygate")
KGBENCH = os.path.join(ROOT, "target", "release", "examples", "kgbench")
SERVER_CPU = "0"
LOAD_CPU = "1"
TICK = os.sysconf("SC_CLK_TCK")
VALUE = "value=" + "v" * 100
SCENARIOS = ["get", "put", "handshake", "watch", "million", "authz", "listing"]
WATCH_ROUNDS = 5

RESULTS = {}
REPORT = []


def say(line=""):
    print(line, flush=True)
    REPORT.append(line)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def proc_status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_secs(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / TICK
    except OSError:
        return 0.0


def tls_context(client="admin"):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    ctx.load_cert_chain(
        os.path.join(CERTS, f"{client}.pem"), os.path.join(CERTS, f"{client}-key.pem")
    )
    return ctx


def request(port, method, path, body=None, client="admin", timeout=5):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(client), timeout=timeout)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Server:
    """etcd or keygate, pinned to the server core."""

    def __init__(self, kind, name, audit=False, config_extra="", data=None, client="admin"):
        self.kind = kind
        self.name = name
        self.port = free_port()
        self.data = data or os.path.join(WORK, f"data-{name}")
        self.audit = audit
        self.config_extra = config_extra
        self.client = client
        self.proc = None
        self.server_extra = ""
        self.log = os.path.join(WORK, f"{name}.log")

    def fresh(self):
        shutil.rmtree(self.data, ignore_errors=True)
        return self

    def command(self):
        if self.kind == "etcd":
            peer = free_port()
            url = f"https://127.0.0.1:{self.port}"
            return [
                "etcd", "--enable-v2", "--name=bench", f"--data-dir={self.data}",
                f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=bench=http://127.0.0.1:{peer}",
                f"--cert-file={CERTS}/server.pem", f"--key-file={CERTS}/server-key.pem",
                f"--trusted-ca-file={CERTS}/ca.pem", "--client-cert-auth",
            ]
        config = os.path.join(WORK, f"{self.name}.toml")
        with open(config, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:{self.port}"\n{self.server_extra}'
                f'[tls]\ncert = "{CERTS}/server.pem"\nkey = "{CERTS}/server-key.pem"\n'
                f'client_ca = "{CERTS}/ca.pem"\n'
                f'[backend]\ndata_dir = "{self.data}"\n'
                f'[log]\naudit = {"true" if self.audit else "false"}\n'
            )
            f.write(self.config_extra or ADMIN_POLICY)
        self.config = config
        if self.kind == "bare":
            return [KGBENCH, "bare-server", "--config", config]
        if self.kind == "bare-watch":
            return [KGBENCH, "bare-watch-server", "--config", config]
        if self.kind == "bare-watch-direct":
            return [KGBENCH, "bare-watch-server", "--direct", "--config", config]
        return [KEYGATE, "serve", "--config", config]

    def start(self):
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH="x86_64")
        cmd = ["taskset", "-c", SERVER_CPU] + self.command()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"), env=env
        )
        self.ready_secs = self.wait_ready()
        return self

    def wait_ready(self, limit=120):
        """Seconds from start until GET /v2/keys/ is answered (any status
        below 500: a client whose view is below / may get 404 on an empty
        store; keygate serves only once its store is recovered)."""
        while time.monotonic() - self.started < limit:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited: see {self.log}")
            try:
                status, _ = request(self.port, "GET", "/v2/keys/", client=self.client, timeout=2)
                if status < 500:
                    return time.monotonic() - self.started
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.005)
        sys.exit(f"{self.name} did not answer within {limit}s: see {self.log}")

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def mutations_per_commit(self):
        """keygate's own count, logged when the store closes."""
        try:
            with open(self.log) as f:
                lines = [l for l in f if "store closed" in l]
        except OSError:
            return None
        if not lines:
            return None
        for part in lines[-1].split():
            if part.startswith("mutations_per_commit="):
                return float(part.split("=")[1])
        return None


ADMIN_POLICY = """
[roles.admin]
read = ["/"]
write = ["/"]
admin = true
[[bind]]
ou = "platform"
cn = "ops-*"
roles = ["admin"]
"""


def kgbench(*args):
    cmd = ["taskset", "-c", LOAD_CPU, KGBENCH] + [str(a) for a in args]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kgbench {' '.join(map(str, args))} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def tls_args(client="admin"):
    return [
        "--cacert", f"{CERTS}/ca.pem",
        "--cert", f"{CERTS}/{client}.pem",
        "--key", f"{CERTS}/{client}-key.pem",
    ]


def load(server, conns, secs, method="GET", path="/v2/keys/bench/one", body="", client="admin", n=0):
    """One load run; adds the server's CPU use (cores) to the result."""
    cpu0, t0 = cpu_secs(server.pid), time.monotonic()
    args = ["load", *tls_args(client), "--addr", f"127.0.0.1:{server.port}",
            "--path", path, "--method", method, "-c", conns, "-d", secs, "-n", n]
    if body:
        args += ["--body", body]
    r = kgbench(*args)
    r["server_cpu"] = (cpu_secs(server.pid) - cpu0) / (time.monotonic() - t0)
    r["server_peak_rss_mib"] = proc_status(server.pid, "VmHWM") / 1024
    bad = {k: v for k, v in r["status"].items() if not k.startswith("2")}
    if bad:
        sys.exit(f"{server.name}: {method} {path}: non-2xx answers {bad}")
    return r


def paired(servers, rounds, secs, conns, method="GET", path="/v2/keys/bench/one", body="",
           client="admin", slice_secs=0.5):
    """Rounds of `kgbench paired`: each server has its own keep-alive
    connections, and the servers take turns of `slice_secs` (A B, B A, ...)
    until each had `secs` of load. Every server thus sees the same moments
    of this shared machine; {name: [results]} as interleaved() gives."""
    out = {s.name: [] for s in servers}
    for _ in range(rounds):
        cpu0 = [cpu_secs(s.pid) for s in servers]
        args = ["paired", *tls_args(client), "--path", path, "--method", method,
                "-c", conns, "-d", secs, "--slice", slice_secs]
        for s in servers:
            args += ["--addr", f"127.0.0.1:{s.port}"]
        if body:
            args += ["--body", body]
        r = kgbench(*args)
        for s, c0, res in zip(servers, cpu0, r["servers"]):
            res["server_cpu"] = (cpu_secs(s.pid) - c0) / res["secs"]
            res["server_peak_rss_mib"] = proc_status(s.pid, "VmHWM") / 1024
            bad = {k: v for k, v in res["status"].items() if not k.startswith("2")}
            if bad:
                sys.exit(f"{s.name}: {method} {path}: non-2xx answers {bad}")
            out[s.name].append(res)
    return out


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def span(xs, fmt="{:.0f}"):
    if not xs:
        return "-"
    return f"{fmt.format(med(xs))} [{fmt.format(min(xs))}-{fmt.format(max(xs))}]"


def interleaved(servers, rounds, run):
    """run(server) per round, servers alternating, the order reversed every
    other round (A B, B A, A B, ...) so that neither server always runs
    first after the other; {name: [results]}, in round order."""
    out = {s.name: [] for s in servers}
    for i in range(rounds):
        for s in (servers if i % 2 == 0 else servers[::-1]):
            out[s.name].append(run(s))
    return out


def table_load(title, res, base="etcd"):
    say(f"### {title}")
    say()
    say(f"| server | req/s | p50 ms | p99 ms | p99.9 ms | server CPU (cores) | peak RSS MiB | vs {base} |")
    say("|---|---|---|---|---|---|---|---|")
    base_rate = med([r["requests_per_sec"] for r in res.get(base, [])])
    for name, rs in res.items():
        rate = [r["requests_per_sec"] for r in rs]
        ratio = med(rate) / base_rate if base_rate == base_rate and base_rate else float("nan")
        say(
            f"| {name} | {span(rate)} | {span([r['p50_ms'] for r in rs], '{:.2f}')} "
            f"| {span([r['p99_ms'] for r in rs], '{:.2f}')} | {span([r['p999_ms'] for r in rs], '{:.2f}')} "
            f"| {span([r['server_cpu'] for r in rs], '{:.2f}')} | {max(r['server_peak_rss_mib'] for r in rs):.0f} "
            f"| {ratio:.2f}x |"
        )
    say()


def seed_one(server):
    status, body = request(server.port, "PUT", "/v2/keys/bench/one", body=VALUE)
    assert status in (200, 201), body


def scenario_get(a):
    etcd = Server("etcd", "etcd").fresh().start()
    kg = Server("keygate", "keygate").fresh().start()
    kga = Server("keygate", "keygate-audit", audit=True).fresh().start()
    # The ceiling: hyper + rustls with keygate's TLS settings answering a
    # fixed 200 (no routing, no store, no policy), measured the same way.
    bare = Server("bare", "bare-hyper-rustls").fresh().start()
    for s in (etcd, kg, kga):
        seed_one(s)
    for conns in (1, 64):
        servers = [etcd, kg] + ([kga, bare] if conns == 64 else [])
        res = paired(servers, a.rounds, a.secs, conns)
        RESULTS[f"get_c{conns}"] = res
        table_load(f"GET one key, {conns} connection{'s' if conns > 1 else ''}", res)
        if conns == 64:
            rate = lambda name: med([r["requests_per_sec"] for r in res[name]])
            say(f"keygate / ceiling: {rate('keygate') / rate('bare-hyper-rustls'):.2f}; "
                f"ceiling / etcd: {rate('bare-hyper-rustls') / rate('etcd'):.2f}x")
            say()
    for s in (etcd, kg, kga, bare):
        s.stop()


def scenario_put(a):
    for conns in (1, 64):
        etcd = Server("etcd", "etcd").fresh().start()
        kg = Server("keygate", "keygate").fresh().start()
        res = paired([etcd, kg], a.rounds, a.secs, conns, "PUT", "/v2/keys/bench/{rand}", VALUE)
        etcd.stop()
        kg.stop()
        RESULTS[f"put_c{conns}"] = res
        table_load(f"Durable PUT of random keys ({len(VALUE) - 6}-byte values), {conns} connection{'s' if conns > 1 else ''}", res)
        mpc = kg.mutations_per_commit()
        RESULTS[f"put_c{conns}_mutations_per_commit"] = mpc
        say(f"keygate writes per commit (journal records vs mutations): {mpc}")
        say()


def scenario_handshake(a):
    etcd = Server("etcd", "etcd").fresh().start()
    kg = Server("keygate", "keygate").fresh().start()
    for s in (etcd, kg):
        seed_one(s)

    def run(s):
        cpu0, t0 = cpu_secs(s.pid), time.monotonic()
        r = kgbench("handshakes", *tls_args(), "--addr", f"127.0.0.1:{s.port}", "-c", 16, "-d", a.secs)
        r["server_cpu"] = (cpu_secs(s.pid) - cpu0) / (time.monotonic() - t0)
        return r

    res = interleaved([etcd, kg], a.rounds, run)
    etcd.stop()
    kg.stop()
    RESULTS["handshake"] = res
    say("### Full mTLS handshakes (a new connection, one GET, no resumption; 16 clients)")
    say()
    say("| server | handshakes/s | p50 ms | p99 ms | server CPU | vs etcd |")
    say("|---|---|---|---|---|---|")
    base = med([r["handshakes_per_sec"] for r in res["etcd"]])
    for name, rs in res.items():
        h = [r["handshakes_per_sec"] for r in rs]
        say(f"| {name} | {span(h)} | {span([r['p50_ms'] for r in rs], '{:.2f}')} | "
            f"{span([r['p99_ms'] for r in rs], '{:.2f}')} | {span([r['server_cpu'] for r in rs], '{:.2f}')} | {med(h) / base:.2f}x |")
    say()


# Wakes per armed set of watchers (one wake alone is noisy).
WAKES = 3


def scenario_watch(a):
    # The ceilings: the least a server can do for this scenario with the
    # TLS and async runtime keygate uses (kgbench bare-watch-server), waking
    # a task per watch as keygate does, and writing every event from the
    # PUT itself before any watch's task runs (--direct).
    ceiling, direct = "bare-tokio-rustls", "bare-direct-writes"
    res = {"etcd": [], "keygate": [], ceiling: [], direct: []}
    kinds = {"etcd": "etcd", "keygate": "keygate", ceiling: "bare-watch",
             direct: "bare-watch-direct"}
    # A single wake of the same server moves by a quarter between rounds on
    # a shared machine: more rounds than the rate scenarios, the servers
    # taking turns first.
    for i in range(WATCH_ROUNDS):
        names = list(res)
        for name in names[i % len(names):] + names[:i % len(names)]:
            s = Server(kinds[name], name, config_extra="").fresh()
            if name != "etcd":
                s.config_extra = ADMIN_POLICY
                s.server_extra = "max_connections = 12000\n"
            s.start()
            r = kgbench("watchers", *tls_args(), "--addr", f"127.0.0.1:{s.port}",
                        "--pid", s.pid, "-n", a.watchers, "--wakes", WAKES)
            for w in r["wakes"]:
                if w["woken"] != a.watchers:
                    sys.exit(f"{name}: only {w['woken']} of {a.watchers} watchers woke: {r}")
            res[name].append(r)
            s.stop()
    RESULTS["watch"] = res
    say(f"### {a.watchers} long-poll watchers, each on its own connection, one write")
    say()
    say("| server | last woken ms | median woken ms | KiB per watcher | RSS before → armed MiB | server / client CPU ms in the wake | vs etcd (time) |")
    say("|---|---|---|---|---|---|---|")
    def wakes(rs, field):
        return [w[field] for r in rs for w in r["wakes"]]

    base = med(wakes(res["etcd"], "last_ms"))
    for name, rs in res.items():
        last = wakes(rs, "last_ms")
        say(f"| {name} | {span(last, '{:.1f}')} | {span(wakes(rs, 'p50_ms'), '{:.1f}')} | "
            f"{span([r['bytes_per_watcher'] / 1024 for r in rs], '{:.1f}')} | "
            f"{med([r['rss_before_kib'] for r in rs]) / 1024:.0f} → {med([r['rss_armed_kib'] for r in rs]) / 1024:.0f} | "
            f"{med(wakes(rs, 'server_cpu_ms')):.0f} / {med(wakes(rs, 'client_cpu_ms')):.0f} | "
            f"{med(last) / base:.2f} |")
    say()
    kg, bare = med(wakes(res["keygate"], "last_ms")), med(wakes(res[ceiling], "last_ms"))
    bare_direct = med(wakes(res[direct], "last_ms"))
    say(f"keygate / ceiling (time): {kg / bare:.2f}; ceiling / etcd: {bare / base:.2f}; "
        f"with direct writes: {bare_direct / base:.2f}")
    say()
    say(f"{WATCH_ROUNDS} rounds, the servers taking turns first; each round arms the watchers "
        f"once and wakes them {WAKES} times (after a wake, every "
        "watcher watches again on its keep-alive connection); times are the median [min-max] "
        "of all wakes, memory is measured at the first arming. The ceiling "
        f"({ceiling}: `kgbench bare-watch-server`) is the least a server can do here with "
        "the TLS library and async runtime keygate uses: hand-written HTTP/1.1, every watch "
        "answered by the next PUT (after an fdatasync) with an event of keygate's size, "
        "chunk and end of answer in one write; woken as keygate wakes them, a task per watch. "
        f"{direct} writes every event from the PUT's own task, connection after "
        "connection, and only then hands each connection back to its task.")
    say()


def scenario_million(a):
    n = a.keys
    res = {}
    for kind in ("etcd", "keygate"):
        s = Server(kind, kind).fresh().start()
        t0 = time.monotonic()
        r = load(s, 64, 3600, "PUT", "/v2/keys/bench/{rand}", VALUE, n=n)
        load_secs = time.monotonic() - t0
        # The listing of a million children: etcd may take seconds.
        status, body = request(s.port, "GET", "/v2/keys/bench", timeout=120)
        assert status == 200
        # As after a restart: memory a moment after the last answer, not
        # the buffers of the listing just sent.
        time.sleep(3)
        loaded_rss = proc_status(s.pid, "VmRSS") / 1024
        s.stop()
        restarts = []
        for _ in range(2):
            s.start()
            ready = s.ready_secs
            time.sleep(3)
            rss = proc_status(s.pid, "VmRSS") / 1024
            restarts.append({"ready_secs": ready, "rss_mib": rss})
            s.stop()
        res[kind] = {"load_secs": load_secs, "put_per_sec": r["requests_per_sec"],
                     "loaded_rss_mib": loaded_rss, "restarts": restarts,
                     "data_mib": dir_size(s.data) / 2**20}
        if kind == "keygate":
            # After a crash: the journal tail is replayed over the snapshot.
            s.start()
            time.sleep(1)
            s.stop(signal.SIGKILL)
            s.start()
            ready = s.ready_secs
            time.sleep(3)
            res[kind]["after_kill"] = {"ready_secs": ready,
                                       "rss_mib": proc_status(s.pid, "VmRSS") / 1024}
            s.stop()
    RESULTS["million"] = res
    say(f"### {n:,} keys loaded with PUT (64 connections), then restarted")
    say()
    say("| server | load PUT/s | RSS loaded MiB (3 s after) | first GET after restart s | RSS after restart MiB (3 s after) | data on disk MiB |")
    say("|---|---|---|---|---|---|")
    for name, r in res.items():
        say(f"| {name} | {r['put_per_sec']:.0f} | {r['loaded_rss_mib']:.0f} | "
            f"{span([x['ready_secs'] for x in r['restarts']], '{:.2f}')} | "
            f"{span([x['rss_mib'] for x in r['restarts']])} | {r['data_mib']:.0f} |")
    k = res["keygate"]
    say()
    say(f"keygate after SIGKILL (journal replayed over the snapshot): first GET after "
        f"{k['after_kill']['ready_secs']:.2f} s, RSS 3 s later {k['after_kill']['rss_mib']:.0f} MiB. "
        f"RSS ratio keygate/etcd after restart: "
        f"{med([x['rss_mib'] for x in k['restarts']]) / med([x['rss_mib'] for x in res['etcd']['restarts']]):.2f}")
    say()


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def big_policy():
    """10,000 prefixes in 1,000 roles; the client (CN ops-admin, OU
    platform) matches 10 binds granting 100 roles = 1,000 prefixes; the
    prefix covering the key it reads is the last one listed."""
    out = []
    for r in range(1000):
        prefixes = ", ".join(f'"/t{r:04}/p{p}"' for p in range(10))
        out.append(f"[roles.r{r:04}]\nread = [{prefixes}]\nwrite = [{prefixes}]\n")
    matchers = ['cn = "ops-*"', 'ou = "platform"', 'cn = "ops-admin"', 'cn = "*"',
                'cn = "ops-a*"', 'ou = "plat*"', 'cn = "*admin"', 'cn = "o*"',
                'ou = "*"', 'cn = "ops-admin*"']
    # The bound roles are r0900..r0999; other binds match nobody here.
    for b, m in enumerate(matchers):
        roles = ", ".join(f'"r{900 + b * 10 + i:04}"' for i in range(10))
        out.append(f"[[bind]]\n{m}\nroles = [{roles}]\n")
    for b in range(90):
        roles = ", ".join(f'"r{b * 10 + i:04}"' for i in range(10))
        out.append(f'[[bind]]\ncn = "nobody-{b}"\nroles = [{roles}]\n')
    return "".join(out)


SMALL_POLICY = """
[roles.one]
read = ["/t0999/p9"]
write = ["/t0999/p9"]
[[bind]]
cn = "ops-*"
roles = ["one"]
"""


def scenario_authz(a):
    path = "/v2/keys/t0999/p9/key"
    small = Server("keygate", "keygate-1-role", config_extra=SMALL_POLICY).fresh().start()
    big = Server("keygate", "keygate-100-roles", config_extra=big_policy()).fresh().start()
    for s in (small, big):
        status, body = request(s.port, "PUT", path, body=VALUE)
        assert status == 201, body
    res = paired([small, big], 5, a.secs, 64, path=path)
    small.stop()
    big.stop()
    RESULTS["authz"] = res
    table_load("Authorization cost: GET c64, 1 role vs 100 roles (1,000 of 10,000 prefixes)", res, base="keygate-1-role")
    # Within a round the two take turns in half-second slices, so the ratio
    # of a round sees the same machine; the median of the 5 round ratios is
    # the figure, the ratio of the two medians is shown too.
    pairs = [b["requests_per_sec"] / s["requests_per_sec"]
             for s, b in zip(res["keygate-1-role"], res["keygate-100-roles"])]
    RESULTS["authz_round_ratios"] = pairs
    ratio = med(pairs)
    of_medians = med([r["requests_per_sec"] for r in res["keygate-100-roles"]]) / med(
        [r["requests_per_sec"] for r in res["keygate-1-role"]])
    say(f"100-role / 1-role throughput, median of 5 interleaved rounds: {ratio:.3f} "
        f"(round ratios {', '.join(f'{p:.3f}' for p in pairs)}; ratio of the medians {of_medians:.3f})")
    say()
    cfg = os.path.join(WORK, "keygate-100-roles.toml")
    d = subprocess.run(
        ["taskset", "-c", LOAD_CPU, KGBENCH, "decide", "--config", cfg,
         "--cert", f"{CERTS}/admin.pem", "--key", "/t0999/p9/key"],
        capture_output=True, text=True, check=True)
    r = json.loads(d.stdout)
    RESULTS["decide"] = r
    say(f"Decision micro-benchmark ({r['decisions']:,} calls of `decide_basis`, "
        f"{r['read_prefixes']} read prefixes, timed one by one, clock cost "
        f"{r['clock_ns_p50']:.0f} ns subtracted): p50 {r['p50_ns']:.0f} ns, "
        f"p99 {r['p99_ns']:.0f} ns, p99.9 {r['p999_ns']:.0f} ns; computing the grants "
        f"once per connection: {r['grants_us']:.0f} µs")
    say()


TEAM_POLICY = """
[roles.team-a]
read = ["/team-a"]
write = ["/team-a"]
[[bind]]
cn = "team-a-*"
roles = ["team-a"]
"""


def export_file(path, team_keys, foreign):
    """A keygate export (import format) with team-a's keys and `foreign`
    keys of 1,000 other teams."""
    idx = 0
    with open(path, "w") as f:
        f.write('{"action":"get","node":{"dir":true,"nodes":[')
        first = True
        dirs = [("team-a", team_keys)] + [(f"team-{t:04}", foreign // 1000) for t in range(1000 if foreign else 0)]
        for name, count in dirs:
            if count == 0:
                continue
            idx += 1
            f.write(("" if first else ",") + f'{{"key":"/{name}","dir":true,"modifiedIndex":{idx},"createdIndex":{idx},"nodes":[')
            first = False
            for k in range(count):
                idx += 1
                f.write(("," if k else "") + f'{{"key":"/{name}/k{k:06}","value":"{"v" * 100}","modifiedIndex":{idx},"createdIndex":{idx}}}')
            f.write("]}")
        f.write(f']}},"etcdIndex":{idx}}}')


def scenario_listing(a):
    servers = []
    for name, foreign in (("keygate-team-only", 0), ("keygate-1M-foreign", a.keys)):
        s = Server("keygate", name, config_extra=TEAM_POLICY, client="team-a").fresh()
        dump = os.path.join(WORK, f"{name}.json")
        export_file(dump, 1000, foreign)
        s.command()  # writes the config
        subprocess.run([KEYGATE, "import", "--config", s.config, dump], check=True,
                       capture_output=True)
        servers.append(s.start())
    res = paired(servers, a.rounds, a.secs, 16, path="/v2/keys/?recursive=true", client="team-a")
    for s in servers:
        s.stop()
    RESULTS["listing"] = res
    table_load("Filtered `GET /?recursive=true` by team-a (1,000 keys visible), 16 connections",
               res, base="keygate-team-only")
    ratio = med([r["requests_per_sec"] for r in res["keygate-team-only"]]) / med(
        [r["requests_per_sec"] for r in res["keygate-1M-foreign"]])
    say(f"cost with {a.keys:,} foreign keys / cost on the team-only store: {ratio:.2f}x")
    say()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="*", default=SCENARIOS, help=" ".join(SCENARIOS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--secs", type=float, default=8)
    p.add_argument("--watchers", type=int, default=10000)
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--no-build", action="store_true")
    a = p.parse_args()
    for s in a.scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s!r}: {' '.join(SCENARIOS)}")
    if shutil.which("etcd") is None:
        sys.exit("etcd is not installed: apt-get install etcd-server")
    if os.cpu_count() < 2:
        sys.exit("needs 2 cores: one for the servers, one for the load generator")
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "keygate",
                        "--example", "kgbench"], cwd=ROOT, check=True)
    os.makedirs(WORK, exist_ok=True)
    subprocess.run([KEYGATE, "dev-certs", "--out", CERTS, "--force"], check=True,
                   capture_output=True)
    etcd_version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    say(f"# keygate vs {etcd_version}")
    say()
    say(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; servers on core {SERVER_CPU}, "
        f"load generator on core {LOAD_CPU}; {a.rounds} rounds (the watch and authorization scenarios: 5) "
        f"of {a.secs:.0f} s of load per server, taken in half-second turns (A B, B A, ...); "
        f"median [min-max] of the rounds.")
    say()
    for s in SCENARIOS:
        if s in a.scenarios:
            globals()[f"scenario_{s}"](a)
    with open(os.path.join(WORK, "report.md"), "w") as f:
        f.write("\n".join(REPORT) + "\n")
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(RESULTS, f, indent=1)


if __name__ == "__main__":
    main()
