# SPDX-License-Identifier: MIT
"""The core benchmark's workloads with Python's multiprocessing.Pipe.

    python3 conn_python.py stream SIZE COUNT     send_bytes / recv_bytes
    python3 conn_python.py pingpong SIZE COUNT   parent sends, child echoes

A duplex Pipe() between this process and a forked child, exactly as
bench_conn does it with pc_pipe(); prints one JSON line in the same format
(see bench_common.h), with the same checks: every message's length and
index, and the whole payload of every 64th message and the last.
"""
import json
import multiprocessing
import os
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


def child(conn, mode, size, count, ref):
    conn.send_bytes(b"r")
    pingpong = mode == "pingpong"
    for i in range(count):
        msg = conn.recv_bytes()
        check(msg, size, i, ref, i == count - 1)
        if pingpong:
            conn.send_bytes(msg)
    if not pingpong:
        conn.send_bytes(b"a")


def parent(conn, mode, size, count, ref):
    pingpong = mode == "pingpong"
    buf = bytearray(ref)
    if conn.recv_bytes() != b"r":
        raise SystemExit("bad ready message")
    t0 = time.monotonic()
    for i in range(count):
        struct.pack_into("<Q", buf, 0, i)
        conn.send_bytes(buf)
        if pingpong:
            check(conn.recv_bytes(), size, i, ref, i == count - 1)
    if not pingpong and conn.recv_bytes() != b"a":
        raise SystemExit("bad acknowledgement")
    return time.monotonic() - t0


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("stream", "pingpong"):
        raise SystemExit(__doc__)
    mode, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if size < 8 or count < 1:
        raise SystemExit("SIZE must be >= 8 and COUNT >= 1")
    ref = pattern(size)
    mine, theirs = multiprocessing.Pipe()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            mine.close()
            child(theirs, mode, size, count, ref)
            code = 0
        except BaseException as e:  # report, then leave without cleanup
            print(f"child: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    theirs.close()
    seconds = parent(mine, mode, size, count, ref)
    mine.close()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: status {status}")
    pingpong = mode == "pingpong"
    moved = count * size * (2 if pingpong else 1)
    print(json.dumps({
        "impl": "python", "mode": mode, "size": size, "count": count,
        "seconds": round(seconds, 6),
        "msgs_per_s": round(count / seconds, 1),
        "mb_per_s": round(moved / seconds / 1e6, 1),
        "rtt_us": round(seconds / count * 1e6, 3) if pingpong else None,
    }), flush=True)


if __name__ == "__main__":
    main()
