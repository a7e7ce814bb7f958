# SPDX-License-Identifier: MIT
"""Python peer for tests/test_conn_python.c: a real
multiprocessing.connection.Connection on an inherited descriptor.

usage: conn_peer.py FD MODE
  echo   receive messages and send each one back, until end of stream
  sizes  send pattern messages of the sizes given after MODE, then receive
         the same sizes from the C side and check them; exit 0 if all match
"""
import sys
from multiprocessing.connection import Connection


def pattern(n):
    # Byte i is i % 251: cheap to build in both languages, never periodic
    # on a power of two.
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


def main():
    fd, mode = int(sys.argv[1]), sys.argv[2]
    conn = Connection(fd)
    if mode == "echo":
        while True:
            try:
                msg = conn.recv_bytes()
            except EOFError:
                return 0
            conn.send_bytes(msg)
    if mode == "sizes":
        sizes = [int(s) for s in sys.argv[3:]]
        for n in sizes:
            conn.send_bytes(pattern(n))
        for n in sizes:
            msg = conn.recv_bytes()
            if len(msg) != n or msg != pattern(n):
                print("mismatch for size", n, "got", len(msg), file=sys.stderr)
                return 3
            del msg
        try:
            conn.recv_bytes()
        except EOFError:
            return 0
        return 4
    return 2


if __name__ == "__main__":
    sys.exit(main())
