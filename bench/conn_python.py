# SPDX-License-Identifier: MIT
"""The core benchmark's workloads with Python's multiprocessing.Pipe.

    python3 conn_python.py [-w W] stream SIZE COUNT     send_bytes / recv_bytes
    python3 conn_python.py [-w W] pingpong SIZE COUNT   parent sends, child
                                                        echoes

A duplex Pipe() between this process and a forked child, exactly as
bench_conn does it with pc_pipe(); prints one JSON line in the same format
(see bench_common.h), with the same checks: every message's length and
index, and the whole payload of every 64th message and the last.

-w W sends W untimed warm-up messages (round trips) first, as the C
programs do (default 0): in a stream the child acknowledges the W-th message
and the clock starts when that acknowledgement arrives; in a ping-pong the
first W round trips are untimed. -c P,C pins the parent to CPU P and the
child to CPU C (os.sched_setaffinity right after the fork), as the C
programs do.
"""
import getopt
import json
import multiprocessing
import os
import resource
import struct
import sys
import time

SAMPLE = 64


def pattern(size):
    return bytes(((i * 2654435761) >> 13) & 0xFF for i in range(size))


def check(msg, size, index, ref, last):
    if len(msg) != size:
        raise SystemExit(f"message {index}: length {len(msg)}, expected {size}")
    if struct.unpack_from("<Q", msg)[0] != index:
        raise SystemExit(f"message {index}: wrong index")
    if (index % SAMPLE == 0 or last) and msg[8:] != ref[8:]:
        raise SystemExit(f"message {index}: payload differs")


def child(conn, mode, size, count, warmup, ref):
    conn.send_bytes(b"r")
    pingpong = mode == "pingpong"
    total = warmup + count
    for i in range(total):
        msg = conn.recv_bytes()
        check(msg, size, i, ref, i == total - 1)
        if pingpong:
            conn.send_bytes(msg)
        elif i == warmup - 1:
            conn.send_bytes(b"w")
    if not pingpong:
        conn.send_bytes(b"a")


def send_range(conn, mode, size, buf, first, n, last, ref):
    """Sends messages first..first+n-1; in ping-pong, checks each echo."""
    pingpong = mode == "pingpong"
    for i in range(first, first + n):
        struct.pack_into("<Q", buf, 0, i)
        conn.send_bytes(buf)
        if pingpong:
            check(conn.recv_bytes(), size, i, ref, i == last)


def parent(conn, mode, size, count, warmup, ref):
    pingpong = mode == "pingpong"
    buf = bytearray(ref)
    last = warmup + count - 1
    if conn.recv_bytes() != b"r":
        raise SystemExit("bad ready message")
    send_range(conn, mode, size, buf, 0, warmup, last, ref)
    if warmup > 0 and not pingpong and conn.recv_bytes() != b"w":
        raise SystemExit("bad warm-up acknowledgement")
    t0, c0 = time.monotonic(), time.process_time()
    send_range(conn, mode, size, buf, warmup, count, last, ref)
    if not pingpong and conn.recv_bytes() != b"a":
        raise SystemExit("bad acknowledgement")
    return time.monotonic() - t0, time.process_time() - c0


def parse_args(argv):
    """[-w W] [-c P,C] MODE SIZE COUNT, as bench_parse reads it."""
    try:
        opts, rest = getopt.getopt(argv, "w:c:")
        warmup, cpus = 0, None
        for flag, value in opts:
            if flag == "-w":
                warmup = int(value)
            else:
                cpus = tuple(int(x) for x in value.split(","))
                if len(cpus) != 2 or min(cpus) < 0:
                    raise ValueError("bad -c")
        if len(rest) != 3 or rest[0] not in ("stream", "pingpong"):
            raise ValueError("bad arguments")
        mode, size, count = rest[0], int(rest[1]), int(rest[2])
    except (getopt.GetoptError, ValueError):
        raise SystemExit(__doc__) from None
    if size < 8 or count < 1 or warmup < 0:
        raise SystemExit("SIZE must be >= 8, COUNT >= 1 and W >= 0")
    return mode, size, count, warmup, cpus


def pin(cpus, who):
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[who]})
        if os.sched_getaffinity(0) != {cpus[who]}:
            raise SystemExit(f"could not pin to CPU {cpus[who]}")


def main():
    mode, size, count, warmup, cpus = parse_args(sys.argv[1:])
    ref = pattern(size)
    mine, theirs = multiprocessing.Pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            mine.close()
            pin(cpus, 1)
            child(theirs, mode, size, count, warmup, ref)
            code = 0
        except BaseException as e:  # report, then leave without cleanup
            print(f"child: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    theirs.close()
    pin(cpus, 0)
    seconds, cpu = parent(mine, mode, size, count, warmup, ref)
    mine.close()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: status {status}")
    child_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    pingpong = mode == "pingpong"
    moved = count * size * (2 if pingpong else 1)
    print(json.dumps({
        "impl": "python", "mode": mode, "size": size, "count": count,
        "warmup": warmup, "seconds": round(seconds, 6),
        "msgs_per_s": round(count / seconds, 1),
        "mb_per_s": round(moved / seconds / 1e6, 1),
        "rtt_us": round(seconds / count * 1e6, 3) if pingpong else None,
        "cpu_parent_s": round(cpu, 6),
        "cpu_child_s": round(child_ru.ru_utime + child_ru.ru_stime, 6),
    }), flush=True)


if __name__ == "__main__":
    main()
