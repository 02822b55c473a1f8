#!/usr/bin/env python3
"""bench/report.py RESULTS DOCS [README]: turn the raw output of scripts/bench.sh
into CSV files (in RESULTS), gnuplot data (RESULTS/plot-*.dat) and
DOCS/BENCHMARKS.md. Standard library only (Debian's python3).

Every figure is the median over the repetitions of the run, with the
range (min-max over repetitions); every ratio is computed per repetition
(baseline of rep r / noxs of rep r) and then summarised the same way.
Nothing is printed that the raw files of this run do not contain.
With README, the part of it between the bench:headline markers is
rewritten with this run's headline ratios.
"""
import csv
import glob
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reportlib import cell, fmt, kv, machine, summ  # noqa: E402

RES, DOCS = sys.argv[1], sys.argv[2]
IMPLS = ["xenstored", "oxenstored", "compat-xs", "noxs"]
LABEL = {
    "xenstored": "xenstored (C)",
    "oxenstored": "oxenstored (OCaml)",
    "compat-xs": "compat-xs + noxsd",
    "noxs": "noxs native",
    "xenstored-sockets": "xenstored (C), a socket per guest",
    "oxenstored-sockets": "oxenstored (OCaml), a socket per guest",
}
# Debian's daemons in their second configuration (compat-bench
# --sockets): every guest also holds a dom0 socket carrying its requests.
SOCK = ["xenstored-sockets", "oxenstored-sockets"]


def raw(prefix):
    """(rep, line) for every line of RES/raw/PREFIX.<rep>."""
    for path in sorted(glob.glob(os.path.join(RES, "raw", prefix + ".*"))):
        rep = int(path.rsplit(".", 1)[1])
        with open(path) as f:
            for line in f:
                yield rep, line.strip()


meta = {}
with open(os.path.join(RES, "meta.txt")) as f:
    for line in f:
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            meta[k] = v
REPS = int(meta.get("reps", "1"))
NS = [int(x) for x in meta.get("ns", "").split()]

# ---- parse ----
hs = {}      # (impl, n) -> {rep: (median, p99)}
totals = {}  # (impl, n) -> {rep: total_ms}   (compat-bench)
ops = {}     # (impl, op) -> {rep: (median, p99)}
bring = {}   # (impl, n, k) -> {rep: dict}
ops_all = {}  # (impl, op, n) -> {rep: (median, p99)}
last_read_n = {}



def med_p99(d):
    return float(d["median_us"]), float(d["p99_us"])


def read_handshake(prefix):
    """bench/handshake's lines in RES/raw/PREFIX.*: its handshakes
    (n -> {rep: (median, p99)}) and its registry lookups ((n, op) -> ...)."""
    h, lk = {}, {}
    for rep, line in raw(prefix):
        if line.startswith("handshake "):
            d = kv(line)
            h.setdefault(int(d["n"]), {})[rep] = med_p99(d)
        elif line.startswith("lookup "):
            d = kv(line)
            lk.setdefault((int(d["n"]), d["op"]), {})[rep] = med_p99(d)
    return h, lk


def read_floor(prefix):
    """bench/sim-floor's lines in RES/raw/PREFIX.*: metric -> {rep:
    (median, p99)}, and the handshake floor's path counts."""
    f, path = {}, {}
    for rep, line in raw(prefix):
        if line.startswith("sim-floor "):
            d = kv(line)
            f.setdefault(line.split()[1], {})[rep] = med_p99(d)
            if line.split()[1] == "handshake_floor":
                path = {k: v for k, v in d.items()
                        if k not in ("median_us", "p99_us")}
    return f, path


native_hs, lookups = read_handshake("handshake")
hs.update({("noxs", n): v for n, v in native_hs.items()})
for rep, line in raw("compat"):
    if not line.startswith("compat daemon="):
        continue
    d = kv(line)
    impl, op = d["daemon"], d["op"]
    if op == "handshake":
        hs.setdefault((impl, int(d["n"])), {})[rep] = (
            float(d["median_us"]), float(d["p99_us"]))
    elif op == "handshake_total":
        totals.setdefault((impl, int(d["n"])), {})[rep] = float(d["total_ms"])
    elif "median_us" in d:
        # The directory line of older compat-bench versions carries the
        # entry count as n: it belongs to the read before it.
        n = int(d["n"])
        if op == "read":
            last_read_n[(impl, rep)] = n
        elif op == "directory" and (impl, rep) in last_read_n:
            n = last_read_n[(impl, rep)]
        ops_all.setdefault((impl, op, n), {})[rep] = (
            float(d["median_us"]), float(d["p99_us"]))
# floor_path: the handshake floor's counts (socket_hops, notifies, ...)
floor, floor_path = read_floor("floor")
# The same two programs under a fixed background load (scripts/bench.sh's
# loaded(): one CPU hog per core).
hs_load, _ = read_handshake("handshake-load")
floor_load, _ = read_floor("floor-load")
for prefix in ("bringup", "conc"):
    for rep, line in raw(prefix):
        d = kv(line)
        if line.startswith("bringup "):
            bring.setdefault((d["impl"], int(d["n"]), int(d["k"])), {})[rep] = {
                k: float(v) for k, v in d.items() if k not in ("impl",)}
        elif line.startswith("xsop "):
            ops_all.setdefault((d["impl"], d["op"], int(meta.get("bring_n", 0))),
                               {})[rep] = (float(d["median_us"]), float(d["p99_us"]))

# xs_* ops at two sizes: the smallest N (a nearly empty store, the
# conditions of shared/xenstored-baseline.md) and the largest N that the
# three xs_* implementations all reached.
def op_ns(op):
    per = {}
    for (i, o, n) in ops_all:
        if o == op:
            per.setdefault(i, set()).add(n)
    return per


_rn = op_ns("read")
OPS_SMALL = min(min(v) for v in _rn.values()) if _rn else None
_common = set.intersection(*_rn.values()) if _rn else set()
OPS_BIG = max(_common) if _common else None


def ops_at(n):
    out = {}
    for (i, o, m), d in ops_all.items():
        if m == n or o == "transaction4":
            out[(i, o)] = d
    return out


ops = ops_at(OPS_SMALL)
ops_big = ops_at(OPS_BIG) if OPS_BIG and OPS_BIG != OPS_SMALL else None

