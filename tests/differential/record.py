#!/usr/bin/env python3
"""Differential recorder: runs tests/differential/corpus.txt against an etcd v2
endpoint (or keygate) and prints normalized responses to stdout.

Usage:
  record.py --url https://127.0.0.1:23790 --cacert ca.crt --cert client.crt \
            --key client.key [--corpus corpus.txt] [--only NAME-SUBSTRING]

Dependency free (Python 3.8+). See NOTES.md for the corpus and output format.
"""
import argparse
import http.client
import json
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse

HEADERS = ["Content-Type", "X-Etcd-Index", "X-Raft-Index", "X-Raft-Term",
           "Location", "Allow", "X-Etcd-Cluster-Id"]
SYNC_TIMEOUT = 15.0      # seconds a synchronous REQ may take before "NO RESPONSE"
AWAIT_TIMEOUT = 10.0     # seconds AWAIT waits for a background response to finish
INORDER_RE = re.compile(r"(?<![0-9])[0-9]{20}(?![0-9])")
BRACKET_RE = re.compile(r"\[([^\[\]]*)\]")
INT_RE = re.compile(r"^[0-9]+$")
SELF_URL = None          # --self-url: the server's own advertised URL, shown as <self-url>


# ---------------------------------------------------------------- corpus parsing

class Seq:
    def __init__(self, name, number):
        self.name = name
        self.number = number
        self.normalize_body = False
        self.steps = []


def parse_req_fields(rest, lineno):
    parts = rest.split(" ", 2)
    if len(parts) < 2:
        raise SystemExit("corpus line %d: need METHOD TARGET" % lineno)
    method, target = parts[0], parts[1]
    body = parts[2] if len(parts) == 3 and parts[2] != "" else None
    return method, target, body


def parse_corpus(path):
    seqs = []
    cur = None
    pending_hdrs = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if line.startswith("###"):
                cur = Seq(line[3:].strip(), len(seqs) + 1)
                seqs.append(cur)
                pending_hdrs = []
                continue
            stripped = line.strip()
            if stripped == "" or stripped.startswith("#"):
                continue
            if cur is None:
                raise SystemExit("corpus line %d: directive before first ###" % lineno)
            word, _, rest = line.partition(" ")
            if word == "NORMALIZE-BODY":
                cur.normalize_body = True
            elif word == "HDR":
                name, _, value = rest.partition(":")
                pending_hdrs.append((name.strip(), value.strip()))
            elif word == "REQ":
                m, t, b = parse_req_fields(rest, lineno)
                cur.steps.append(("REQ", m, t, b, pending_hdrs))
                pending_hdrs = []
            elif word == "BG":
                name, _, rest2 = rest.partition(" ")
                m, t, b = parse_req_fields(rest2, lineno)
                cur.steps.append(("BG", name, m, t, b, pending_hdrs))
                pending_hdrs = []
            elif word == "AWAIT":
                cur.steps.append(("AWAIT", rest.strip()))
            elif word == "SLEEP":
                cur.steps.append(("SLEEP", int(rest.strip())))
            elif word == "REPEAT":
                n, _, rest2 = rest.partition(" ")
                m, t, b = parse_req_fields(rest2, lineno)
                cur.steps.append(("REPEAT", int(n), m, t, b))
            else:
                raise SystemExit("corpus line %d: unknown directive %r" % (lineno, word))
    return seqs


# ---------------------------------------------------------------- expansion

BEXPR_RE = re.compile(r"\$\{B([+-][0-9]+)?(:020)?\}")


def bexpr(m, base):
    v = base + int(m.group(1) or "0")
    return "%020d" % v if m.group(2) else str(v)


def expand(s, prefix, base, i=None, keep_b=False):
    """Expand $P, ${B...} and $I. keep_b=True leaves ${B...} as written (for printed request lines)."""
    if s is None:
        return None
    s = s.replace("$P", prefix)
    if not keep_b:
        s = BEXPR_RE.sub(lambda m: bexpr(m, base), s)
    if i is not None:
        s = s.replace("$I", str(i))
    return s


# ---------------------------------------------------------------- HTTP

class Client:
    def __init__(self, url, cacert, cert, key):
        u = urllib.parse.urlsplit(url)
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.https = u.scheme == "https"
        self.ctx = None
        if self.https:
            self.ctx = ssl.create_default_context(cafile=cacert)
            if cert:
                self.ctx.load_cert_chain(cert, key)
            # HTTP/1.1 only
            self.ctx.set_alpn_protocols(["http/1.1"])
        self.conn = None

    def new_conn(self, timeout):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    @staticmethod
    def send(conn, method, target, body, hdrs):
        conn.putrequest(method, target, skip_host=False, skip_accept_encoding=True)
        names = {n.lower() for n, _ in hdrs}
        data = None
        if body is not None:
            data = body.encode("utf-8")
            if "content-type" not in names:
                conn.putheader("Content-Type", "application/x-www-form-urlencoded")
            conn.putheader("Content-Length", str(len(data)))
        for n, v in hdrs:
            conn.putheader(n, v)
        conn.endheaders()
        if data:
            conn.send(data)

    def request(self, method, target, body=None, hdrs=()):
        """Synchronous request on a persistent connection. Returns a result dict."""
        for attempt in range(2):
            if self.conn is None:
                self.conn = self.new_conn(SYNC_TIMEOUT)
            try:
                self.send(self.conn, method, target, body, hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                res = {"status": resp.status, "headers": resp.getheaders(),
                       "body": data, "complete": True}
                if resp.will_close:
                    self.conn.close()
                    self.conn = None
                return res
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest) as e:
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    return {"error": "connection error: %s" % type(e).__name__}
            except socket.timeout:
                self.conn.close()
                self.conn = None
                return {"error": "NO RESPONSE (timeout %ds)" % SYNC_TIMEOUT}


