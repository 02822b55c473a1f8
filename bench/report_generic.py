#!/usr/bin/env python3
"""The "Generic paths (compat-xs local store)" section of docs/BENCHMARKS.md,
from the raw output of bench/generic.sh (RESULTS/raw/generic.<rep>) and
RESULTS/meta.txt. Standard library only.

    bench/report_generic.py RESULTS DOC   rewrite the section in DOC
                                          (between its markers; added
                                          before "## Failures" if absent)

bench/report.py imports section() for the whole report of scripts/bench.sh.
Every figure: the median over repetitions of each repetition's median,
[min-max over repetitions]; ratios are paired within a repetition.
"""
import glob
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reportlib  # noqa: E402
from reportlib import fmt, kv, machine, summ  # noqa: E402

BEGIN, END = "<!-- bench:generic:begin -->", "<!-- bench:generic:end -->"
IMPLS = ["compat-xs-local", "compat-xs-local-disk", "xenstored", "oxenstored",
         "compat-xs-mixed"]
LABEL = {
    "compat-xs-local": "compat-xs local (tmpfs)",
    "compat-xs-local-disk": "compat-xs local (ext4)",
    "xenstored": "xenstored (C)",
    "oxenstored": "oxenstored (OCaml)",
    "compat-xs-mixed": "compat-xs mixed -> xenstored",
}
OPNAME = {"read": "xs_read", "write": "xs_write", "txn4": "4-write transaction",
          "watch": "watch (write -> event)"}


def load(res):
    ops, pop = {}, {}
    for path in sorted(glob.glob(os.path.join(res, "raw", "generic.*"))):
        rep = int(path.rsplit(".", 1)[1])
        with open(path) as f:
            for line in f:
                if not line.startswith("generic impl="):
                    continue
                d = kv(line)
                key = (d["impl"], d["op"], int(d["n"]))
                if d["op"] == "populate":
                    pop.setdefault(key, {})[rep] = d
                elif "median_us" in d:
                    ops.setdefault(key, {})[rep] = {
                        k: float(v) for k, v in d.items()
                        if k.endswith("_us") or k in ("samples", "eagain")}
    return ops, pop


def cell(s, unit=" us"):
    return reportlib.cell(s, unit=unit)


def local_above(ops, base, rat, named_ops, ns, key):
    """'NAME at N=n: local X us, B Y us' for each (op, NAME) of named_ops,
    N of ns and daemon B of rat where the local store's key (median over
    repetitions) is above B's."""
    out = []
    for o, nm in named_ops:
        for n in ns:
            lv = summ([x[key] for x in ops.get((base, o, n), {}).values()])
            for b in rat:
                bv = summ([x[key] for x in ops.get((b, o, n), {}).values()])
                if lv and bv and lv[0] > bv[0]:
                    out.append(f"{nm} at N={n}: local {fmt(lv[0])} us, "
                               f"{b} {fmt(bv[0])} us")
    return out


def ratio(a, b):
    """Per-repetition a/b of the medians, summarised."""
    if not a or not b:
        return None
    return summ([a[r]["median_us"] / b[r]["median_us"]
                 for r in a if r in b and b[r]["median_us"] > 0])


def rcell(s, bold=True):
    if s is None:
        return "n/a"
    b = "**" if bold else ""
    return f"{b}{fmt(s[0])}x{b} [{fmt(s[1])}-{fmt(s[2])}]"