# Step timings (scripts/bench.sh's steps.tsv: name, rep, seconds, exit).
steps = []
spath = os.path.join(RES, "steps.tsv")
if os.path.exists(spath):
    with open(spath) as f:
        for l in f:
            x = l.rstrip("\n").split("\t")
            if len(x) == 4:
                steps.append((x[0], int(x[1]), int(x[2]), int(x[3])))


def step_secs(prefix):
    """summ() of the durations (s) of the successful steps named PREFIX*."""
    return summ([float(t) for (nm, _, t, rc) in steps
                 if nm.startswith(prefix) and rc == 0])


failures = []
fpath = os.path.join(RES, "failures.tsv")
if os.path.exists(fpath):
    with open(fpath) as f:
        failures = [l.rstrip("\n").split("\t") for l in f if l.strip()]


# ---- summaries ----
def ratio(a, b, pick=lambda x: x):
    """Per-repetition ratio a[rep]/b[rep] over the reps both have."""
    if not a or not b:
        return None
    r = [pick(a[k]) / pick(b[k]) for k in a if k in b and pick(b[k]) > 0]
    return summ(r)


def ms_or_us(us):
    return fmt(us / 1000, " ms") if us >= 1000 else fmt(us, " us")


def rcell(s):
    if s is None:
        return "n/a"
    med, lo, hi, n = s
    return f"**{fmt(med)}x** [{fmt(lo)}-{fmt(hi)}]"


def med_of(d, i=0):
    return summ([v[i] if isinstance(v, tuple) else v for v in d.values()]) if d else None


def med_p99_cell(d, div, unit):
    """'median [min-max] / p99' of {rep: (median_us, p99_us)}, in us / div."""
    m, p = med_of(d, 0), med_of(d, 1)
    if m is None:
        return "n/a"
    return f"{cell(m, lambda us: us / div, unit)} / {fmt(p[0] / div, unit)}"


