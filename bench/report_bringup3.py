"""The "Bring-up with three devices per domain" section of
docs/BENCHMARKS.md, its CSV file and the data of its two plots, from the
lines of build/bench/bringup3 (native noxs) and build/bench/xs-bringup3
(Debian's daemons) in RESULTS/raw/bringup3.<rep>. Standard library only;
bench/report.py calls section().

Every cell: the median over repetitions [min-max over repetitions] of
each repetition's figure.
"""
import csv
import glob
import os

from reportlib import cell, kv, summ

IMPLS = ["noxs", "xenstored", "oxenstored"]
LABEL = {"noxs": "noxs native", "xenstored": "xenstored (C)",
         "oxenstored": "oxenstored (OCaml)"}
KEYS = ["connect_median_us", "connect_p99_us", "byte_median_us",
        "byte_p99_us", "total_s", "daemon_rss_per_domain_kb", "teardown_s"]
# Printed by newer programs only: a run of older ones leaves the cell "?".
OPTIONAL = ["daemon_anon_per_domain_kb"]


# The section's text before its plots and table; docs/BENCHMARKS.md
# carries the same until a run writes it.
METHOD = [
    "## (h) Bring-up with three devices per domain\n",
    "`bringup3` (native noxs) and `xs-bringup3` (Debian's daemons): "
    "domains 1..N brought up one after another by one toolstack client, "
    "each with a sysctl (shutdown), a console and a blk device, every "
    "earlier domain kept up, every N from a fresh start (its own daemon, "
    "backends and simulator directory on tmpfs). The three dev-adds of a "
    "domain are issued back to back, as a toolstack does, once the guest "
    "has mapped its device page; the clock starts just before the first. "
    "*connect* ends when the guest sees all three devices Connected; "
    "*first byte* when the guest has also read sector 0 (4 KiB) back "
    "right through blk and one byte it put on its console has arrived "
    "at domain 0, on the console backend's client socket "
    "(`console-DOMID.0.sock`, what `noxs-console` attaches to). Both are "
    "the median over the last tenth of the domains before N (all of "
    "them below 100). *total* runs from the first domain's dev-adds to "
    "the Nth domain's first byte. *memory* is the growth of the resident "
    "memory (VmRSS) of the store daemon (noxsd: worker and page keeper) "
    "and the three backends from before the first domain to after the "
    "Nth, per domain; *of which anonymous* is the part in RssAnon (heap "
    "and stacks), without what counts as shared memory: the guests' "
    "granted pages, which a backend maps on Xen too, and the simulator's "
    "tables of each guest, mapped by every process that sends it events "
    "and a hypercall on Xen. *teardown*: the domains die (their guests are "
    "killed, as the hypervisor ends a destroyed domain), then each is "
    "destroyed through the toolstack API, from 64 clients at once, until "
    "the daemon lists no domain and the backends hold no mapping of "
    "guest memory any more.\n",
    "The guests are a few processes that act as up to 1000 domains each "
    "(the simulator takes each handle's domain from the thread's "
    "setting), fed bootstrap lines on a pipe; they connect a domain's "
    "devices in order, with the library's frontend API (sysctl), the "
    "console ring protocol and the blk frontend library. The blk devices "
    "share one 1 MiB image, read-only (the blk backend lets domains share "
    "a file that none of them may write). A device whose guest died is "
    "removed at once: its backend has seen the death on the liveness "
    "page and does not wait for a Closed that cannot come.\n",
]


