# SPDX-License-Identifier: MIT
"""Python peer for tests/test_pickle_python.c: objects through a real
multiprocessing.connection.Connection on an inherited descriptor.

usage: pickle_peer.py FD MODE
  echo      send every value of values() with Connection.send (protocol 4 in
            3.8-3.13, 5 in 3.14) and with pickle protocols 0-5, receive what
            the C side sends back, and check it is the same object: same
            types all the way down, floats bit for bit, dict order, shared
            references. Then check that an unsafe pickle is refused by the C
            side and that the connection still works.
  c_values  receive (value, expected repr) pairs built by the C side until
            end of stream; check repr(value) == expected.
Exit status 0 when everything matched; details of a mismatch on stderr.
"""
import math
import os
import pickle
import struct
import sys
from multiprocessing.connection import Connection


def values():
    shared = [1, "x"]
    deep = 7
    for _ in range(200):
        deep = [deep]
    return [
        ("none", None), ("true", True), ("false", False),
        ("zero", 0), ("one", 1), ("minus_one", -1), ("byte", 255),
        ("int32", 2**31 - 1), ("int32_min", -2**31), ("int33", 2**31),
        ("int62", 2**62), ("int63", 2**63), ("int64_min_minus_1", -2**63 - 1),
        ("int100", 2**100), ("int_neg_big", -(10**50)),
        ("int_2400_bits", 3**1500),
        ("float", 1.5), ("neg_zero", -0.0), ("inf", float("inf")),
        ("neg_inf", float("-inf")), ("nan", float("nan")),
        ("nan_payload", struct.unpack("<d", struct.pack("<Q",
                                                        0x7ff8000000000123))[0]),
        ("denormal", 5e-324), ("float_big", 1e300),
        ("str_empty", ""), ("str", "spam"), ("str_hello", "Hello \u59b9\u59b9"),
        ("str_emoji", "\U0001f600"), ("str_nul", "a\x00b"),
        ("str_surrogate", "\ud800"), ("str_quotes", "it's \"quoted\""),
        ("str_escapes", "\\u0041\n\r\t\\"),
        ("str_long", "\u20ac" * 30000),
        ("bytes_empty", b""), ("bytes", b"\x00\xff"),
        ("bytes_all", bytes(range(256))), ("bytes_long", b"z" * 70000),
        ("list_empty", []), ("list_seed", ["spam", 42, "eggs"]),
        ("list_range", list(range(1000))),
        ("list_big", list(range(30000))),
        ("tuple_empty", ()), ("tuple_one", (1,)),
        ("tuple_three", (1, "a", None)), ("tuple_many", tuple(range(10))),
        ("dict_empty", {}), ("dict_seed", dict(name="bob", spam=42)),
        ("dict_keys", {(1, 2): "x", 1.5: None, frozenset({1}): b"k",
                       None: [], -7: {"nested": (True,)}}),
        ("dict_1000", {str(i): i for i in range(1000)}),
        ("set_empty", set()), ("set_seed", {x * 2 for x in "spam"}),
        ("set_mixed", {1, "a", (2, 3), None, 2.5, b"b"}),
        ("set_1001", set(range(1001))),
        ("frozenset_empty", frozenset()), ("frozenset", frozenset({1, 2, 3})),
        ("deep_200", deep),
        ("shared", [shared, shared, {"again": shared}]),
        ("mixed", {"list": ["spam", 42, "eggs"], "set": {"a"}, "t": (1.0, b"x"),
                   "none": None, "big": 2**70}),
    ]


def same(a, b, path="value", text_floats=False):
    """Strict structural equality; returns None or a description.
    text_floats: protocol 0 writes floats as repr() text, which keeps every
    bit except a NaN's payload, so any NaN matches any NaN."""
    if type(a) is not type(b):
        return "%s: type %s became %s" % (path, type(a).__name__,
                                           type(b).__name__)
    if isinstance(a, float):
        if text_floats and math.isnan(a) and math.isnan(b):
            return None
        if struct.pack("<d", a) != struct.pack("<d", b):
            return "%s: float %r became %r" % (path, a, b)
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return "%s: length %d became %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, "%s[%d]" % (path, i), text_floats)
            if d:
                return d
        return None
    if isinstance(a, dict):
        if len(a) != len(b):
            return "%s: %d entries became %d" % (path, len(a), len(b))
        for i, ((k1, v1), (k2, v2)) in enumerate(zip(a.items(), b.items())):
            d = same(k1, k2, "%s key %d" % (path, i), text_floats) or \
                same(v1, v2, "%s[%r]" % (path, k1), text_floats)
            if d:
                return d
        return None
    if isinstance(a, (set, frozenset)):
        if a != b:
            return "%s: set %r became %r" % (path, a, b)
        lookup = {x: x for x in b}
        for x in a:
            d = same(x, lookup[x], "%s element %r" % (path, x), text_floats)
            if d:
                return d
        return None
    if a != b:
        return "%s: %r became %r" % (path, a, b)
    return None


class Unsafe:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def echo(conn):
    count = 0
    for proto in (None, 0, 1, 2, 3, 4, 5):
        for name, v in values():
            if proto is None:
                conn.send(v)
            else:
                conn.send_bytes(pickle.dumps(v, proto))
            got = conn.recv()
            d = same(v, got, text_floats=proto == 0)
            if d:
                print("%s (protocol %s): %s" % (name, proto, d),
                      file=sys.stderr)
                return 3
            count += 1
    # Shared references come back shared.
    shared = [1]
    conn.send([shared, shared])
    got = conn.recv()
    if got[0] is not got[1]:
        print("shared reference came back as two objects", file=sys.stderr)
        return 4
    # An unsafe pickle is refused by the C side (it answers with the error
    # name), and the connection still works afterwards.
    conn.send_bytes(pickle.dumps(Unsafe(), 2))
    got = conn.recv()
    if got != "refused PC_EUNSAFE":
        print("unsafe pickle: C answered %r" % (got,), file=sys.stderr)
        return 5
    conn.send_bytes(b"\x80\x04garbage")
    got = conn.recv()
    if got != "refused PC_EPROTO":
        print("garbage: C answered %r" % (got,), file=sys.stderr)
        return 6
    conn.send("still here")
    if conn.recv() != "still here":
        return 7
    print("pickle_peer: %d values echoed" % count, file=sys.stderr)
    return 0


def c_values(conn):
    count = 0
    while True:
        try:
            obj = conn.recv()
        except EOFError:
            break
        expected = conn.recv_bytes().decode("utf-8", "surrogatepass")
        if repr(obj) != expected:
            print("C value %d: repr %s, expected %s" % (count, ascii(repr(obj)),
                                                        ascii(expected)),
                  file=sys.stderr)
            return 3
        # Send it back as Python pickles it, so the C side can check it
        # reads Python's encoding of its own value.
        conn.send(obj)
        count += 1
    print("pickle_peer: %d C values checked" % count, file=sys.stderr)
    return 0 if count > 0 else 8


def main():
    fd, mode = int(sys.argv[1]), sys.argv[2]
    conn = Connection(fd)
    if mode == "echo":
        return echo(conn)
    if mode == "c_values":
        return c_values(conn)
    return 2


if __name__ == "__main__":
    sys.exit(main())
