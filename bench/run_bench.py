#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Runs the core benchmark and prints a markdown table with the ratios.

    python3 bench/run_bench.py [--build build] [--reps 5] [--warmup auto|N]
                               [--pin P,C|same|split] [--modes M,..]
                               [--only I,..]

Implementations, each between a parent and a forked child:
  raw      bench_raw: a bare socketpair, one write and one read per message
           of exactly SIZE bytes: the kernel's limit for one system call per
           message on each side;
  pc       bench_conn: libpipeconn (stream with pc_send_bytes and
           pc_recv_bytes or pc_recv_bytes_into; pc_send_batch; ping-pong),
           with the library's default pc_set_spin;
  pc_nospin  the same ping-pong with pc_set_spin(0): every receive that
           finds nothing sleeps at once, as the raw read does;
  python   conn_python.py: multiprocessing.Pipe send_bytes/recv_bytes;
  zmq      bench_zmq: ZeroMQ PAIR over ipc:// (only if it was built).

Workloads: a stream of messages of SIZE bytes (messages/s, MB/s) and a
ping-pong (round trip in microseconds), for 64 B, 1 KiB, 64 KiB, 1 MiB and
16 MiB. Each implementation's count is calibrated by one discarded
calibration run so that a run takes about --seconds; then the
implementations of one workload run in turn (round-robin), --reps times, and
the table gives medians. Ratios compare message rates (round trips per
second for ping-pong), so above 1 is faster. "CPU µs/msg" is the CPU time
(user + system) both processes used per message (per round trip in a
ping-pong): the parent's in the timed part plus the child's over its whole
run divided by all the messages it handled; it is where waiting by spinning
shows.