def section(res, meta, command, where="build/bench/generic/"):
    ops, pop = load(res)
    if not ops:
        return []
    out = []
    w = out.append
    ns = sorted({n for (_, _, n) in ops})
    impls = [i for i in IMPLS if any(k[0] == i for k in ops)]
    SETUP = ("records", "introduce")
    allops = sorted({o for (_, o, _) in ops if o not in SETUP},
                    key=lambda o: (list(OPNAME).index(o) if o in OPNAME else 9,
                                   int(o[3:]) if o.startswith("txn") and o[3:].isdigit() else 0))
    reps = meta.get("generic_reps", meta.get("reps", "?"))
    w(BEGIN)
    w("## Generic paths (compat-xs local store)\n")
    w(f"*From `{command}` on {meta.get('date')}, git {meta.get('git')}, " +
      (f"{reps} repetitions, every configuration in each, interleaved; "
       if reps != "1" else "one repetition; ") +
      f"CPU: {machine(meta)}, {meta.get('nproc')} cores, shared with "
      f"other jobs: load average {meta.get('loadavg_start')} at the start, "
      f"{meta.get('loadavg_end', '?')} at the end (1/5/15 min). "
      f"Raw lines and the machine's details: `{where}`.*\n")
    w("What a toolstack does outside the device paths (a domain's name, "
      "memory target, its `/vm` record) through `libxenstore.so.4`: "
      "`bench/generic.c` (`build/bench/generic-bench`), the same binary in "
      "every configuration; only the library it loads and the store behind "
      "it differ. **Configurations:**\n")
    w("| configuration | library | store |")
    w("|---|---|---|")
    desc = {
        "compat-xs-local": ("compat-xs, `NOXS_COMPAT_MODE=local`",
                            "LMDB environment on tmpfs (`/dev/shm`), no daemon; noxsd runs (device pages)"),
        "compat-xs-local-disk": ("compat-xs, `NOXS_COMPAT_MODE=local`",
                                 f"LMDB environment on {meta.get('generic_disk', 'disk')}, as `/var/lib/noxs/xenstore` on a dom0"),
        "xenstored": ("Debian's libxenstore4", "Debian's xenstored 4.17 (C), Unix socket, state on tmpfs"),
        "oxenstored": ("Debian's libxenstore4", "Debian's oxenstored 4.17 (OCaml), Unix socket, state on tmpfs"),
        "compat-xs-mixed": ("compat-xs, `NOXS_COMPAT_MODE=mixed`",
                            "xenstored as above, reached through compat-xs's wire client; noxsd runs"),
    }
    for i in impls:
        w(f"| {LABEL[i]} | {desc[i][0]} | {desc[i][1]} |")
    w("")
    w("**Load: the store holds N domains** as libxl leaves them after "
      "`xl create` (21 values, 32 nodes per domain with their directories: "
      "`/local/domain/<d>/{name,domid,vm,memory/*,cpu/*,control/*,console/*,data}`, "
      "`/vm/<uuid>/{name,uuid,image/*,start_time}`, `/libxl/<d>/*`; libxl's "
      "permissions: the domain may read its directory and its `/vm` record, "
      "write `data` and `control/shutdown`), written one transaction per "
      "domain, then `xs_introduce_domain(d, no ring page, port 1)`: the "
      "daemons then hold N idle domain (ring) connections, as on Xen. The "
      "measured node is domain (N+1)/2's `memory/target`. Held during the "
      "measurement: the measuring connection and one watcher connection in "
      "another process, nothing else: no per-guest sockets, no guest "
      "watches, no xl monitor processes (each of which adds to the "
      "daemons' cost per request), so the daemons' figures here are for a "
      "quiet host.\n")
    fails = {}
    for (i, _, n), d in pop.items():
        for r, x in d.items():
            if int(x.get("introduce_failed", "0")) > 0:
                fails.setdefault(i, set()).add(int(x["introduce_failed"]))
    if fails:
        w("**Not as intended in this run:** " + "; ".join(
            f"{LABEL[i]}: `xs_introduce_domain` failed for every domain "
            f"({max(v)} of {max(v)})" for i, v in sorted(fails.items())) +
          ". In local mode compat-xs passes event channel \"0\" to the local "
          "store's introduce, which refuses a port of 0 (EINVAL); the "
          "domains are still created in noxsd, only the local store's "
          "record of introduced domains stays empty. No measured request "
          "reads that record.\n")
    w("**Ops** (one handle, `XBT_NULL` unless said): `xs_read` of "
      "`memory/target`; `xs_write` of it; a transaction writing "
      "`memory/target`, `memory/static-max`, `name`, `/vm/<uuid>/name` "
      "(start to end); watch: another process watches `memory/target`, "
      "time from before our `xs_write` to the return of its "
      "`xs_read_watch` (both processes' `CLOCK_MONOTONIC`)" +
      ("; txnK: a transaction of K writes (`data/k0..`)" if any(
          o.startswith("txn") and o != "txn4" for o in allops) else "") +
      f". Each op {meta.get('generic_iter', '1000')} times "
      f"(watch: {meta.get('generic_watch_iter', '300')}) or for "
      f"{meta.get('generic_budget_ms', '3000')} ms, whichever ends first, "
      "after 10 unrecorded runs. Cells: median [min-max over repetitions] "
      "of each repetition's median; p90 is the median of the repetitions' "
      "90th percentiles.\n")
    base = "compat-xs-local"
    head = ["op", "N"] + [f"{LABEL[i]} median / p90" for i in impls]
    rat = [b for b in ("xenstored", "oxenstored") if b in impls and base in impls]
    head += [f"{b} / local (tmpfs)" for b in rat]
    if "compat-xs-mixed" in impls and "xenstored" in impls:
        head.append("mixed / xenstored")
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    slower = []
    for o in allops:
        for n in ns:
            row = [OPNAME.get(o, o.replace("txn", "transaction of ") + " writes"), str(n)]
            for i in impls:
                d = ops.get((i, o, n), {})
                m = summ([x["median_us"] for x in d.values()])
                p = summ([x["p90_us"] for x in d.values()])
                row.append("n/a" if m is None else f"{cell(m)} / {fmt(p[0])} us")
            for b in rat:
                r = ratio(ops.get((b, o, n)), ops.get((base, o, n)))
                row.append(rcell(r))
                if r and r[0] < 1:
                    slower.append((o, n, b, r))
            if "compat-xs-mixed" in impls and "xenstored" in impls:
                row.append(rcell(ratio(ops.get(("compat-xs-mixed", o, n)),
                                       ops.get(("xenstored", o, n)))))
            w("| " + " | ".join(row) + " |")
    w("")
    # Growth with N: the largest N's median over the smallest's, paired.
    if len(ns) >= 2:
        lo_n, hi_n = ns[0], ns[-1]
        w(f"**Growth from N={lo_n} to N={hi_n}** (median at N={hi_n} / "
          f"median at N={lo_n}, paired within each repetition):\n")
        w("| op | " + " | ".join(LABEL[i] for i in impls) + " |")
        w("|---|" + "---|" * len(impls))
        for o in allops:
            w(f"| {OPNAME.get(o, o.replace('txn', 'transaction of ') + ' writes')} | " +
              " | ".join(rcell(ratio(ops.get((i, o, hi_n)), ops.get((i, o, lo_n))), False)
                         for i in impls) + " |")
        w("")
    # The tails: where the local store's p90 is above a daemon's.
    tails = local_above(ops, base, rat, [(o, OPNAME.get(o, o)) for o in allops],
                        ns, "p90_us")
    if slower:
        w("**Where the local store is slower** in this run (ratio below 1, "
          "median over repetitions): " + "; ".join(
              f"{OPNAME.get(o, o)} at N={n}: {b} / local {fmt(r[0])}x "
              f"[{fmt(r[1])}-{fmt(r[2])}]" for o, n, b, r in slower) + ".\n")
    else:
        w("**Medians:** in this run the local store's median is below both "
          "daemons' for every op and N in the table (every ratio above 1). "
          "That is not the whole story: see " +
          ("the tails and " if tails else "") + "transactions below.\n")
    if tails:
        w("**Tails:** the local store's 90th percentile is above a "
          "daemon's for: " + "; ".join(tails) + " (on this loaded 2-core "
          "host; where the time goes in those slow samples was not "
          "investigated).\n")
    w("**What a local-store request costs** (compat-xs/lstore*.c). A read "
      "is an LMDB read-only transaction in the calling process: keyed "
      "lookups of the node and its permissions, no system call and no "
      "other process. A write outside a transaction is one LMDB write "
      "transaction: it takes LMDB's writer lock (process-shared, in "
      "`lock.mdb`: writes of every dom0 process on the host take turns), "
      "writes the node and a journal record of the change, trims old "
      "journal records, commits, then writes the `bell` file that watchers "
      "follow with inotify. The environment is opened with `MDB_NOSYNC`: "
      "a commit writes its pages and the meta page with `pwrite` and does "
      "**not** fsync, so a write costs page-cache work, not a disk flush, "
      "on ext4 as on tmpfs; a host crash can lose or tear the last "
      "commits, and the store, which describes one boot's domains, is "
      "removed at the next boot. A process killed at any moment leaves a "
      "consistent tree (LMDB's copy-on-write commit). A "
      "watch event crosses processes as: the writer's `pwrite` of the bell, "
      "inotify, the watcher's epoll fd, the watcher reads the journal from "
      "its last sequence and matches its watches.\n")
    growth = []
    for i in ("compat-xs-local", "xenstored", "oxenstored"):
        for n in ns[:1]:
            meds = [(int(o[3:]), summ([x["median_us"] for x in ops.get((i, o, n), {}).values()]))
                    for o in allops if o.startswith("txn") and o[3:].isdigit()]
            meds = [(k, m) for k, m in sorted(meds) if m]
            if len(meds) >= 2:
                (k1, m1), (k2, m2) = meds[-2], meds[-1]
                growth.append(f"{LABEL[i]} at N={n}: " + ", ".join(
                    f"{k} writes {fmt(m[0])} us" for k, m in meds) +
                    f" (x{fmt(m2[0] / m1[0])} from {k1} to {k2} writes)")
    w("**Large transactions: the local store's work grows with the square "
      "of their size.** "
      "Transactions are optimistic, as xenstored's, but once a transaction "
      "has written, each of its further writes (and each first read of a "
      "node) opens an LMDB *write* transaction, replays all of the "
      "transaction's earlier writes into it (so that the request sees "
      "them), answers, and aborts it; the commit replays them once "
      "more. A transaction of K writes thus costs about K\u00b2/2 "
      "replayed writes, and each such request holds the store-wide "
      "writer lock while it replays, so every other process's writes "
      "wait behind it. Measured (median of the "
      "repetitions' medians): " + ("; ".join(growth) if growth else "n/a") +
      "; for 4 times the writes, linear growth is x4 and quadratic x16. "
      "Whether and where the local store becomes the slower one for "
      "larger transactions is not measured in this run. libxl's domain "
      "creation writes about 30 nodes in "
      "one transaction and reads every domain's name inside it "
      "(`libxl__domain_rename`), each first read a replay of the writes "
      "before it.\n")
    w("**The daemons at N=1000.** Their growth from 10 to 1000 domains "
      "comes from the N introduced domain connections alone (nothing else "
      "is held): on every fired path, Debian's C xenstored 4.17 checks each "
      "connection's permission to see it before it looks at its watches, "
      "reading the node (and its parent) for each, and every node read "
      "walks the list of all domains: O(N\u00b2) per fired path (a transaction commit fires "
      "every path it changed); Xen 4.18 replaced that walk with a hash "
      "table, so a current C xenstored would be much faster here. "
      "oxenstored scans every domain connection on each pass of its main "
      "loop. Both are costs of a real Xen 4.17 host with N guests, but of "
      "this Xen version. Here the local store has no connection per domain "
      "(the domains have no ring page and no noxs-xsringd runs), so N "
      "only changes the size of its B-trees.\n")
    w("**On a mixed host** every path here goes to xenstored, through "
      "compat-xs's wire client: the mixed column, against the xenstored "
      "column of the same repetition, is compat-xs's own cost there. A "
      "ratio below 1 means compat-xs's client was the faster client of "
      "the same daemon. One difference we know of (strace of "
      "`xenstore-write`): Debian's library sends a request in one write "
      "per part (header, path, value), compat-xs's in one; when xenstored "
      "wakes between the parts it needs more passes of its main loop, "
      "each over all N connections. That this explains the ratios below 1 "
      "is a guess, not profiled.\n")
    if any(o in SETUP for (_, o, _) in ops):
        w("**Adding a domain** (before the measurement; for N, the domains "
          "added since the previous N): the transaction writing its "
          "records (21 writes, 3 mkdir, 4 set-permissions requests), and "
          "`xs_introduce_domain` (timed whether it succeeded or not), which "
          "in compat-xs's local mode also has noxsd create the domain's "
          "device page (in mixed mode it does so only for a domain marked "
          "as a noxs guest, which these are not). "
          "Median / p90 of those domains, median [min-max] over "
          "repetitions:\n")
        w("| step | N | " + " | ".join(LABEL[i] for i in impls) + " |")
        w("|---|---|" + "---|" * len(impls))
        for o, nm in (("records", "records transaction"),
                      ("introduce", "xs_introduce_domain")):
            for n in ns:
                cells = []
                for i in impls:
                    d = ops.get((i, o, n), {})
                    m = summ([x["median_us"] for x in d.values()])
                    p = summ([x["p90_us"] for x in d.values()])
                    cells.append("n/a" if m is None else f"{cell(m)} / {fmt(p[0])} us")
                w(f"| {nm} | {n} | " + " | ".join(cells) + " |")
        w("")
        sl = local_above(ops, base, rat,
                         (("records", "the records transaction"),
                          ("introduce", "xs_introduce_domain")), ns, "median_us")
        if sl:
            w("**Slower with compat-xs in local mode:** " + "; ".join(sl) +
              ". An introduction there is compat-xs asking noxsd for the "
              "domain's device page and then recording the domain in the "
              "local store; a daemon records it and maps its ring page and binds "
              "its event channel (here through the test shim).\n")
    # Older output has no records/introduce ops: the mean per domain.
    tp = []
    for i in ([] if any(o in SETUP for (_, o, _) in ops) else impls):
        for n in ns:
            d = pop.get((i, "populate", n), {})
            sm = summ([float(x["total_ms"]) / max(1, int(x["domains"]))
                       for x in d.values()])
            if sm:
                tp.append(f"{LABEL[i]} to N={n}: {cell(sm, ' ms')}")
    if tp:
        w("Adding one domain's records before the measurement (the "
          "transaction of 21 writes, 3 mkdir and 4 set-permissions requests, and the "
          "introduction, which in local mode also has noxsd create the "
          "domain's device page; mean per domain over the domains added "
          "for that N, not comparable as an op): " + "; ".join(tp) + ".\n")
    el = meta.get("generic_elapsed_s")
    w("Reproduce (" + (f"this run took {int(el) // 60} minutes; " if el else "") +
      "`make bench` runs it in its first repetition, `make bench-full` in "
      "each):\n")
    w("```sh")
    w("make bench-generic          # = make all build/bench/generic-bench; "
      "bench/generic.sh run build/bench/generic 3 10 1000")
    w("BENCH_GENERIC_IMPLS=compat-xs-local bench/generic.sh one compat-xs-local 10 1000   # one configuration")
    w("```\n")
    w(END)
    return out


def splice(doc, lines):
    text = open(doc).read() if os.path.exists(doc) else "# noxs benchmarks\n"
    block = "\n".join(lines) + "\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block.rstrip("\n") + tail
    elif "\n## Failures" in text:
        head, tail = text.split("\n## Failures", 1)
        text = head.rstrip("\n") + "\n\n" + block + "\n## Failures" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(doc, "w") as f:
        f.write(text)


def read_meta(res):
    meta = {}
    p = os.path.join(res, "meta.txt")
    if os.path.exists(p):
        with open(p) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    return meta


if __name__ == "__main__":
    res, doc = sys.argv[1], sys.argv[2]
    cmd = sys.argv[3] if len(sys.argv) > 3 else "make bench-generic"
    lines = section(res, read_meta(res), cmd)
    if not lines:
        sys.exit("report_generic: no generic.* results in " + res)
    splice(doc, lines)
    print(f"report: generic-path section of {doc}")
