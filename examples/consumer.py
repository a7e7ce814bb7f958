# SPDX-License-Identifier: MIT
"""consumer.py: the Python twin of examples/consumer.c.

Reads the messages examples/producer (a C program) streams to it over an
inherited pipe end, with Python's own multiprocessing Connection, until end
of stream, and prints exactly what the C consumer prints.

Run:    ./build/examples/producer --consumer "python3 examples/consumer.py"
Prints: consumer: received (0, 'item 0', 0)
        consumer: received (1, 'item 1', 1)
        consumer: received (2, 'item 2', 4)
        consumer: end of stream after 10000 messages, sum of squares 333283335000
Exits with 1 on a message out of sequence.
"""
import argparse
import sys
from multiprocessing.connection import Connection


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True,
                        help="inherited read end of the producer's pipe")
    args = parser.parse_args()
    conn = Connection(args.fd, writable=False)
    count = total = 0
    while True:
        try:
            item = conn.recv()
        except EOFError:
            break
        if item != (count, f"item {count}", count * count):
            print(f"consumer: unexpected message {count}: {item!r}",
                  file=sys.stderr)
            return 1
        if count < 3:
            print("consumer: received", item, flush=True)
        count += 1
        total += item[2]
    print(f"consumer: end of stream after {count} messages, "
          f"sum of squares {total}", flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