class Background:
    """A request running in its own connection and thread."""

    def __init__(self, client, method, target, body, hdrs):
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.status = None
        self.headers = None
        self.chunks = []
        self.error = None
        self.conn = client.new_conn(60)
        self.thread = threading.Thread(target=self.run, args=(method, target, body, hdrs), daemon=True)
        self.thread.start()

    def run(self, method, target, body, hdrs):
        try:
            Client.send(self.conn, method, target, body, hdrs)
            resp = self.conn.getresponse()
            with self.lock:
                self.status = resp.status
                self.headers = resp.getheaders()
            while True:
                data = resp.read1(65536) if method != "HEAD" else b""
                if not data:
                    break
                with self.lock:
                    self.chunks.append(data)
        except Exception as e:  # closed by AWAIT timeout, or network error
            with self.lock:
                if self.error is None:
                    self.error = type(e).__name__
        finally:
            self.done.set()

    def await_result(self):
        finished = self.done.wait(AWAIT_TIMEOUT)
        with self.lock:
            res = {"status": self.status, "headers": self.headers,
                   "body": b"".join(self.chunks), "complete": finished and self.error is None}
            if self.status is None:
                res = {"error": "NO RESPONSE (%s)" % ("timeout %ds" % AWAIT_TIMEOUT if not finished else self.error)}
        self.close()
        return res

    def close(self):
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.conn.close()
        except Exception:
            pass


# ---------------------------------------------------------------- normalization

class Norm:
    def __init__(self, base):
        self.base = base

    def idx(self, v):
        try:
            n = int(v)
        except (TypeError, ValueError):
            return v
        if n == 0:
            return "0"
        d = n - self.base
        return "B+%d" % d if d >= 0 else "B-%d" % -d

    def text(self, s):
        if SELF_URL:
            s = s.replace(SELF_URL, "<self-url>")
        return INORDER_RE.sub(lambda m: self.idx(m.group(0)), s)

    def cause(self, s):
        # "[a/b]" (401) and "[x != y]" (101 prevIndex part): normalize when both sides are integers
        def fix(m):
            inner = m.group(1)
            for sep in ("/", " != "):
                parts = inner.split(sep)
                if len(parts) == 2 and all(INT_RE.match(p) for p in parts):
                    return "[" + sep.join(self.idx(p) for p in parts) + "]"
            return m.group(0)
        return BRACKET_RE.sub(fix, s)

    def json(self, obj, errcode=None):
        if isinstance(obj, dict):
            code = obj.get("errorCode", errcode)
            out = {}
            for k, v in obj.items():
                if k in ("createdIndex", "modifiedIndex", "index") and isinstance(v, int):
                    out[k] = self.idx(v)
                elif k == "expiration" and isinstance(v, str):
                    out[k] = "<time>"
                elif k == "cause" and isinstance(v, str) and code in (101, 401):
                    out[k] = self.text(self.cause(v))
                else:
                    out[k] = self.json(v, code)
            return out
        if isinstance(obj, list):
            return [self.json(x, errcode) for x in obj]
        if isinstance(obj, str):
            return self.text(obj)
        return obj