def load(res):
    """(impl, n) -> [dict per line], from every RESULTS/raw/bringup3.*."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(res, "raw", "bringup3.*"))):
        with open(path) as f:
            for line in f:
                if not line.startswith("bringup3 impl="):
                    continue
                d = kv(line)
                try:
                    row = {k: float(d[k]) for k in KEYS}
                    row.update({k: float(d[k]) for k in OPTIONAL if k in d})
                    row["rep"] = int(d.get("rep", "0"))
                    runs.setdefault((d["impl"], int(d["n"])), []).append(row)
                except (KeyError, ValueError):
                    continue  # a line cut short by a failed step
    return runs


def impls_of(runs):
    """The known implementations first, then any other that printed."""
    seen = {i for i, _ in runs}
    return [i for i in IMPLS if i in seen] + sorted(seen - set(IMPLS))


def _dat(path, runs, impls, key, conv):
    ns = sorted({n for _, n in runs})
    with open(path, "w") as f:
        f.write("#n " + " ".join(f"{i}_med {i}_lo {i}_hi" for i in impls) + "\n")
        for n in ns:
            row = [str(n)]
            for i in impls:
                s = summ([r[key] for r in runs.get((i, n), [])])
                row += ["?"] * 3 if s is None else [str(conv(x)) for x in s[:3]]
            f.write(" ".join(row) + "\n")


def section(res, w):
    """Write the section with w (one Markdown line per call), the CSV and
    the plot data; the method alone if the run has no bringup3 lines."""
    runs = load(res)
    if not runs:
        for line in METHOD:
            w(line)
        w("Not measured in this run (it predates `bringup3` or its step "
          "failed); the figures of a separate run, if any, are in the "
          "hand-kept part below.\n")
        return
    with open(os.path.join(res, "bringup3.csv"), "w", newline="") as f:
        c = csv.writer(f)
        c.writerow(["impl", "n", "rep"] + KEYS)
        for (i, n), rows in sorted(runs.items()):
            for r in sorted(rows, key=lambda r: r["rep"]):
                c.writerow([i, n, r["rep"]] + [r[k] for k in KEYS])
    # The plots' columns: noxs, xenstored, oxenstored always (gnuplot
    # skips a column of "?"), in that order.
    _dat(os.path.join(res, "plot-bringup3.dat"), runs, IMPLS,
         "byte_median_us", lambda us: us / 1000)
    _dat(os.path.join(res, "plot-bringup3-teardown.dat"), runs, IMPLS,
         "teardown_s", lambda s: s)
    for line in METHOD:
        w(line)
    meta = {}
    try:
        with open(os.path.join(res, "meta.txt")) as f:
            meta = dict(x.rstrip("\n").split("=", 1) for x in f if "=" in x)
    except OSError:
        pass
    if meta.get("bring3_cap"):
        w(f"noxs's N is capped at {meta['bring3_cap']} on this host: "
          "each backend serves every device of its type from one process, "
          "noxs-console-back with 2 file descriptors per console and "
          "noxs-blk-back with about 6 memory mappings per disk, against a "
          f"hard RLIMIT_NOFILE of {meta.get('nofile_hard', '?')} "
          f"and a vm.max_map_count of {meta.get('max_map_count', '?')}; "
          "and domain 0's grant table of 32768 entries (the simulator's, "
          "and Xen's default `gnttab_max_frames`) holds each domain's "
          "device page and its devices' control pages, 4 grants per "
          "three-device domain (scripts/bench.sh).\n")
    w("![bring-up to the first byte](bench/bringup3.png)\n")
    w("![teardown](bench/bringup3-teardown.png)\n")
    w("| implementation | N | connect | first byte | total | memory per "
      "domain | of which anonymous | teardown |")
    w("|---|---|---|---|---|---|---|---|")
    for i in impls_of(runs):
        for n in sorted(n for j, n in runs if j == i):
            rows = runs[(i, n)]

            def s(k, rows=rows):
                return summ([r[k] for r in rows if k in r])
            w(f"| {LABEL.get(i, i)} | {n} | "
              f"{cell(s('connect_median_us'), lambda us: us / 1000, ' ms')} | "
              f"{cell(s('byte_median_us'), lambda us: us / 1000, ' ms')} | "
              f"{cell(s('total_s'), unit=' s')} | "
              f"{cell(s('daemon_rss_per_domain_kb'), unit=' KiB')} | "
              f"{cell(s('daemon_anon_per_domain_kb'), unit=' KiB')} | "
              f"{cell(s('teardown_s'), unit=' s')} |")
    w("")
