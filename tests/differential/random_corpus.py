#!/usr/bin/env python3
"""Random request sequences in the corpus format of corpus.txt (see NOTES.md).

Usage: random_corpus.py SEED SEQUENCES STEPS > corpus

The same seed always gives the same corpus. Each sequence starts with one
write that always succeeds, then takes STEPS requests at random over a small
tree of keys under its own prefix ($P/a, $P/_h/b, ...), so that requests
collide: sets, creates, compare-and-swaps and -deletes with right and wrong
conditions, directories, hidden keys, TTLs, in-order keys, listings,
parameters in the query, the body or both, unclean paths, unknown methods;
and in half the sequences live watches, started first, which end with the
first event they see.

Left out, as they differ only in timing or would block:
- `ttl=0`: etcd removes such a key on its next expiry sweep (up to 500 ms
  later); keygate at once.
- watches that may wait for ever: a historical watch asks for the
  sequence's first write, and the sequence ends with a write on every key
  a live watch is on.
"""
import random
import sys


def main():
    seed, sequences, steps = (int(a) for a in sys.argv[1:4])
    rnd = random.Random(seed)
    comps = ["a", "b", "c", "_h"]

    def key():
        depth = rnd.choice([1, 1, 2, 2, 3])
        return "$P/" + "/".join(rnd.choice(comps) for _ in range(depth))

    def val():
        return rnd.choice(["v1", "v2", "", "x%20y", "v1"])

    def idx():
        return rnd.choice(["${B}", "${B+1}", "${B+2}", "${B+3}", "${B+5}", "0", "abc", "-1"])

    def maybe(p, s):
        return s if rnd.random() < p else None

    def query(parts):
        parts = [p for p in parts if p]
        return "?" + "&".join(parts) if parts else ""

    out = []
    for n in range(sequences):
        out.append(f"### random {seed} {n}")
        out.append("REQ PUT /v2/keys$P/z value=seed")
        # Live watches in half the sequences: each ends with the first
        # event of the steps below that it sees (or the closing writes).
        watched = []
        if rnd.random() < 0.5:
            for w in range(1 + rnd.randrange(3)):
                k = rnd.choice([key(), key(), "$P", "$P/a"])
                q = query(["wait=true", maybe(0.5, "recursive=true"),
                           maybe(0.4, "waitIndex=" + rnd.choice(["${B+3}", "${B+5}", "${B+8}"]))])
                out.append(f"BG w{w} GET /v2/keys{k}{q}")
                watched.append(k)
            # Registered before the first write.
            out.append("SLEEP 100")
        for _ in range(steps):
            op = rnd.choice(["set", "set", "set", "mkdir", "post", "get", "get", "delete",
                             "delete", "cas", "cad", "head", "watch", "refresh", "form",
                             "path", "method"])
            k = key()
            if op == "set":
                body = maybe(0.85, f"value={val()}")
                q = query([maybe(0.25, "prevExist=" + rnd.choice(["true", "false", "maybe"])),
                           maybe(0.1, "dir=" + rnd.choice(["true", "false"])),
                           maybe(0.1, "ttl=" + rnd.choice(["1000", "", "abc", "-1"])),
                           maybe(0.05, "refresh=true")])
                out.append(f"REQ PUT /v2/keys{k}{q}" + (f" {body}" if body else ""))
            elif op == "mkdir":
                q = query(["dir=true",
                           maybe(0.3, "prevExist=" + rnd.choice(["true", "false"])),
                           maybe(0.2, "ttl=1000")])
                out.append(f"REQ PUT /v2/keys{k}{q}")
            elif op == "post":
                out.append(f"REQ POST /v2/keys{k}" + (f" value={val()}" if rnd.random() < 0.8 else ""))
            elif op == "get":
                q = query([maybe(0.5, "recursive=true"), "sorted=true",
                           maybe(0.1, "quorum=" + rnd.choice(["true", "false"]))])
                out.append(f"REQ GET /v2/keys{rnd.choice([k, '$P', '$P/a'])}{q}")
            elif op == "head":
                out.append(f"REQ HEAD /v2/keys{k}")
            elif op == "delete":
                q = query([maybe(0.4, "recursive=true"), maybe(0.3, "dir=true")])
                out.append(f"REQ DELETE /v2/keys{k}{q}")
            elif op == "cas":
                q = query([maybe(0.6, f"prevValue={val()}"), maybe(0.5, f"prevIndex={idx()}"),
                           maybe(0.2, "prevExist=" + rnd.choice(["true", "false"]))])
                out.append(f"REQ PUT /v2/keys{k}{q} value={val()}")
            elif op == "cad":
                q = query([maybe(0.6, f"prevValue={val()}"), maybe(0.5, f"prevIndex={idx()}"),
                           maybe(0.2, "recursive=true"), maybe(0.2, "dir=true")])
                out.append(f"REQ DELETE /v2/keys{k}{q}")
            elif op == "watch":
                q = query(["wait=true", "waitIndex=${B+1}", "recursive=true"])
                out.append(f"REQ GET /v2/keys$P{q}")
            elif op == "refresh":
                out.append(f"REQ PUT /v2/keys{k}?ttl=1000&refresh=true&prevExist=true")
            elif op == "form":
                # Parameters in the body, the query, or both (the body wins).
                p = rnd.choice(["prevExist=true", "prevExist=false", "prevValue=v1", "dir=true",
                                "ttl=1000", "ttl=abc", "prevIndex=${B+2}", "value=q"])
                body = rnd.choice([f"value={val()}", f"value={val()}&{p}", p,
                                   f"value={val()}&value=w", ""])
                q = rnd.choice(["", f"?{p}", "?value=fromquery", f"?value=fromquery&{p}"])
                method = rnd.choice(["PUT", "PUT", "POST", "DELETE"])
                out.append(f"REQ {method} /v2/keys{k}{q}" + (f" {body}" if body else ""))
            elif op == "path":
                p = rnd.choice(["$P//a", "$P/a/", "$P/a//b", "$P/%61", "$P/a%2Fb", "$P/./a",
                                "$P/a/../b", "$P/a%20b", "$P/a?recursive=true&sorted=true"])
                method = rnd.choice(["GET", "PUT", "DELETE"])
                if method == "GET" and "?" not in p:
                    # etcd lists in map order unless asked to sort.
                    p += "?sorted=true"
                out.append(f"REQ {method} /v2/keys{p}" + (" value=p" if rnd.random() < 0.5 else ""))
            else:
                out.append(f"REQ {rnd.choice(['PATCH', 'OPTIONS', 'TRACE', 'FOO'])} /v2/keys{k}")
        if watched:
            # Writes every watch sees: past any waitIndex, a write on its
            # key on a cleared prefix; and the prefix's own delete.
            out.append("REPEAT 8 PUT /v2/keys$P/zz value=bump")
            for k in dict.fromkeys(watched):
                if k != "$P":
                    out.append("REQ DELETE /v2/keys$P?recursive=true")
                    out.append(f"REQ PUT /v2/keys{k} value=end")
            out.append("REQ PUT /v2/keys$P/zz value=end")
            out.append("REQ DELETE /v2/keys$P?recursive=true")
            for w in range(len(watched)):
                out.append(f"AWAIT w{w}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
