#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The object benchmark's workload with Python's multiprocessing.Pipe, and a
driver that compares it with bench_objects (pc_send/pc_recv + pickle).

    python3 objects_python.py dict|list COUNT
        a forked child receives COUNT objects with conn.recv() from the
        parent's conn.send(): {'name': 'bob', 'spam': 42} or
        list(range(1000)); prints one JSON line in bench_objects' format.

    python3 objects_python.py --compare PATH/TO/bench_objects [--runs 5]
        runs both programs in turn (interleaved), --runs times per object,
        and prints a markdown table of the medians and their ratio.

Same checks as bench_objects: the child checks the length and a sample item
of every object, and every item of every 64th object and of the last.
"""
import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import time

SAMPLE = 64
# Counts per run, chosen so that each run takes well under a second or two
# on a small machine (Python is the slow side).
COUNTS = {"dict": {"pipeconn": 300000, "python": 100000},
          "list": {"pipeconn": 60000, "python": 20000}}
TARGETS = {"dict": 4.0, "list": 5.0}


def make(kind):
    return {"name": "bob", "spam": 42} if kind == "dict" else list(range(1000))


def check(obj, kind, full):
    if kind == "dict":
        return len(obj) == 2 and obj["spam"] == 42 and obj["name"] == "bob"
    if len(obj) != 1000 or obj[999] != 999:
        return False
    return not full or obj == list(range(1000))


def child(conn, kind, count):
    conn.send_bytes(b"r")
    for i in range(count):
        obj = conn.recv()
        if not check(obj, kind, i % SAMPLE == 0 or i == count - 1):
            sys.exit("object %d is wrong" % i)
    conn.send_bytes(b"a")


def run_python(kind, count):
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe()
    proc = ctx.Process(target=child, args=(theirs, kind, count))
    proc.start()
    theirs.close()
    obj = make(kind)
    mine.recv_bytes()
    t0 = time.perf_counter()
    for _ in range(count):
        mine.send(obj)
    mine.recv_bytes()
    seconds = time.perf_counter() - t0
    proc.join()
    if proc.exitcode != 0:
        sys.exit("child failed")
    return {"impl": "python", "object": kind, "count": count,
            "seconds": round(seconds, 6),
            "objects_per_s": round(count / seconds, 1)}


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(binary, runs):
    rates = {}
    for _ in range(runs):
        for kind in ("dict", "list"):
            n = str(COUNTS[kind]["pipeconn"])
            c = run_json([binary, kind, n])
            b = run_json([binary, kind, n, "buffered"])
            p = run_json([sys.executable, __file__, kind,
                          str(COUNTS[kind]["python"])])
            for r in (c, b, p):
                print(json.dumps(r), file=sys.stderr)
                rates.setdefault((kind, r["impl"]), []).append(
                    r["objects_per_s"])
    print("| object | pc_send objects/s | ratio | pc_send, buffered objects/s "
          "| ratio | Python objects/s | target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, label in (("dict", "`{'name': 'bob', 'spam': 42}`"),
                        ("list", "`list(range(1000))`")):
        c = statistics.median(rates[(kind, "pipeconn")])
        b = statistics.median(rates[(kind, "pipeconn-buffered")])
        p = statistics.median(rates[(kind, "python")])
        print("| %s | %s | %.1fx | %s | %.1fx | %s | %.0fx |" % (
            label, format(round(c), ","), c / p, format(round(b), ","), b / p,
            format(round(p), ","), TARGETS[kind]))
    print("\nmedians of %d interleaved runs; ratios against Python's "
          "conn.send/conn.recv in the same runs; python %s" % (
              runs, sys.version.split()[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compare", metavar="BENCH_OBJECTS")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("object", nargs="?", choices=["dict", "list"])
    ap.add_argument("count", nargs="?", type=int)
    args = ap.parse_args()
    if args.compare:
        compare(args.compare, args.runs)
    elif args.object and args.count:
        print(json.dumps(run_python(args.object, args.count)))
    else:
        ap.error("give OBJECT COUNT, or --compare PATH")


if __name__ == "__main__":
    main()