Every run (calibration runs too) first sends untimed warm-up messages (round
trips for ping-pong), the same way for every implementation: the programs'
-w option (see bench/bench_common.h). The default, --warmup auto, sends
max(3, COUNT // 20) of them before COUNT timed ones, so that one-time costs
stay out of steady-state figures (on a virtual machine, the first touch of
fresh memory makes each of the first 16 MiB messages tens of milliseconds
slower); --warmup 0 times each run from a cold start.

--pin P,C keeps every parent on CPU P and every child on CPU C (the
programs' -c option, which checks that it took), for all implementations
alike; --pin same puts both on one CPU, --pin split on two. Unpinned, the
scheduler decides where each wake-up runs; on a shared virtual machine that
placement alone moves a 64 B round trip by tens of microseconds, in phases
that come and go over minutes.
"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SIZES = [64, 1024, 64 * 1024, 1024 * 1024, 16 * 1024 * 1024]
BATCH_SIZES = [64, 1024]
BATCH = 256

# Counts for the run that calibrates each implementation.
BASE_COUNT = {
    ("stream", 64): 100000, ("stream", 1024): 50000,
    ("stream", 65536): 5000, ("stream", 1048576): 500,
    ("stream", 16777216): 40,
    ("pingpong", 64): 5000, ("pingpong", 1024): 5000,
    ("pingpong", 65536): 2000, ("pingpong", 1048576): 300,
    ("pingpong", 16777216): 30,
}

LABELS = {
    "raw": "raw socketpair",
    "pc": "pc send_bytes / recv_bytes",
    "pc_into": "pc send_bytes / recv_bytes_into",
    "pc_batch": f"pc send_batch ({BATCH}/call) / recv_bytes_into",
    "pc_nospin": "pc, pc_set_spin(0)",
    "python": "Python Pipe",
    "zmq": "ZeroMQ PAIR ipc",
}


def human(size):
    for unit, n in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= n and size % n == 0:
            return f"{size // n} {unit}"
    return f"{size} B"


def fmt(x, digits=0):
    if x is None:
        return "-"
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


class Runner:
    def __init__(self, args):
        self.args = args
        bench = os.path.join(args.build, "bench")
        self.progs = {
            "raw": os.path.join(bench, "bench_raw"),
            "pc": os.path.join(bench, "bench_conn"),
            "zmq": os.path.join(bench, "bench_zmq"),
        }
        self.python = [args.python, os.path.join(HERE, "conn_python.py")]
        self.failures = []

    def available(self, impl):
        if impl == "python":
            return True
        prog = self.progs["pc" if impl.startswith("pc") else impl]
        return os.access(prog, os.X_OK)

    def warmup(self, count):
        """The number of untimed messages that precede count timed ones."""
        if self.args.warmup == "auto":
            return max(3, count // 20)
        return self.args.warmup

    def argv(self, impl, kind, size, count):
        warm = ["-w", str(self.warmup(count))]
        if self.args.pin is not None:
            warm += ["-c", self.args.pin]
        if impl == "python":
            return self.python + warm + [kind, str(size), str(count)]
        if impl == "pc_into":
            return [self.progs["pc"]] + warm + ["stream_into", str(size),
                                                str(count)]
        if impl == "pc_batch":
            return [self.progs["pc"]] + warm + ["batch", str(size),
                                                str(count), str(BATCH)]
        if impl == "pc_nospin":
            return [self.progs["pc"], "-s", "0"] + warm + [kind, str(size),
                                                           str(count)]
        return [self.progs[impl]] + warm + [kind, str(size), str(count)]

    def run(self, impl, kind, size, count):
        cmd = self.argv(impl, kind, size, count)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=self.args.timeout, check=False)
        except subprocess.TimeoutExpired:
            self.failures.append(f"{shlex.join(cmd)}: timed out")
            return None
        if p.returncode != 0:
            self.failures.append(f"{shlex.join(cmd)}: exit {p.returncode}: "
                                 f"{p.stderr.strip()}")
            return None
        line = p.stdout.strip().splitlines()[-1]
        result = json.loads(line)
        if self.args.verbose:
            print(line, file=sys.stderr)
        return result


def calibrate(runner, impl, kind, size):
    """One discarded run; returns the count that takes about --seconds."""
    base = BASE_COUNT[(kind, size)]
    if runner.args.smoke:
        return max(2, base // 1000)
    if impl == "pc_batch":
        base *= 4
    r = runner.run(impl, kind, size, base)
    if r is None:
        return None
    count = base * runner.args.seconds / max(r["seconds"], 1e-6)
    count = int(float(f"{count:.2g}"))  # two significant digits
    return max(10, min(count, 50 * base))


def workloads(args):
    out = []
    # A smoke run keeps one size of each path: read-ahead, larger than the
    # read-ahead buffer, and large.
    sizes = [64, 65536, 1048576] if args.smoke else SIZES
    for size in sizes:
        impls = ["raw", "pc", "pc_into"]
        if size in BATCH_SIZES:
            impls.append("pc_batch")
        impls += ["python", "zmq"]
        out.append(("stream", size, impls))
    for size in sizes:
        out.append(("pingpong", size,
                    ["raw", "pc", "pc_nospin", "python", "zmq"]))
    if args.modes:
        out = [w for w in out if w[0] in args.modes.split(",")]
    if args.only:
        keep = set(args.only.split(","))
        out = [(k, s, [i for i in impls if i in keep]) for k, s, impls in out]
    return out


def measure(runner):
    """Returns {(kind, size, impl): [result, ...]}."""
    results = {}
    for kind, size, impls in workloads(runner.args):
        impls = [i for i in impls if runner.available(i)]
        counts = {i: calibrate(runner, i, kind, size) for i in impls}
        impls = [i for i in impls if counts[i] is not None]
        for _ in range(runner.args.reps):
            for impl in impls:
                r = runner.run(impl, kind, size, counts[impl])
                if r is not None:
                    results.setdefault((kind, size, impl), []).append(r)
        print(f"measured {kind} {human(size)}", file=sys.stderr)
    return results


def median(rs, field):
    vals = [r[field] for r in rs if r.get(field) is not None]
    return statistics.median(vals) if vals else None


def median_of(rs, fn):
    vals = [v for v in map(fn, rs) if v is not None]
    return statistics.median(vals) if vals else None


def cpu_per_msg(r):
    """Microseconds of CPU both processes used per message (round trip)."""
    if r.get("cpu_parent_s") is None or r.get("cpu_child_s") is None:
        return None
    return (r["cpu_parent_s"] / r["count"]
            + r["cpu_child_s"] / (r["count"] + r["warmup"])) * 1e6


def table(results, args):
    rows = [
        "| workload | size | implementation | msgs/s | MB/s | RTT µs "
        "| CPU µs/msg | × raw | × Python | × ZeroMQ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, size, impls in workloads(args):
        def rate(impl):
            rs = results.get((kind, size, impl))
            return median(rs, "msgs_per_s") if rs else None

        for impl in impls:
            rs = results.get((kind, size, impl))
            if not rs:
                continue
            r = rate(impl)
            ratios = []
            for ref in ("raw", "python", "zmq"):
                base = rate(ref)
                ratios.append("-" if base is None or ref == impl
                              else f"{r / base:.2f}")
            rows.append(
                f"| {kind} | {human(size)} | {LABELS[impl]} | {fmt(r)} "
                f"| {fmt(median(rs, 'mb_per_s'))} "
                f"| {fmt(median(rs, 'rtt_us'), 1)} "
                f"| {fmt(median_of(rs, cpu_per_msg), 2)} | "
                + " | ".join(ratios)
                + " |")
    return "\n".join(rows)


def targets(results, args):
    """The issue's targets, each with its measured ratio (those of the
    workloads --modes left out are not listed)."""
    def rate(kind, size, impl):
        rs = results.get((kind, size, impl))
        return median(rs, "msgs_per_s") if rs else None

    def line(what, num, den, goal):
        if num is None or den is None:
            return f"- {what}: not measured"
        ratio = num / den
        verdict = "met" if ratio >= goal else "NOT met"
        return f"- {what}: {ratio:.2f} (goal ≥ {goal}) {verdict}"

    out = []
    streams = not args.modes or "stream" in args.modes.split(",")
    pingpongs = not args.modes or "pingpong" in args.modes.split(",")
    for size in (64, 1024) if streams else ():
        for impl in ("pc", "pc_into"):
            out.append(line(f"stream {human(size)}, {LABELS[impl]} vs raw "
                            "messages/s", rate("stream", size, impl),
                            rate("stream", size, "raw"), 0.95))
    if streams:
        out.append(line("stream 64 B, pc send_batch vs ZeroMQ messages/s",
                        rate("stream", 64, "pc_batch"),
                        rate("stream", 64, "zmq"), 1.5))
    for size in SIZES[2:] if streams else ():
        for impl in ("pc", "pc_into"):
            out.append(line(f"stream {human(size)}, {LABELS[impl]} vs raw "
                            "bandwidth", rate("stream", size, impl),
                            rate("stream", size, "raw"), 0.95))
    # Within 10 % of the raw round trip: rtt_pc <= 1.1 rtt_raw.
    if pingpongs:
        out.append(line("ping-pong 64 B, raw RTT / pc RTT",
                        rate("pingpong", 64, "pc"),
                        rate("pingpong", 64, "raw"), round(1 / 1.1, 2)))
    return "\n".join(out)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    py = subprocess.run([sys.executable, "--version"], capture_output=True,
                        text=True, check=False).stdout.strip()
    return (f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
            f"{py}")


def warmup_arg(text):
    """--warmup: "auto" or a number of messages >= 0."""
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError("expected auto or a number >= 0")
    return n


def pin_arg(text):
    """--pin: "P,C" (two CPUs this process may run on), "same" (both on the
    first of them) or "split" (the first two)."""
    allowed = sorted(os.sched_getaffinity(0))
    named = {"same": allowed[:1] * 2, "split": allowed[:2]}
    try:
        cpus = named[text] if text in named else [int(x)
                                                   for x in text.split(",")]
    except ValueError:
        cpus = []
    if len(cpus) != 2 or any(c not in allowed for c in cpus):
        raise argparse.ArgumentTypeError(
            f"expected same, split or P,C: two CPUs among {allowed}")
    return f"{cpus[0]},{cpus[1]}"


def warmup_note(args):
    """The header line that says what preceded the timing of each run."""
    if args.warmup == "auto":
        return ("each run: max(3, 5 % of COUNT) untimed warm-up messages "
                "(ping-pong: round trips) first")
    if args.warmup == 0:
        return "each run: no warm-up, timed from a cold start (--warmup 0)"
    return (f"each run: {args.warmup} untimed warm-up messages "
            "(ping-pong: round trips) first")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build",
                    help="CMake build directory (default: build)")
    ap.add_argument("--reps", type=int, default=5,
                    help="repetitions per workload (default: 5)")
    ap.add_argument("--seconds", type=float, default=0.3,
                    help="target duration of one run (default: 0.3)")
    ap.add_argument("--warmup", type=warmup_arg, default="auto",
                    metavar="auto|N",
                    help="untimed messages (round trips) before the clock "
                    "starts in every run; auto: max(3, COUNT // 20) "
                    "(default: auto); 0: cold figures")
    ap.add_argument("--pin", type=pin_arg, metavar="P,C|same|split",
                    help="pin every parent to CPU P and every child to CPU C; "
                    "same: both on one CPU, split: on two (default: not "
                    "pinned)")
    ap.add_argument("--modes", help="comma-separated workloads "
                    "(stream,pingpong; default: both)")
    ap.add_argument("--only", help="comma-separated implementations "
                    "(raw,pc,pc_into,pc_batch,pc_nospin,python,zmq)")
    ap.add_argument("--python", default=sys.executable,
                    help="Python interpreter for the Pipe benchmark")
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds before one run counts as hung")
    ap.add_argument("--json", help="also write every run as JSON lines here")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny counts, one repetition: checks that every "
                    "program works, measures nothing")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.reps = 1
    if not os.access(os.path.join(args.build, "bench", "bench_conn"),
                     os.X_OK):
        sys.exit(f"{args.build}/bench/bench_conn not found: build first "
                 "(cmake --build BUILD)")

    runner = Runner(args)
    results = measure(runner)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            for rs in results.values():
                for r in rs:
                    f.write(json.dumps(r) + "\n")
    cmd = shlex.join(["python3", os.path.relpath(sys.argv[0])] + sys.argv[1:])
    print(f"Command: `{cmd}`  ")
    print(f"Machine: {machine()}; medians of {args.reps} runs;  ")
    pin = (f"; parents on CPU {args.pin.split(',')[0]}, children on CPU "
           f"{args.pin.split(',')[1]}" if args.pin else "")
    print(f"{warmup_note(args)}{pin}.\n")
    print(table(results, args))
    if args.smoke:
        print("\nSmoke run: every program worked; nothing was measured.")
    else:
        print("\nTargets:\n")
        print(targets(results, args))
    if not runner.available("zmq"):
        print("\nZeroMQ was not built (install libzmq3-dev and reconfigure).")
    if runner.failures:
        print("\nFAILED runs:", file=sys.stderr)
        for f in runner.failures:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
