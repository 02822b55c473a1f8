"""What bench/report.py and bench/report_generic.py share: reading the
benchmarks' KEY=VALUE lines and formatting a summary of repetitions.
Standard library only."""
import statistics


def kv(line):
    return dict(f.split("=", 1) for f in line.split() if "=" in f)


def machine(meta):
    """The CPU and what it runs on: 'AMD EPYC, KVM guest'. The same CPU
    model wakes, faults and enters the kernel at very different costs as
    a KVM guest and as a PVM guest, so the report never names one without
    the other (meta.txt's cpu= and virt=, from bench/lib.sh)."""
    cpu = meta.get("cpu", "?")
    virt = meta.get("virt", "")
    if virt in ("", "unknown"):
        return cpu
    if virt in ("none", "bare hardware"):
        return f"{cpu}, bare metal"
    return f"{cpu}, {virt} guest"


def summ(values):
    """(median, min, max, count) of a list, or None."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v), len(v)


def fmt(x, unit=""):
    if x is None:
        return "n/a"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.2f}"
    return s + unit


def cell(s, conv=lambda x: x, unit=""):
    """'median [min-max]' with n/a, for a summ() result."""
    if s is None:
        return "n/a"
    med, lo, hi, n = s
    if n == 1:
        return f"{fmt(conv(med), unit)} (1 run)"
    return f"{fmt(conv(med), unit)} [{fmt(conv(lo))}-{fmt(conv(hi))}]"