def shape(obj):
    if isinstance(obj, dict):
        return {k: shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if not obj:
            return []
        return [shape(obj[0])] + (["..."] if len(obj) > 1 else [])
    if isinstance(obj, bool):
        return "<bool>"
    if isinstance(obj, (int, float)):
        return "<number>"
    if isinstance(obj, str):
        return "<string>"
    return "<null>"


def dumps(o):
    return json.dumps(o, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def format_body(raw, norm, normalize_body):
    if raw == b"":
        return ["BODY-EMPTY"]
    nl = "+NL" if raw.endswith(b"\n") else ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ["BODY-BINARY %d bytes" % len(raw)]
    try:
        obj = json.loads(text)
        if not isinstance(obj, (dict, list)):
            raise ValueError
        return ["BODY-JSON%s %s" % (nl, dumps(shape(obj) if normalize_body else norm.json(obj)))]
    except ValueError:
        pass
    lines = [l for l in text.split("\n") if l.strip() != ""]
    if len(lines) > 1:
        try:
            objs = [json.loads(l) for l in lines]
            out = ["BODY-JSON-LINES%s %d" % (nl, len(objs))]
            for o in objs:
                out.append("  " + dumps(shape(o) if normalize_body else norm.json(o)))
            return out
        except ValueError:
            pass
    if normalize_body:
        return ["BODY-TEXT-NONEMPTY"]
    return ["BODY-TEXT " + json.dumps(norm.text(text), ensure_ascii=False)]


def format_result(res, norm, normalize_body):
    if "error" in res:
        return [res["error"]]
    out = ["STATUS %d" % res["status"]]
    hmap = {}
    for k, v in res["headers"] or []:
        hmap.setdefault(k.lower(), v)   # first occurrence
    for h in HEADERS:
        v = hmap.get(h.lower())
        if v is None:
            out.append("%s: <absent>" % h)
        elif h == "X-Etcd-Index":
            out.append("%s: %s" % (h, norm.idx(v)))
        elif h in ("X-Raft-Index", "X-Raft-Term", "X-Etcd-Cluster-Id"):
            out.append("%s: <present>" % h)
        elif h == "Location":
            out.append("%s: %s" % (h, norm.text(v)))
        else:
            out.append("%s: %s" % (h, v))
    if not res.get("complete", True):
        out.append("INCOMPLETE (still open after %ds)" % AWAIT_TIMEOUT)
    out.extend(format_body(res["body"], norm, normalize_body))
    return out


def req_line(kind, method, target, body, hdrs=()):
    s = "> %s %s %s" % (kind, method, target)
    if body is not None:
        s += " " + body
    for n, v in hdrs:
        s += "  [HDR %s: %s]" % (n, v)
    return s


# ---------------------------------------------------------------- runner

def base_index(client):
    r = client.request("GET", "/v2/keys/")
    for k, v in r.get("headers") or []:
        if k.lower() == "x-etcd-index":
            return int(v)
    raise SystemExit("cannot read X-Etcd-Index from GET /v2/keys/: %r" % r)


def run_seq(client, seq, out):
    prefix = "/d%03d" % seq.number
    client.request("DELETE", "/v2/keys%s?recursive=true" % prefix)
    base = base_index(client)
    norm = Norm(base)
    bgs = {}
    out.write("### %s\n" % seq.name)
    out.write("# prefix $P=%s\n" % prefix)
    if seq.normalize_body:
        out.write("NORMALIZE-BODY\n")
    for st in seq.steps:
        kind = st[0]
        if kind == "REQ":
            _, m, t0, b0, hdrs0 = st
            t, b = expand(t0, prefix, base), expand(b0, prefix, base)
            hdrs = [(n, expand(v, prefix, base)) for n, v in hdrs0]
            res = client.request(m, t, b, hdrs)
            out.write("\n" + req_line("REQ", m, expand(t0, prefix, base, keep_b=True),
                                      expand(b0, prefix, base, keep_b=True),
                                      [(n, expand(v, prefix, base, keep_b=True)) for n, v in hdrs0]) + "\n")
            out.write("\n".join(format_result(res, norm, seq.normalize_body)) + "\n")
        elif kind == "BG":
            _, name, m, t0, b0, hdrs0 = st
            t, b = expand(t0, prefix, base), expand(b0, prefix, base)
            hdrs = [(n, expand(v, prefix, base)) for n, v in hdrs0]
            line = req_line("BG " + name, m, expand(t0, prefix, base, keep_b=True),
                            expand(b0, prefix, base, keep_b=True),
                            [(n, expand(v, prefix, base, keep_b=True)) for n, v in hdrs0])
            bgs[name] = (Background(client, m, t, b, hdrs), line)
        elif kind == "AWAIT":
            bg, line = bgs.pop(st[1])
            res = bg.await_result()
            out.write("\n" + line.replace("> BG", "> AWAIT", 1) + "\n")
            out.write("\n".join(format_result(res, norm, seq.normalize_body)) + "\n")
        elif kind == "SLEEP":
            time.sleep(st[1] / 1000.0)
        elif kind == "REPEAT":
            _, n, m, t, b = st
            res = None
            for i in range(n):
                res = client.request(m, expand(t, prefix, base, i), expand(b, prefix, base, i))
            out.write("\n" + req_line("REPEAT %d (last shown)" % n, m, expand(t, prefix, base, n - 1, True),
                                      expand(b, prefix, base, n - 1, True)) + "\n")
            out.write("\n".join(format_result(res, norm, seq.normalize_body)) + "\n")
        out.flush()
    for bg, _ in bgs.values():
        bg.close()
    client.request("DELETE", "/v2/keys%s?recursive=true" % prefix)
    out.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--cacert")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--corpus", default=__file__.rsplit("/", 1)[0] + "/corpus.txt")
    ap.add_argument("--only", help="run only sequences whose name contains this")
    ap.add_argument("--self-url", help="replace this URL (the server's advertised client URL) by <self-url>")
    a = ap.parse_args()
    global SELF_URL
    SELF_URL = a.self_url
    client = Client(a.url, a.cacert, a.cert, a.key)
    seqs = parse_corpus(a.corpus)
    out = sys.stdout
    for seq in seqs:
        if a.only and a.only not in seq.name:
            continue
        run_seq(client, seq, out)


if __name__ == "__main__":
    main()
