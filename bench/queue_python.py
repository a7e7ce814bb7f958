#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The queue benchmark's workload with Python's multiprocessing.Queue, and
a driver that compares it with bench_queue (pc_queue).

    python3 queue_python.py PRODUCERS CONSUMERS SIZE COUNT
        P producer and C consumer processes (forked) move COUNT bytes items
        of SIZE bytes through one multiprocessing.Queue; prints one JSON
        line in bench_queue's format.

    python3 queue_python.py --compare PATH/TO/bench_queue [--runs 3]
        runs both programs in turn (interleaved) at 1x1, 2x2 and 4x4
        producers x consumers with 64 B and 1 KiB items, --runs times, and
        prints a markdown table of the medians and their ratios.

Same checks as bench_queue: every item carries its producer and index in
its first 8 bytes; consumers check each item's length, that each
producer's indices increase, and the whole payload of every 64th item; the
parent checks that exactly COUNT items arrived. Python has no close() that
ends its consumers, so the parent puts one None per consumer once the
producers are done (the usual sentinel idiom).
"""
import argparse
import json
import multiprocessing
import statistics
import struct
import subprocess
import sys
import time

SAMPLE = 64
POINTS = [(1, 1), (2, 2), (4, 4)]
SIZES = [64, 1024]


def pattern(size):
    return bytes(((i * 2654435761) >> 13) & 0xFF for i in range(size))


def producer(q, start, pid, count, size):
    buf = bytearray(pattern(size))
    struct.pack_into("<I", buf, 0, pid)
    start.wait()
    for i in range(count):
        struct.pack_into("<I", buf, 4, i)
        q.put(bytes(buf))


def consumer(q, start, producers, size, received):
    ref = pattern(size)
    nxt = [0] * producers
    got = 0
    start.wait()
    while True:
        item = q.get()
        if item is None:
            break
        pid, idx = struct.unpack_from("<II", item)
        if len(item) != size or pid >= producers or idx < nxt[pid]:
            raise SystemExit("bad item")
        nxt[pid] = idx + 1
        if idx % SAMPLE == 0 and item[8:] != ref[8:]:
            raise SystemExit("payload differs")
        got += 1
    with received.get_lock():
        received.value += got


def run_one(producers, consumers, size, count):
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    start = ctx.Event()
    received = ctx.Value("q", 0)
    procs = []
    for i in range(producers):
        share = count // producers + (i < count % producers)
        procs.append(ctx.Process(target=producer,
                                 args=(q, start, i, share, size)))
    for _ in range(consumers):
        procs.append(ctx.Process(target=consumer,
                                 args=(q, start, producers, size, received)))
    for p in procs:
        p.start()
    t0 = time.monotonic()
    start.set()
    for p in procs[:producers]:
        p.join()
    for _ in range(consumers):
        q.put(None)
    for p in procs[producers:]:
        p.join()
    t1 = time.monotonic()
    if any(p.exitcode != 0 for p in procs) or received.value != count:
        raise SystemExit(f"failed: {received.value} of {count} items")
    return {"impl": "python", "producers": producers, "consumers": consumers,
            "size": size, "count": count, "seconds": round(t1 - t0, 6),
            "items_per_s": round(count / (t1 - t0), 1)}


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         timeout=300).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(args):
    results = {}
    for run in range(args.runs):
        for p, c in POINTS:
            for size in SIZES:
                pc = run_json([args.compare, str(p), str(c), str(size),
                               str(args.c_count)])
                py = run_json([sys.executable, __file__, str(p), str(c),
                               str(size), str(args.py_count)])
                for r in (pc, py):
                    results.setdefault((p, c, size, r["impl"]), []).append(
                        r["items_per_s"])
                    print(json.dumps(r), file=sys.stderr)
    print("| producers x consumers | item | pc_queue items/s | "
          "multiprocessing.Queue items/s | ratio |")
    print("|---|---|---:|---:|---:|")
    worst = None
    for p, c in POINTS:
        for size in SIZES:
            a = statistics.median(results[(p, c, size, "pc_queue")])
            b = statistics.median(results[(p, c, size, "python")])
            worst = a / b if worst is None else min(worst, a / b)
            print(f"| {p}x{c} | {size} B | {a:,.0f} | {b:,.0f} | "
                  f"{a / b:.1f}x |")
    print(f"\nmedians of {args.runs} runs; pc_queue {args.c_count} items, "
          f"Python {args.py_count} items per run; lowest ratio {worst:.1f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compare", metavar="BENCH_QUEUE",
                    help="path of bench_queue: run both and compare")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--c-count", type=int, default=2000000)
    ap.add_argument("--py-count", type=int, default=200000)
    ap.add_argument("workload", nargs="*", type=int,
                    help="PRODUCERS CONSUMERS SIZE COUNT")
    args = ap.parse_args()
    if args.compare:
        compare(args)
    elif len(args.workload) == 4 and args.workload[2] >= 8:
        print(json.dumps(run_one(*args.workload)))
    else:
        ap.error("give PRODUCERS CONSUMERS SIZE COUNT (SIZE >= 8), "
                 "or --compare")


if __name__ == "__main__":
    main()