# ---- CSV files ----
def write_csv(name, header, rows):
    with open(os.path.join(RES, name), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


write_csv("handshake.csv", ["impl", "n", "rep", "median_us", "p99_us"],
          [(i, n, r, m, p) for (i, n), reps in sorted(hs.items())
           for r, (m, p) in sorted(reps.items())])
write_csv("handshake_total.csv", ["impl", "n", "rep", "total_ms"],
          [(i, n, r, t) for (i, n), reps in sorted(totals.items())
           for r, t in sorted(reps.items())])
write_csv("ops.csv", ["impl", "op", "n", "rep", "median_us", "p99_us"],
          [(i, o, n, r, m, p) for (i, o, n), reps in sorted(ops_all.items())
           for r, (m, p) in sorted(reps.items())])
write_csv("floor.csv", ["metric", "rep", "median_us", "p99_us"],
          [(k, r, m, p) for k, reps in sorted(floor.items())
           for r, (m, p) in sorted(reps.items())])
BKEYS = ["total_ms", "dev_median_us", "dev_p99_us", "daemon_rss0_kb",
         "daemon_rss1_kb", "rss_per_domain_kb", "daemon_cpu_us_per_dev",
         "client_cpu_us_per_dev", "shared_pages"]
write_csv("bringup.csv", ["impl", "n", "k", "rep"] + BKEYS,
          [(i, n, k, r) + tuple(d.get(x) for x in BKEYS)
           for (i, n, k), reps in sorted(bring.items())
           for r, d in sorted(reps.items())])
write_csv("load.csv", ["program", "measure", "rep", "median_us", "p99_us"],
          [("sim-floor", k, r, m, p) for k, reps in sorted(floor_load.items())
           for r, (m, p) in sorted(reps.items())] +
          [("handshake", f"n={n}", r, m, p) for n, reps in sorted(hs_load.items())
           for r, (m, p) in sorted(reps.items())])

# ---- gnuplot data ----
def dat(name, rows):
    with open(os.path.join(RES, name), "w") as f:
        for row in rows:
            f.write(" ".join("?" if x is None else str(x) for x in row) + "\n")


def trio(s, conv=lambda x: x):
    return (None, None, None) if s is None else (conv(s[0]), conv(s[1]), conv(s[2]))


hs_ns = sorted({n for (_, n) in hs})
dat("plot-handshake.dat",
    [["#n"] + [f"{i}_med {i}_lo {i}_hi" for i in IMPLS]] +
    [[n] + [x for i in IMPLS for x in trio(med_of(hs.get((i, n), {})),
                                            lambda us: us / 1000)]
     for n in hs_ns])
OPS = ["read", "write", "directory", "watch_rtt", "transaction4"]
OPNAME = {"read": "xs_read", "write": "xs_write",
          "directory": "xs_directory", "watch_rtt": "watch RTT",
          "transaction4": "4-write txn"}
dat("plot-ops.dat",
    [["#op"] + IMPLS[:3]] +
    [[f'"{OPNAME[o]}"'] + [x for i in IMPLS[:3]
                           for x in trio(med_of((ops_big or ops).get((i, o), {})))]
     for o in OPS])
BN = int(meta.get("bring_n", "0"))
mem_rows = []
for i in IMPLS:
    d = bring.get((i, BN, 1), {})
    rss = summ([x["rss_per_domain_kb"] for x in d.values()])
    sh = summ([x["shared_pages"] * 4.0 / BN for x in d.values()])
    mem_rows.append([f'"{LABEL[i]}"'] + list(trio(rss)) +
                    list(trio(sh) if i in ("compat-xs", "noxs") else (0, 0, 0)))
dat("plot-memory.dat", [["#impl rss_med rss_lo rss_hi shared_med lo hi"]] + mem_rows)
CN = int(meta.get("conc_n", "0"))
KS = [int(x) for x in meta.get("ks", "1").split()]
dat("plot-concurrency.dat",
    [["#k"] + IMPLS] +
    [[k] + [x for i in IMPLS for x in trio(summ(
        [d["total_ms"] for d in bring.get((i, CN, k), {}).values()]))]
     for k in KS])

# ---- the report ----
out = []
w = out.append
maxn = max(NS) if NS else 0
headline_n = 1000 if 1000 in NS else maxn


CONF_RING = ("every guest's frontend talks to the daemon "
             "over its own store ring and event channel")
CONF_SOCK = ("every guest also holds a dom0 socket that "
             "carries its requests, as where xl leaves a monitor per domain")
RUN_NOTE = (f"spread [min-max] over {REPS} repetition{'s' if REPS != 1 else ''}; load average "
            f"{meta.get('loadavg_start', '?')} at start, "
            f"{meta.get('loadavg_end', '?')} at end"
            + (f", at most {meta['loadavg_max']} at a step's start"
               if meta.get('loadavg_max') else "") + "; "
            f"{machine(meta)}, {meta.get('nproc', '?')} cores")


def common_n(base):
    """headline_n, or the largest N where base and noxs both have data."""
    both = [n for n in hs_ns if hs.get((base, n)) and hs.get(("noxs", n))]
    if headline_n in both:
        return headline_n
    return max(both) if both else None


def hsr(base, impl, n):
    return ratio(hs.get((base, n)), hs.get((impl, n)), lambda x: x[0])


MAKE = "make bench" if meta.get("mode") == "short" else "make bench-full"
NS_XS = [int(x) for x in meta.get("ns_xenstored", "").split()]
NS_CX = [int(x) for x in meta.get("ns_compat_xs", meta.get("ns", "")).split()]
CX_CAP = meta.get("compat_xs_cap", "")
BASE_BR = int(meta.get("base_bring_reps", str(REPS)))


def flat(impl):
    """(n_lo, n_hi, med_lo_us, med_hi_us, ratio summ) of impl's handshake:
    the block median at its largest N over the one at its smallest,
    paired per repetition."""
    ns_ = sorted(n for (i, n) in hs if i == impl and hs[(i, n)])
    if len(ns_) < 2:
        return None
    a, b = hs[(impl, ns_[0])], hs[(impl, ns_[-1])]
    return (ns_[0], ns_[-1], med_of(a)[0], med_of(b)[0],
            ratio(b, a, lambda x: x[0]))


def flat_text(impl):
    f = flat(impl)
    if not f or not f[4]:
        return None
    lo, hi, a, b, r = f
    verdict = ("flat: within 1.5x in every repetition" if r[2] <= 1.5 else
               "not flat: it grows with N" if r[0] > 1.5 else
               "roughly flat: within 1.5x at the median, not in every repetition")
    return (f"{LABEL[impl]}, N={lo} -> N={hi}: {ms_or_us(a)} -> {ms_or_us(b)}; "
            f"block median at N={hi} / at N={lo}, per repetition: "
            f"**x{fmt(r[0])}** [{fmt(r[1])}-{fmt(r[2])}] ({verdict})")


TARGETS = [("oxenstored", "noxs", 100), ("oxenstored", "compat-xs", 10)]


def target_text(base, impl, want, n=1000):
    r = hsr(base, impl, n)
    if not r:
        return (f"{base} / {LABEL[impl]} at N={n}: not measured in this run "
                f"(target: {want}x)")
    why = "see docs/NOXSD.md, \"Where the time goes\""
    b, f = med_of(hs.get((base, n), {})), med_of(floor.get("handshake_floor", {}))
    if impl == "noxs" and r[0] < want and b and f:
        # What the target asks of the native handshake, against the part
        # of it that no implementation of this path can go below.
        need = b[0] / want
        why = (f"it needs the native handshake at {ms_or_us(need)} or less "
               f"({base}'s median, {ms_or_us(b[0])}, / {want}), and the "
               f"wake-ups, share and map of its path alone take "
               f"{ms_or_us(f[0])} in this run (`sim-floor`, (f)); " + why)
    ok = "met" if r[1] >= want else ("met at the median" if r[0] >= want
                                     else f"NOT met: {why}")
    return (f"{base} / {LABEL[impl]} at N={n}: {rcell(r)} (target at least "
            f"{want}x: {ok}{', in every repetition' if r[1] >= want else ''})")


w("# noxs benchmarks\n")
w(f"*Generated by `{MAKE}` "
  f"(`scripts/bench.sh {meta.get('mode')}`) on {meta.get('date')}, git "
  f"{meta.get('git')}; do not edit by hand. Every number below comes from "
  "that one run; the raw output and CSV files are in `build/bench/results/`.*\n")


def floor_text(n):
    """The native handshake at N=n against its path's floor, same run."""
    h, f = hs.get(("noxs", n)), floor.get("handshake_floor")
    if not h or not f:
        return None
    r = ratio(h, f, lambda x: x[0])
    ok = ("met in every repetition" if r[2] <= 2 else
          "met at the median" if r[0] <= 2 else "NOT met")
    names = {"socket_hops": "socket hops", "notifies": "notifies",
             "shares": "grant share(s)", "maps": "grant map(s)"}
    path = ", ".join(f"{v} {names.get(k, k)}" for k, v in floor_path.items())
    return (f"Native handshake at N={n}: median {cell(med_of(h), unit=' us')}; "
            f"its critical path's floor from `sim-floor` ({path}; each one-way "
            f"wake-up costed at half its measured round trip) "
            f"{cell(med_of(f), unit=' us')}; handshake / floor, per repetition: "
            f"{rcell(r)} (target within 2x: {ok}).\n")


w("## Headline\n")
nh = hs.get(("noxs", headline_n))
if nh:
    w(f"Device handshake at the {headline_n}th domain (earlier domains kept "
      "connected), median over the repetitions:\n")
    for i in IMPLS:
        s = med_of(hs.get((i, headline_n), {}))
        if s:
            w(f"- {LABEL[i]}: {ms_or_us(s[0])}")
    w("")
    for base in ("oxenstored", "xenstored"):
        nb = common_n(base)
        for impl in ("noxs", "compat-xs"):
            r = hsr(base, impl, nb) if nb else None
            if r:
                w(f"- {base} / {LABEL[impl]} at N={nb}: {rcell(r)} "
                  f"(ring-connected; {RUN_NOTE})")
    for base in SOCK:
        nb = common_n(base)
        r = hsr(base, "noxs", nb) if nb else None
        if r:
            w(f"- second configuration, {base.replace('-sockets', '')} with a "
              f"socket per guest / {LABEL['noxs']} at N={nb}: {rcell(r)} "
              f"(per-domain sockets; {RUN_NOTE})")
    for nn_, tb in ((OPS_SMALL, ops), (OPS_BIG, ops_big)):
        r = ratio((tb or {}).get(("xenstored", "read")),
                  (tb or {}).get(("compat-xs", "read")), lambda x: x[0])
        if r:
            w(f"- xs_read of a device key with {nn_} domains up, xenstored / compat-xs: {rcell(r)} "
              f"(ring-connected; {RUN_NOTE})")
    w("")
    w("Ratios are computed within each repetition and summarised as median "
      "[min-max over repetitions]. Ring-connected: " + CONF_RING +
      ", as on a Xen host (the configuration of every headline ratio). "
      "Per-domain sockets: " + CONF_SOCK + ". See [How the baseline's "
      "guests reach the daemons](#how-the-baselines-guests-reach-the-daemons).\n")
if 1000 in hs_ns and 1000 in NS_XS:
    w("The design's targets (docs/DESIGN.md), at N=1000, each ratio paired "
      "within a repetition of this run:\n")
    for base, impl, want in TARGETS:
        w(f"- {target_text(base, impl, want)}")
    ft = floor_text(1000)
    if ft:
        w(f"- {ft.strip()}")
    w("")
elif 1000 in hs_ns:
    w(f"The design's targets (at N=1000: oxenstored / noxs at least 100x, "
      f"oxenstored / compat-xs at least 10x) need Debian's daemons at 1000 "
      f"domains, which this run does not reach (it stops them at "
      f"{max(NS_XS) if NS_XS else 0}); `make bench-full` measures them.\n")
fl = [t for t in (flat_text("noxs"), flat_text("compat-xs")) if t]
if fl:
    w("Flatness of the handshake as domains are added (earlier ones kept "
      "connected):\n")
    for t in fl:
        w(f"- {t}")
    w("")
if failures:
    w(f"**{len(failures)} step(s) failed in this run**; their figures are "
      "missing (n/a) below. See [Failures](#failures).\n")

w("## Machine and versions\n")
w("| | |\n|---|---|")
for k, name in [("cpu", "CPU"), ("virt", "runs on (kernel log, or systemd-detect-virt)"),
                ("cpuidle", "cpuidle driver"), ("nproc", "cores (nproc)"), ("mem", "memory"),
                ("kernel", "kernel"), ("loadavg_start", "load average at start"),
                ("loadavg_end", "load average at end"),
                ("xen_utils", "xen-utils-4.17 (xenstored, oxenstored)"),
                ("libxenstore", "libxenstore4 (clients of the baselines)"),
                ("gcc", "gcc"), ("gnuplot", "gnuplot-nox"), ("git", "noxs git rev"),
                ("reps", "repetitions"), ("nofile_hard", "hard RLIMIT_NOFILE"),
                ("elapsed_s", "run time (s)")]:
    w(f"| {name} | {meta.get(k, '?')} |")
w("")
w("The machine is shared and small: absolute numbers are noisy (see the "
  "ranges); the ratios, taken within each repetition, are the stable part.\n")

w("## What runs, exactly\n")
w(f"`{MAKE}` = `make all` + the bench programs, then "
  "`LD_LIBRARY_PATH=build/sim:build/lib NOXS_BUILD=$PWD/build "
  f"scripts/bench.sh {meta.get('mode')}`. "
  f"For each of {REPS} repetitions, interleaved so that background load "
  "hits every implementation alike:\n")
nstr = " ".join(str(n) for n in NS)
w("```sh")
w(f"build/bench/sim-floor {meta.get('floor_n')}                      # (f)")
w(f"build/bench/handshake {nstr}                   # (a) native noxs")
w(f"build/bench/compat-bench compat-xs {' '.join(map(str, NS_CX))}     # (a)(c) legacy pair on compat-xs")
w(f"build/bench/compat-bench --ring xenstored|oxenstored {meta.get('ns_xenstored')}  # (a)(c) legacy pair, ring-connected guests")
if meta.get("xs_second_config"):
    w(f"build/bench/compat-bench --sockets xenstored|oxenstored {meta.get('ns_xenstored')}  # (a) second configuration: a socket per guest")
if BN != CN:
    w(f"build/bench/xs-bringup IMPL {BN} 1      # (b)(d)(e): xenstored, oxenstored, compat-xs")
    w(f"build/bench/noxs-bringup noxs {BN} 1    # (b)(d)(e) native")
w(f"build/bench/xs-bringup IMPL {CN} K    # (g) K = {' '.join(map(str, KS))}: xenstored, oxenstored, compat-xs")
w(f"build/bench/noxs-bringup noxs {CN} K  # (g) native" +
  ("; K = 1 is also (b)(d)(e)" if BN == CN else ""))
w(f"# with K = 1 and {BN} domains, xs-bringup also runs 1000 4-write transactions (c)")
if meta.get("bring3_ns"):
    w(f"build/bench/bringup3 {meta.get('bring3_ns')}  # (h) native, three devices per domain")
    w(f"build/bench/xs-bringup3 xenstored|oxenstored {meta.get('bring3_ns_xs')}  "
      "# (h) Debian's daemons, when built")
if meta.get("generic_ns"):
    w(f"bench/generic.sh one IMPL {meta.get('generic_ns')}  # generic paths: "
      "compat-xs local (tmpfs, ext4), xenstored, oxenstored, compat-xs mixed")
w("```\n")
if BN != CN and BASE_BR < REPS:
    w(f"To keep the run's length down, Debian's daemons' bring-up of {BN} "
      f"domains ((b), (d), (e) and the transaction latency) runs in the first "
      f"{BASE_BR} of the {REPS} repetitions only; their figures and the "
      "ratios against them come from those repetitions.\n")
xs_max = max(NS_XS) if NS_XS else 0
stop = (f"Debian's daemons stop at N = {xs_max} in this run: both do work "
        "per connection on every pass of their main loop, and C xenstored "
        "4.17 also walks its list of all domains for every unprivileged "
        "connection on every fired watch (oxenstored matches watches "
        "through a trie), so their handshake grows with N and the time to "
        "bring up N domains grows faster than N.")
tx = [(d, step_secs(f"{d} compat-bench")) for d in ("xenstored", "oxenstored")]
if all(t for _, t in tx):
    stop += (f" Measured in this run, reaching N = {xs_max} (`compat-bench`, "
             "with the latency runs at each N) took " + " and ".join(
                 f"{d} {cell(t, unit=' s')}" for d, t in tx) +
             " per repetition")
    nx_ = step_secs("native handshake")
    if nx_ and NS:
        stop += f", against {cell(nx_, unit=' s')} for native noxs to N = {max(NS)}"
    stop += "."
if meta.get("mode") == "short":
    stop += " `make bench-full` takes them to 1000."
else:
    seg = []
    for d in ("xenstored", "oxenstored"):
        ts_ = [(n, med_of(totals.get((d, n), {}))) for n in NS_XS]
        ts_ = [(n, t) for n, t in ts_ if t and n >= 100]
        if len(ts_) >= 2:
            seg.append(f"{d} " + ", ".join(
                f"{fmt(t[0] / 1000, ' s')} to N={n}" for n, t in ts_))
    if seg:
        stop += (" Their handshakes alone (`compat-bench`'s running totals, "
                 "table in (b)) took " + "; ".join(seg) + ".")
    if xs_max >= 1000 and NS and max(NS) >= 10 * xs_max:
        stop += (f" At that rate of growth, N = {max(NS)} would take each "
                 "daemon hours per repetition, so they stop at "
                 f"{xs_max}.")
w(stop + "\n")
if NS and NS_CX and max(NS_CX) < max(NS):
    w(f"compat-xs stops at N = {max(NS_CX)} instead of {max(NS)}: "
      "`compat-bench` impersonates every guest in one process, and with "
      "compat-xs each guest costs that process five file descriptors (its "
      "handle's epoll set; the pipe and stop eventfd of `xs_fileno()`, "
      "which a xenbus-like frontend polls; and its frontend's "
      "event-channel handle, on the simulator a socket; docs/COMPAT.md). "
      f"The hard `RLIMIT_NOFILE` here is {meta.get('nofile_hard')} and "
      "cannot be raised without CAP_SYS_RESOURCE, so scripts/bench.sh caps "
      f"compat-xs at (limit - 64) / 5 rounded down to 100 = {CX_CAP} "
      "(compat-bench prints the cost it measured as op=bench_fds). On Xen "
      "each guest is its own domain and holds its own few fds; dom0's "
      "backend and toolstack hold a constant number whatever N "
      "(legacy-back serves every device here with about a dozen).\n")
w("Each daemon is started fresh for each program run: Debian's "
  "`/usr/lib/xen-4.17/bin/xenstored` and `oxenstored` through "
  "`tests/compat/xsd.sh`, or `build/bin/noxsd` with its own simulator "
  "directory. The legacy pair (`tests/legacy`) is the "
  "same binary code for the three xs_* implementations: only the "
  "`libxenstore.so.4` the dynamic linker finds differs (Debian's, talking to "
  "the daemon's Unix socket, or compat-xs's). With Debian's daemons' "
  "ring-connected guests the frontend's steps are the same, spoken over "
  "the guest's ring by `bench/xsrclient.c`; the toolstack and the backend "
  "stay on dom0 sockets.\n")

w("### How the baseline's guests reach the daemons\n")
w("Debian's daemons run unmodified as domain 0 of the simulator "
  "(`tests/compat/xsd.sh` with `XSD_SIM=1`): the simulator's "
  "`libxenevtchn`, `libxengnttab` and `libxenforeignmemory` are preloaded, "
  "and `bench/xsdsim.c` (LD_PRELOAD) adds only what the simulator lacks: "
  "libxenctrl's domain queries (every domain asked about exists and runs) "
  "and `xc_map_foreign_range` (oxenstored maps a ring by its frame), the "
  "grant table's reserved xenstore entry (C xenstored maps a ring with "
  "`xengnttab_map_grant_ref(domid, GNTTAB_RESERVED_XENSTORE)`; here a "
  "foreign map of the frame the guests keep their ring in), dom0's "
  "`/proc/xen/xsd_port` (a real unbound simulator port) and `xsd_kva` (an "
  "idle page), and oxenstored's `setrlimit(RLIMIT_NOFILE)` (clamped to the "
  "hard limit). Each introduce therefore maps the guest's ring page and "
  "binds an event channel, and every notification is the simulator's.\n")
w("Configurations: **ring-connected** (`compat-bench --ring`, every "
  "headline ratio): each guest has a store ring in its own memory and an "
  "event channel, the toolstack introduces (domid, frame, port) over its "
  "dom0 socket, and the guest's frontend speaks the ring protocol as "
  "Linux's xenbus does (`bench/xsrclient.c`); the daemon has one "
  "connection per guest, its ring, as on a Xen host. **Per-domain "
  "sockets** (`compat-bench --sockets`, labelled `-sockets`): the same "
  "rings, idle, and every guest's frontend also opens a dom0 Unix socket, "
  "keeps it open and sends its requests over it, so the daemon polls N more "
  "connections on every pass of its main loop; this models a host where "
  "`xl` leaves a monitor process with a socket per domain. The dom0 "
  "backend and the toolstack use dom0 sockets in both. The socket per "
  "guest costs oxenstored most (it rebuilds and polls an fd array of every "
  "socket on every pass); C xenstored 4.17's growth with N comes mostly from "
  "its per-connection permission check on every fired watch, which ring "
  "connections trigger too. noxs runs on the same simulator (`sim/`), whose "
  "event channel costs about one Unix-datagram round trip (see (f)).\n")

# (a)
w("## (a) Handshake per device as the number of domains grows\n")
w("Time from the toolstack's request to both halves Connected for the "
  "device of domain N, all earlier domains staying connected (their nodes, "
  "watches or pages kept). Legacy pair (xenstored, oxenstored, compat-xs): "
  "`bench/compat.c`, the toolstack writes the vif nodes in one transaction, "
  "the frontend walks InitWait -> rings in a transaction -> Connected; "
  "median and p99 of the last 10 domains before N. Native noxs: "
  "`bench/handshake.c`, `noxs_dev_add` -> frontend sees the backend "
  "Connected (sysctl device), median and p99 of the last tenth of the "
  "domains before N. Cells: median [min-max over repetitions]; p99 is "
  "the median of the repetitions' p99. Below the table, the native "
  "handshake is set against its own critical path's floor measured in the "
  "same run (section (f)).\n")
w("![handshake vs domains](bench/handshake.png)\n")
hdr = "| N | " + " | ".join(f"{LABEL[i]} median / p99" for i in IMPLS) + \
    " | oxenstored / noxs | xenstored / noxs | oxenstored / compat-xs | xenstored / compat-xs |"
w(hdr)
w("|" + "---|" * (1 + len(IMPLS) + 4))
for n in hs_ns:
    cells = [med_p99_cell(hs.get((i, n), {}), 1000, " ms") for i in IMPLS]
    rs = [rcell(hsr("oxenstored", "noxs", n)), rcell(hsr("xenstored", "noxs", n)),
          rcell(hsr("oxenstored", "compat-xs", n)), rcell(hsr("xenstored", "compat-xs", n))]
    w(f"| {n} | " + " | ".join(cells + rs) + " |")
w("")
if floor_text(headline_n):
    w(floor_text(headline_n))
sock_ns = [n for n in hs_ns if any(hs.get((b, n)) for b in SOCK)]
if sock_ns:
    w(f"Second configuration, in the same run: per-domain sockets ({CONF_SOCK}).\n")
    w("| N | " + " | ".join(f"{LABEL[b]} median / p99" for b in SOCK) +
      " | oxenstored sockets / rings | xenstored sockets / rings |")
    w("|" + "---|" * (1 + len(SOCK) + 2))
    for n in sock_ns:
        cells = [med_p99_cell(hs.get((b, n), {}), 1000, " ms") for b in SOCK]
        rs = [rcell(hsr("oxenstored-sockets", "oxenstored", n)),
              rcell(hsr("xenstored-sockets", "xenstored", n))]
        w(f"| {n} | " + " | ".join(cells + rs) + " |")
    w("")
for impl in ("noxs", "compat-xs"):
    t = flat_text(impl)
    if t:
        w(f"{t}.\n")

def bring_rows(ncols):
    """(impl, its bring-up runs at BN) for each implementation that has
    some; an n/a row (ncols cells) for the others."""
    for i in IMPLS:
        d = bring.get((i, BN, 1), {})
        if d:
            yield i, d
        else:
            w(f"| {LABEL[i]} | " + " | ".join(["n/a"] * ncols) + " |")


# (b)
w("## (b) Bringing up N domains with one device each\n")
w(f"`xs-bringup` / `noxs-bringup`, one toolstack client, N = {BN}: per domain, "
  "create the domain (xs_introduce_domain / noxs_domain_create), add its "
  "device and wait until the frontend is Connected; wall time for all of "
  "them, and the per-domain time (median and p99 over all domains).\n")
w("| implementation | total | per domain median | per domain p99 | total vs noxs |")
w("|---|---|---|---|---|")
for i, d in bring_rows(4):
    t = summ([x["total_ms"] for x in d.values()])
    r = ratio({k: v["total_ms"] for k, v in d.items()},
              {k: v["total_ms"] for k, v in bring.get(("noxs", BN, 1), {}).items()})
    w(f"| {LABEL[i]} | {cell(t, lambda ms: ms / 1000, ' s')} | "
      f"{cell(summ([x['dev_median_us'] for x in d.values()]), lambda us: us / 1000, ' ms')} | "
      f"{fmt(statistics.median([x['dev_p99_us'] for x in d.values()]) / 1000, ' ms')} | "
      f"{rcell(r) if i != 'noxs' else '1'} |")
w("")
if totals:
    w("The legacy benchmark's own running totals (`bench/compat.c`, "
      "handshakes only, domains introduced outside the clock):\n")
    tn = sorted({n for (_, n) in totals})
    w("| N | " + " | ".join(LABEL[i] for i in IMPLS[:3]) + " |")
    w("|---|" + "---|" * 3)
    for n in tn:
        w(f"| {n} | " + " | ".join(cell(summ(list(totals.get((i, n), {}).values())),
                                        lambda ms: ms / 1000, " s")
                                   for i in IMPLS[:3]) + " |")
    w("")

# (c)
w("## (c) xs_* operation latency\n")
w("As domain 1's frontend, on its device directory (16 entries), after the "
  f"handshakes: 2000 xs_read / xs_write / xs_directory, 500 watch round trips "
  "(write a node, the backend is woken and writes an answer, we are woken), "
  "from `bench/compat.c`; 1000 transactions of 4 writes from `xs-bringup` "
  f"(after {BN} domains are up). Median [min-max over repetitions], p99. "
  "Measured with few domains up (a nearly empty store, as in "
  "shared/xenstored-baseline.md) and with many: every guest's connection "
  "is held (its ring; in the second configuration also its socket) and "
  "the backend's watch on every device, and the daemons' per-connection "
  "work grows with them. Debian's daemons' figures here are from the "
  "ring-connected configuration (domain 1's frontend on its ring). The "
  "plot shows the second.\n")
w("![op latency](bench/ops.png)\n")
for title, table in ((f"with {OPS_SMALL} domains up", ops),
                     (f"with {OPS_BIG} domains up", ops_big)):
    if not table:
        continue
    w(f"**{title}** (the 4-write transaction: with {BN} domains up, after "
      "the one-client bring-up):\n")
    w("| op | " + " | ".join(f"{LABEL[i]} median / p99" for i in IMPLS[:3]) +
      " | xenstored / compat-xs | oxenstored / compat-xs |")
    w("|---|" + "---|" * 5)
    for o in OPS:
        cells = [med_p99_cell(table.get((i, o), {}), 1, " us") for i in IMPLS[:3]]
        rs = [rcell(ratio(table.get((b, o)), table.get(("compat-xs", o)), lambda x: x[0]))
              for b in ("xenstored", "oxenstored")]
        w(f"| {OPNAME[o]} | " + " | ".join(cells + rs) + " |")
    w("")
if lookups:
    w("Native registry lookups (noxsd's control socket, `bench/handshake.c`), "
      "for comparison: " + "; ".join(
          f"{op} at N={n}: {cell(med_of(d), unit=' us')}"
          for (n, op), d in sorted(lookups.items()) if n == max(hs_ns or [0])) + ".\n")

# (d)
w("## (d) dom0 memory per domain\n")
w(f"Resident memory of the daemon(s) before and after bringing up {BN} "
  "domains (`/proc/<pid>/status` VmRSS): xenstored; oxenstored; noxsd = its "
  "worker + its page keeper (where noxsd's part goes, and what of it only the "
  "simulator costs: \"Where noxsd's memory per domain goes\", at the end). "
  "Shared pages: grants alive at the end "
  "(noxs-simstat), i.e. each guest's device page, its device's control page "
  "and the sysctl/legacy liveness or ring pages; these are guest-visible "
  "pages, counted at 4 KiB each. The store ring of a guest of Debian's "
  "daemons is a page of the guest's own memory that the daemon maps by "
  "frame (ring-connected guests, `BENCH_GUESTS=ring`): once touched it is "
  "in the daemon's RSS as a shared page, and it is not a grant, so it is "
  "not in the shared-pages column.\n")
w("![memory per domain](bench/memory.png)\n")
w("| implementation | daemon RSS before | after | growth per domain | shared pages per domain |")
w("|---|---|---|---|---|")
for i, d in bring_rows(4):
    sp = summ([x["shared_pages"] / BN for x in d.values()])
    w(f"| {LABEL[i]} | {cell(summ([x['daemon_rss0_kb'] for x in d.values()]), lambda k: k / 1024, ' MiB')} | "
      f"{cell(summ([x['daemon_rss1_kb'] for x in d.values()]), lambda k: k / 1024, ' MiB')} | "
      f"{cell(summ([x['rss_per_domain_kb'] for x in d.values()]), unit=' KiB')} | "
      f"{'-' if i in IMPLS[:2] else cell(sp) + ' (' + fmt(sp[0] * 4) + ' KiB)'} |")
w("")

# (e)
w("## (e) CPU time per handshake\n")
w(f"CPU time (user + system) spent during the bring-up of {BN} domains, "
  "divided by the number of devices: each process's CPU clock "
  "(`clock_getcpuclockid`, nanosecond resolution; `/proc/<pid>/stat` "
  "utime+stime as a fallback) before and after, and getrusage for the "
  "toolstack processes. "
  "Daemon: xenstored / oxenstored / noxsd worker+keeper. Clients: the "
  "toolstack process, the backend (legacy-back or noxs-sysctl-back) and the "
  "frontends (in-process for the legacy pair, noxs-sysctl-front processes "
  "for native noxs).\n")
w("| implementation | daemon CPU per device | client CPU per device | total |")
w("|---|---|---|---|")
for i, d in bring_rows(3):
    dc = summ([x["daemon_cpu_us_per_dev"] for x in d.values()])
    cc = summ([x["client_cpu_us_per_dev"] for x in d.values()])
    tc = summ([x["daemon_cpu_us_per_dev"] + x["client_cpu_us_per_dev"] for x in d.values()])
    w(f"| {LABEL[i]} | {cell(dc, unit=' us')} | {cell(cc, unit=' us')} | {cell(tc, unit=' us')} |")
w("")

# (f)
w("## (f) The simulator's floor\n")
w(f"`build/bench/sim-floor {meta.get('floor_n')}`: the parts of the native "
  "handshake's critical path, each timed on its own between two processes "
  "on the simulator: an event-channel round trip, a Unix seqpacket round "
  "trip (every hop between noxs processes is one), a grant share and a "
  "grant map; a grant map+unmap and a Unix datagram round trip for "
  "reference. `handshake_floor` adds them up with the path's counts "
  "(docs/NOXSD.md, \"Where the time goes\"): the handshake with no work "
  f"at all. Below the table (and below (a)), the native handshake at "
  f"N={headline_n} against that floor, both from the same repetition: "
  "median, floor and their ratio per repetition (the target is within "
  "2x).\n")
w("| measure | median | p99 |")
w("|---|---|---|")
for k in ("notify_rtt", "seqpacket_rtt", "grant_share", "grant_map",
          "handshake_floor", "grant_map_unmap", "unix_dgram_rtt"):
    d = floor.get(k, {})
    w(f"| {k} | {cell(med_of(d, 0), unit=' us')} | {fmt(med_of(d, 1)[0], ' us') if d else 'n/a'} |")
w("")
if floor_text(headline_n):
    w(floor_text(headline_n))

# (f') under load
w("## (f') The handshake and its floor under a fixed background load\n")
if not hs_load and not floor_load:
    w("Not measured in this run (it predates the step, or stress-ng was "
      "not installed).\n")
else:
    w(f"The same `sim-floor` and `handshake {meta.get('load_ns', '')}` "
      "right after the quiet ones, in every repetition, while one CPU hog "
      f"per core runs beside them at the same priority "
      f"(`{meta.get('load_hogs', '?')}`). Median [min-max] over the "
      "repetitions of each one's median; *slowdown* is loaded / quiet, "
      "paired per repetition; the last column is the loaded handshake "
      "over the loaded floor (the target of 2x is for the quiet run).\n")
    lf = floor_load.get("handshake_floor")
    w("| measure | quiet | under load | slowdown | handshake / floor under load |")
    w("|---|---|---|---|---|")
    for k in ("notify_rtt", "seqpacket_rtt", "grant_share", "grant_map",
              "handshake_floor"):
        q, l = floor.get(k), floor_load.get(k)
        w(f"| sim-floor {k} | {cell(med_of(q), unit=' us')} | "
          f"{cell(med_of(l), unit=' us')} | "
          f"{rcell(ratio(l, q, lambda x: x[0]))} | |")
    for n in sorted(hs_load):
        q, l = hs.get(("noxs", n)), hs_load[n]
        w(f"| native handshake, N={n} | {cell(med_of(q), unit=' us')} | "
          f"{cell(med_of(l), unit=' us')} | "
          f"{rcell(ratio(l, q, lambda x: x[0]))} | "
          f"{rcell(ratio(l, lf, lambda x: x[0]))} |")
    w("")

# (g)
w("## (g) Concurrency: K toolstack clients at once\n")
w(f"{CN} domains with one device each, brought up by K toolstack processes "
  "at once (domains interleaved between them), against a fresh daemon. "
  "Total wall time, per-domain median, and speed-up over K=1.\n")
w("![concurrency](bench/concurrency.png)\n")
w("| implementation | " + " | ".join(f"K={k} total / per domain" for k in KS) +
  " | " + " | ".join(f"K={k} vs K=1" for k in KS[1:]) + " |")
w("|---|" + "---|" * (2 * len(KS) - 1))
for i in IMPLS:
    cells, sp = [], []
    base = {r: v["total_ms"] for r, v in bring.get((i, CN, 1), {}).items()}
    for k in KS:
        d = bring.get((i, CN, k), {})
        if not d:
            cells.append("n/a")
        else:
            cells.append(f"{cell(summ([x['total_ms'] for x in d.values()]), unit=' ms')} / "
                         f"{fmt(statistics.median([x['dev_median_us'] for x in d.values()]) / 1000, ' ms')}")
        if k != KS[0]:
            sp.append(rcell(ratio(base, {r: v["total_ms"] for r, v in d.items()})))
    w(f"| {LABEL[i]} | " + " | ".join(cells + sp) + " |")
w("")

# Generic paths (bench/report_generic.py, also run alone by
# `make bench-generic`).
import report_generic  # noqa: E402

gmeta = dict(meta)
gen = report_generic.section(RES, gmeta, MAKE, "build/bench/results/")
if gen:
    out.extend(gen)
    w("")

# Bring-up with three devices per domain (bench/report_bringup3.py).
import report_bringup3  # noqa: E402

report_bringup3.section(RES, w)

w("## Failures\n")
if failures:
    w("Steps that failed in this run (their numbers are n/a above):\n")
    w("| step | repetition | exit | last lines of its stderr |")
    w("|---|---|---|---|")
    for f in failures:
        f += [""] * (4 - len(f))
        w(f"| {f[0]} | {f[1].replace('rep=', '')} | {f[2].replace('exit=', '')} | "
          f"{f[3].replace('|', '/')[:300]} |")
else:
    w("None: every step of this run succeeded.")
w("")
w("## Files\n")
w("`build/bench/results/`: `meta.txt` (machine, versions, sizes), `steps.tsv` "
  "(every step's duration in seconds and exit status), `raw/` (every "
  "program's output, per repetition), `log/` (their stderr), "
  "`handshake.csv`, `handshake_total.csv`, `ops.csv`, `bringup.csv` "
  "(bring-up and concurrency runs), `bringup3.csv` (three devices per "
  "domain), `floor.csv`, `load.csv` (the runs under load), `failures.tsv`, and the "
  "`plot-*.dat` files that `bench/plot.gp` draws.\n")

# ---- README's headline paragraph ----
def headline_md():
    n = headline_n
    parts = []
    nx = med_of(hs.get(("noxs", n), {}))
    if nx:
        parts.append(f"noxs's native device handshake takes {ms_or_us(nx[0])} "
                     f"at the {n}th domain (earlier domains kept connected).")
        seg = []
        for b in ("oxenstored", "xenstored"):
            nb = common_n(b)
            r, m = (hsr(b, "noxs", nb), med_of(hs.get((b, nb), {}))) if nb else (None, None)
            if r and m:
                # The lowest repetition first: the conservative figure.
                seg.append(f"{fmt(r[1])}-{fmt(r[2])}x "
                           f"(median {fmt(r[0])}x) faster than Debian's {b} at N={nb} "
                           f"({ms_or_us(m[0])} vs {ms_or_us(med_of(hs[('noxs', nb)])[0])})")
        if seg:
            parts.append("That is " + " and ".join(seg) + ".")
    n1, n2 = common_n("oxenstored"), common_n("xenstored")
    r1 = hsr("oxenstored", "compat-xs", n1) if n1 else None
    r2 = hsr("xenstored", "compat-xs", n2) if n2 else None
    if r1 or r2:
        parts.append("Unmodified xs_* drivers on compat-xs: handshake " +
                     " and ".join(f"{fmt(r[1])}-{fmt(r[2])}x (median {fmt(r[0])}x) "
                                  f"faster than {b} (N={nn_})" for r, b, nn_ in
                                  ((r1, "oxenstored", n1), (r2, "xenstored", n2)) if r) + ".")
    else:
        parts.append("compat-xs (legacy xs_* drivers) was not measured in the last run.")
    rr = ratio(ops.get(("xenstored", "read")), ops.get(("compat-xs", "read")),
               lambda x: x[0])
    rb = ratio((ops_big or {}).get(("xenstored", "read")),
               (ops_big or {}).get(("compat-xs", "read")), lambda x: x[0])
    if rr:
        parts.append(f"An xs_read of a device key: {fmt(rr[0])}x faster than "
                     f"xenstored with {OPS_SMALL} domains up" +
                     (f", {fmt(rb[0])}x with {OPS_BIG}." if rb else "."))
    f = flat("noxs")
    if f and f[4]:
        parts.append(f"From {f[0]} to {f[1]} domains the native handshake "
                     f"goes {ms_or_us(f[2])} -> {ms_or_us(f[3])} "
                     f"(x{fmt(f[4][0])} [{fmt(f[4][1])}-{fmt(f[4][2])}] per "
                     "repetition).")
    return ("## Headline ratios\n\n" + " ".join(parts) +
            " Debian's daemons with ring-connected guests, as on Xen."
            f" Medians of {REPS} repetitions, ratios paired within the run, on "
            f"{meta.get('nproc')} cores of {machine(meta)} (load average "
            f"{meta.get('loadavg_start', '?')} at start) "
            f"({meta.get('date')}, git {meta.get('git')}); "
            "all figures, spreads, the method and what the xenstored shim fakes: "
            f"[docs/BENCHMARKS.md](docs/BENCHMARKS.md) (`{MAKE}`).\n")


if len(sys.argv) > 3:
    readme = sys.argv[3]
    with open(readme) as f:
        text = f.read()
    b, e = "<!-- bench:headline:begin -->", "<!-- bench:headline:end -->"
    if b in text and e in text:
        head, rest = text.split(b, 1)
        _, tail = rest.split(e, 1)
        with open(readme, "w") as f:
            f.write(head + b + "\n" + headline_md() + e + tail)

# Figures measured elsewhere than in this run (the real-Xen lane) are
# written by hand between these markers and kept across regenerations.
KB, KE = "<!-- kept:begin -->", "<!-- kept:end -->"
try:
    with open(os.path.join(DOCS, "BENCHMARKS.md")) as f:
        old = f.read()
    if KB in old and KE in old:
        out.append(KB + old.split(KB, 1)[1].split(KE, 1)[0] + KE + "\n")
except OSError:
    pass

os.makedirs(DOCS, exist_ok=True)
with open(os.path.join(DOCS, "BENCHMARKS.md"), "w") as f:
    f.write("\n".join(out))
print(f"report: {os.path.join(DOCS, 'BENCHMARKS.md')}")
