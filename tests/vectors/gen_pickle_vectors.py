#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Golden vectors for libpipeconn's pickle codec, made by CPython itself.

    python3 tests/vectors/gen_pickle_vectors.py tests/vectors/pickle

writes four files, one vector per line, fields separated by a tab:

  decode.txt  NAME PROTOCOL HEX_PICKLE EXACT REPR
      pickle.dumps(value, PROTOCOL) and repr(value). tests/test_pickle.c
      decodes the pickle and checks that pc_value_repr gives REPR; when EXACT
      is 1 it also re-encodes with the same protocol (2 to 5) and checks the
      bytes are identical to Python's. EXACT is 0 where the C side cannot
      reproduce Python's bytes (bytearray has no pc_value type).
  big.txt     NAME PROTOCOL LENGTH FNV1A64
      Encodings of large values (see big()), as length and hash.
  reject.txt  NAME HEX_PICKLE ERROR
      Pickles the decoder must refuse, with the expected return code
      (PC_EUNSAFE or PC_EPROTO).
  floats.txt  HEX_BITS REPR
      Random doubles and repr(); checks pc_value_repr's shortest round-trip
      formatting.

The committed files were made with CPython 3.11; running the script with
another CPython 3.8+ gives equally valid vectors (repr of characters that a
newer Unicode version assigns may differ; the C side follows 3.11).
"""
import io
import os
import pickle
import random
import struct
import sys


def ints():
    vals = [0, 1, -1, 127, 128, 255, 256, -256, 65535, 65536, -65536,
            2**31 - 1, -2**31, 2**31, -2**31 - 1, 2**32, 2**62 - 1, -2**62,
            2**62, -2**62 - 1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64,
            2**100, -2**100, 10**50, -(10**50), 2**(8 * 255) - 1,
            2**(8 * 300), -(2**(8 * 300))]
    return [("int_%d" % i, v) for i, v in enumerate(vals)]


def floats():
    vals = [0.0, -0.0, 1.5, -2.25, 0.1, 1 / 3, 1e16, 1e15, 1e-5, 1e-4,
            float("inf"), float("-inf"), float("nan"), 5e-324,
            1.7976931348623157e308, 2.0**63, 123456789.125, 1e22, 1e-300]
    return [("float_%d" % i, v) for i, v in enumerate(vals)]


def strs():
    vals = ["", "a", "spam", "it's", 'say "hi"', "both ' and \"",
            "Hello \u59b9\u59b9", "\U0001f600", "a\x00b", "\ud800",
            "\udfff\ud800", "a\\u0041", "\\", "\\\\u0041", "line\nbreak",
            "\r\t\x1a\x7f", "x" * 300, "\xe9" * 200, "\u20ac" * 100,
            "".join(chr(c) for c in range(0x20, 0x3000, 37)),
            "".join(chr(c) for c in range(0x10000, 0x110000, 0x1001)),
            "\xa0\u200b\u2028\U000e0001"]
    return [("str_%d" % i, v) for i, v in enumerate(vals)]


def byteses():
    vals = [b"", b"a", b"\x00\xff", b"it's", b"both ' and \"",
            bytes(range(256)), b"x" * 300]
    return [("bytes_%d" % i, v) for i, v in enumerate(vals)]


def containers():
    shared_list = [1]
    shared_str = "shared"
    shared_dict = {"k": shared_list}
    deep = 7
    for _ in range(200):
        deep = [deep]
    deep_mixed = "leaf"
    for i in range(150):
        deep_mixed = ({"k": deep_mixed},) if i % 2 else [deep_mixed]
    return [
        ("list_empty", []),
        ("list_one", [1]),
        ("list_seed", ["spam", 42, "eggs"]),
        ("list_range1000", list(range(1000))),
        ("list_range1001", list(range(1001))),
        ("list_mixed", [None, True, False, 1.5, "s", b"b", (), [], {}]),
        ("tuple_empty", ()),
        ("tuple_1", (1,)),
        ("tuple_2", (1, "a")),
        ("tuple_3", (1, 2, 3)),
        ("tuple_4", (1, 2, 3, 4)),
        ("tuple_nested", ((), ((),), [()])),
        ("dict_empty", {}),
        ("dict_one", {"a": 1}),
        ("dict_seed", dict(name="bob", spam=42)),
        ("dict_keys", {(1, 2): "tuple key", 1.5: None, None: 1, b"k": "v",
                       frozenset({1}): 2, True: "t", -5: [1]}),
        ("dict_1000", {i: i for i in range(1000)}),
        ("dict_1001", {i: -i for i in range(1001)}),
        ("set_empty", set()),
        ("set_one", {1}),
        ("set_seed", {x * 2 for x in "spam"}),
        ("set_1000", set(range(1000))),
        ("set_1001", set(range(1001))),
        ("set_mixed", {(1, 2), "a", 3.5, None, b"x", frozenset()}),
        ("frozenset_empty", frozenset()),
        ("frozenset_3", frozenset({1, 2, 3})),
        ("frozenset_str", frozenset({"a", "b"})),
        ("shared_list", [shared_list, shared_list, (shared_list,)]),
        ("shared_str", [shared_str, shared_str, {shared_str: shared_str}]),
        ("shared_dict", (shared_dict, [shared_dict])),
        ("shared_set", [frozenset({1}), {2}] * 2),
        ("deep_list_200", deep),
        ("deep_mixed_150", deep_mixed),
        ("nested_seed", {"list": ["spam", 42, "eggs"], "set": {1},
                         "tuple": (1.0, b"x"), "none": None}),
    ]


# Values too large to store: tests/test_pickle.c builds each from its name
# (keep the recipes in step) and compares the length and FNV-1a hash of its
# encoding with Python's. They cross frame boundaries (64 KiB) and include
# the large str/bytes that Python writes outside frames.
def big():
    return [
        ("big_list", list(range(22000))),
        ("big_str", ["a" * 70000, "b", b"c" * 65536, [1]]),
        ("big_bytes", [b"\x01" * 65535, b"\x02" * 65536]),
        ("big_nested", [[i, str(i)] for i in range(6000)]),
    ]


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def write_decode(path):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        def emit(name, proto, value, exact=1, expected_repr=None):
            data = pickle.dumps(value, proto)
            r = repr(value) if expected_repr is None else expected_repr
            assert "\n" not in r and "\t" not in r
            f.write("%s\t%d\t%s\t%d\t%s\n" % (name, proto, data.hex(), exact,
                                               r))

        for proto in range(0, 6):
            for name, v in ints() + floats() + strs() + byteses() + \
                    containers():
                emit(name, proto, v)
        # bytearray has only protocol 5's BYTEARRAY8 as a data form; the
        # codec reads it as bytes (older protocols call bytearray()).
        emit("bytearray_5", 5, bytearray(b"ab"), 0, "b'ab'")
        emit("bytearray_empty_5", 5, bytearray(), 0, "b''")


class Unsafe:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class Plain:
    def __init__(self):
        self.x = 1


def write_reject(path):
    self_list = []
    self_list.append(self_list)
    self_dict = {}
    self_dict["me"] = self_dict
    a, b = [], []
    a.append(b)
    b.append(a)
    inner = []
    self_tuple = (inner,)
    inner.append(self_tuple)
    cases = []
    for proto in range(0, 6):
        cases += [
            ("reduce_os_system_%d" % proto, Unsafe(), "PC_EUNSAFE"),
            ("object_%d" % proto, Plain(), "PC_EUNSAFE"),
            ("function_%d" % proto, os.getcwd, "PC_EUNSAFE"),
            ("complex_%d" % proto, 1 + 2j, "PC_EUNSAFE"),
            ("range_%d" % proto, range(3), "PC_EUNSAFE"),
            ("self_list_%d" % proto, self_list, "PC_EPROTO"),
            ("self_dict_%d" % proto, self_dict, "PC_EPROTO"),
            ("mutual_lists_%d" % proto, a, "PC_EPROTO"),
            ("self_tuple_%d" % proto, self_tuple, "PC_EPROTO"),
        ]
        if proto < 5:
            cases.append(("bytearray_%d" % proto, bytearray(b"x"),
                          "PC_EUNSAFE"))
    # Out-of-band buffers (protocol 5).
    oob = pickle.dumps(pickle.PickleBuffer(b"abc"), 5,
                       buffer_callback=lambda b: False)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for name, v, err in cases:
            proto = int(name.rsplit("_", 1)[1])
            f.write("%s\t%s\t%s\n" % (name, pickle.dumps(v, proto).hex(), err))
        f.write("next_buffer_5\t%s\tPC_EUNSAFE\n" % oob.hex())


def write_big(path):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for proto in (2, 3, 4, 5):
            for name, v in big():
                data = pickle.dumps(v, proto)
                f.write("%s\t%d\t%d\t%016x\n" % (name, proto, len(data),
                                                 fnv1a64(data)))


def write_floats(path):
    rnd = random.Random(20240601)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i in range(5000):
            k = rnd.random()
            if k < 0.5:
                bits = rnd.getrandbits(64)
            elif k < 0.7:
                bits = struct.unpack("<Q", struct.pack(
                    "<d", 2.0 ** rnd.randint(-1074, 1023)))[0]
            elif k < 0.85:
                bits = struct.unpack("<Q", struct.pack(
                    "<d", round(rnd.uniform(-1e4, 1e4), rnd.randint(0, 8))))[0]
            else:
                bits = struct.unpack("<Q", struct.pack(
                    "<d", float(rnd.randint(-10**20, 10**20))))[0]
            d = struct.unpack("<d", struct.pack("<Q", bits))[0]
            f.write("%016x\t%s\n" % (bits, repr(d)))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "pickle")
    os.makedirs(out, exist_ok=True)
    write_decode(os.path.join(out, "decode.txt"))
    write_reject(os.path.join(out, "reject.txt"))
    write_big(os.path.join(out, "big.txt"))
    write_floats(os.path.join(out, "floats.txt"))


if __name__ == "__main__":
    main()
