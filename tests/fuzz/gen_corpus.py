#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seed corpora for the fuzz targets in tests/fuzz.

    python3 tests/fuzz/gen_corpus.py tests/fuzz/corpus

writes corpus/frame, corpus/pickle and corpus/api (the seed files are
committed; regression inputs found by fuzzing are committed next to them with
names starting "crash-", "leak-", "timeout-" or "regress-", and this script
never deletes those). The layouts are documented at the top of each target:

  frame   byte 0 mode, byte 1 number of op bytes, byte 2 padding in 512-byte
          units, the raw stream a hostile peer writes, then the op bytes.
  pickle  the pickle itself: CPython's pickles of every type with protocols
          0-5, the rejected vectors of tests/vectors/pickle/reject.txt, and
          hand-made hostile ones.
  api     byte 0 the pair kind, then (operation, argument) byte pairs.

Deterministic: running it again gives the same files.
"""
import os
import pickle
import struct
import sys

# ------------------------------------------------------------------ frame

DUPLEX, SIMPLEX, SHARED, SHARED_SIMPLEX = 0, 1, 2, 3
THREAD, CLOSE_AT_END = 4, 8
MODE_NAMES = {DUPLEX: "duplex", SIMPLEX: "simplex", SHARED: "shared",
              SHARED_SIMPLEX: "sharedsimplex"}

# Op bytes (fuzz_frame.c run_op): kind in bits 0-2, argument above.
def op(kind, arg=0):
    return bytes([(arg << 3) | kind])


RECV, INTO, SIZE, POLL, TIMEOUT, FEED, CLOSE, RECV_OBJ = range(8)
LIM_NONE, LIM_EXACT, LIM_LESS, LIM_ZERO = 0, 2, 3, 4
FEED_ALL, FEED_1, FEED_3, FEED_4096 = 15, 0, 2, 13
T_FOREVER, T_ZERO, T_1MS = 0, 1, 2


def small(payload):
    return struct.pack(">i", len(payload)) + payload


def large_form(payload, length=None):
    n = len(payload) if length is None else length
    return b"\xff\xff\xff\xff" + struct.pack(">Q", n) + payload


def frame_input(mode, stream, ops=b"", pad512=0):
    assert len(ops) < 256
    return bytes([mode, len(ops), pad512]) + stream + ops


def frame_seeds():
    seeds = {}
    p_int = pickle.dumps(42, protocol=4)
    p_list = pickle.dumps([1, "two", b"three", 4.0, None, True], protocol=4)
    p_dict = pickle.dumps({"a": (1, 2), "b": {3, 4}}, protocol=5)
    garbage = b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fJunk"
    unsafe = b"cos\nsystem\n(S'echo hi'\ntR."
    basic = (small(b"") + small(b"x") + small(bytes(range(100))) +
             large_form(b"via -1") + small(p_int) + small(p_list))
    everything = (op(FEED, FEED_ALL) + op(RECV) + op(INTO, LIM_EXACT) +
                  op(SIZE) + op(POLL) + op(RECV, LIM_EXACT) + op(RECV_OBJ) +
                  op(RECV_OBJ) + op(RECV) + op(POLL, 4))
    for mode in (DUPLEX, SIMPLEX, SHARED, SHARED_SIMPLEX):
        m = MODE_NAMES[mode]
        seeds[m + "-valid"] = frame_input(mode | CLOSE_AT_END, basic,
                                          everything)
        seeds[m + "-valid-open"] = frame_input(mode, basic, everything)
        seeds[m + "-valid-thread"] = frame_input(
            mode | THREAD, basic, op(RECV) + op(SIZE) + op(INTO, LIM_EXACT) +
            op(POLL, 3) + op(RECV_OBJ) + op(TIMEOUT, T_ZERO) + op(RECV))
        # A header split over one-byte writes, polled in between.
        dribble = op(TIMEOUT, T_ZERO)
        for _ in range(6):
            dribble += op(FEED, FEED_1) + op(POLL) + op(SIZE)
        dribble += op(FEED, FEED_3) + op(RECV) + op(FEED, FEED_ALL)
        seeds[m + "-split-header"] = frame_input(
            mode | CLOSE_AT_END, large_form(b"abc") + small(b"tail"), dribble)
        seeds[m + "-truncated-header"] = frame_input(
            mode | CLOSE_AT_END, small(b"ok") + b"\x00\x00",
            op(FEED, FEED_ALL) + op(RECV) + op(POLL) + op(RECV))
        seeds[m + "-truncated-large-header"] = frame_input(
            mode | CLOSE_AT_END, b"\xff\xff\xff\xff\x00\x00\x00",
            op(FEED, FEED_ALL) + op(SIZE) + op(CLOSE) + op(RECV))
        seeds[m + "-truncated-payload"] = frame_input(
            mode | CLOSE_AT_END, small(b"0123456789")[:9],
            op(FEED, FEED_ALL) + op(SIZE) + op(INTO, LIM_LESS) +
            op(CLOSE) + op(RECV))
        for name, hdr in (("2g-1", struct.pack(">I", 0x7fffffff)),
                          ("2e62", large_form(b"", 1 << 62)),
                          ("2e63", large_form(b"", 1 << 63)),
                          ("2e64-1", large_form(b"", (1 << 64) - 1))):
            seeds[m + "-lying-" + name] = frame_input(
                mode | CLOSE_AT_END, hdr + b"some bytes",
                op(FEED, FEED_ALL) + op(TIMEOUT, T_ZERO) + op(SIZE) +
                op(POLL) + op(INTO, LIM_NONE) + op(RECV, LIM_LESS) +
                op(RECV) + op(CLOSE) + op(RECV))
        for name, hdr in (("min", b"\x80\x00\x00\x00"),
                          ("minus2", b"\xff\xff\xff\xfe")):
            seeds[m + "-negative-" + name] = frame_input(
                mode | CLOSE_AT_END, small(b"before") + hdr + small(b"after"),
                op(FEED, FEED_ALL) + op(RECV) + op(POLL) + op(RECV) +
                op(SIZE) + op(RECV))
        # A 100000-byte payload from padding: 196 x 512 zero bytes after
        # the header, so the rest (352 zero bytes) is 88 empty messages.
        seeds[m + "-big-padded"] = frame_input(
            mode | CLOSE_AT_END, struct.pack(">i", 100000),
            op(TIMEOUT, T_ZERO) + op(FEED, FEED_4096) + op(POLL) +
            op(RECV) + op(FEED, FEED_ALL) + op(INTO, LIM_EXACT) + op(RECV),
            pad512=196)
        seeds[m + "-big-padded-thread"] = frame_input(
            mode | THREAD, struct.pack(">i", 100000),
            op(INTO, LIM_EXACT) + op(RECV) + op(POLL, 3), pad512=196)
        seeds[m + "-limits"] = frame_input(
            mode | CLOSE_AT_END, small(b"x" * 50) + small(b"y" * 50),
            op(FEED, FEED_ALL) + op(INTO, LIM_LESS) + op(INTO, LIM_ZERO) +
            op(RECV, LIM_EXACT) + op(RECV, LIM_LESS) + op(RECV))
        seeds[m + "-pickles"] = frame_input(
            mode | CLOSE_AT_END,
            small(p_dict) + small(garbage) + small(unsafe) + small(p_list),
            op(FEED, FEED_ALL) + op(RECV_OBJ) * 5)
        seeds[m + "-timeouts"] = frame_input(
            mode, small(b"late"),
            op(TIMEOUT, T_1MS) + op(RECV) + op(POLL, 2) + op(FEED, FEED_3) +
            op(SIZE) + op(FEED, FEED_ALL) + op(TIMEOUT, T_FOREVER) +
            op(RECV) + op(TIMEOUT, T_1MS) + op(RECV))
    seeds["duplex-many-empty"] = frame_input(
        DUPLEX | CLOSE_AT_END, small(b"") * 500, op(FEED, FEED_ALL) +
        op(POLL) + op(RECV) * 10)
    return seeds


# ------------------------------------------------------------------ pickle

def pickle_values():
    big = 2 ** 200 + 12345
    shared = ["shared"]
    return {
        "none": None, "true": True, "false": False,
        "int-small": 7, "int-neg": -300, "int-32": 2 ** 31, "int-64": 2 ** 63,
        "int-big": big, "int-bigneg": -big,
        "float": 1.5, "float-negzero": -0.0, "float-inf": float("inf"),
        "float-nan": float("nan"), "float-tiny": 5e-324,
        "str-empty": "", "str": "spam", "str-unicode": "Hello \u59b9 \U0001f600",
        "str-surrogate": "\ud800x", "str-nul": "a\x00b",
        "bytes-empty": b"", "bytes": b"\x00\xffbytes", "bytes-300": bytes(300),
        "bytearray": bytearray(b"ba"),
        "list-empty": [], "list": [1, 2.0, "3", b"4", None],
        "tuple-empty": (), "tuple1": (1,), "tuple2": (1, 2), "tuple3": (1, 2, 3),
        "tuple5": (1, 2, 3, 4, 5),
        "dict-empty": {}, "dict": {"a": 1, 2: "b", (3, 4): [5]},
        "dict-numkeys": {1: "int", 2.5: "float", True: "bool"},
        "set-empty": set(), "set": {1, "two", (3,)},
        "frozenset-empty": frozenset(), "frozenset": frozenset({1, 2}),
        "shared-refs": [shared, shared, {"k": shared}],
        "nested": [[[[[[[[[["deep"]]]]]]]]]],
        "mixed": {"list": [1, [2, [3]]], "set": frozenset({"x"}),
                  "t": (None, True, 1.0)},
    }


def hostile_pickles():
    h = {}
    # Nesting exactly at the limit and one beyond (1000 = PC_VALUE_MAX_DEPTH).
    for n in (1000, 1001):
        h["deep-list-%d" % n] = (b"\x80\x02" + b"]" * n + b"a" * (n - 1) +
                                 b".")
        h["deep-tuple-%d" % n] = (b"\x80\x02" + b"(" * n + b")" +
                                  b"t" * (n - 1) + b".")
    h["memo-put-huge"] = b"\x80\x04K\x01r\xff\xff\xff\xff."
    h["memo-get-missing"] = b"\x80\x04j\x10\x00\x00\x00."
    h["memo-get-far"] = b"\x80\x04h\xfe."
    h["binunicode8-2e63"] = (b"\x80\x04\x8d" + struct.pack("<Q", 1 << 63) +
                             b"abc.")
    h["binbytes8-max"] = (b"\x80\x04\x8e" + struct.pack("<Q", (1 << 64) - 1) +
                          b"abc.")
    h["bytearray8-lie"] = (b"\x80\x05\x96" + struct.pack("<Q", 1000) +
                           b"short.")
    h["frame-lie"] = b"\x80\x04\x95" + struct.pack("<Q", 1 << 40) + b"K\x01."
    h["frame-short"] = b"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01."
    h["long4-huge"] = b"\x80\x02\x8b\xff\xff\xff\x7f\x01."
    h["long1-neg"] = b"\x80\x02\x8a\x02\x00\x80."
    h["long-text-5000"] = b"L" + b"9" * 5000 + b"L\n."
    h["int-text-bool"] = b"I01\nI00\n\x86."
    h["float-text"] = b"(Fnan\nFinf\nF-0.0\nF1e500\nF1.5\nl."
    h["float-text-bad"] = b"F1.5x\n."
    h["utf8-invalid"] = b"\x80\x04\x8c\x02\xc3\x28."
    h["utf8-overlong"] = b"\x80\x04\x8c\x02\xc0\xaf."
    h["unhashable-key"] = b"\x80\x04}](K\x01\x85K\x02s."
    h["unhashable-set"] = b"\x80\x04\x8f(]\x90."
    h["set-dups"] = b"\x80\x04\x8f(K\x01\x88G?\xf0\x00\x00\x00\x00\x00\x00\x90."
    h["dict-dup-keys"] = b"\x80\x04}(K\x01K\x02\x88K\x03u."
    h["stack-underflow"] = b"\x80\x02a."
    h["mark-unclosed"] = b"\x80\x02(K\x01."
    h["pop-mark"] = b"\x80\x02(K\x01K\x021N."
    h["after-stop"] = b"\x80\x02N.N"
    h["two-values"] = b"\x80\x02NN."
    h["no-stop"] = b"\x80\x02]"
    h["empty"] = b""
    h["proto-6"] = b"\x80\x06N."
    h["string-py2"] = b"S'it''s\\x41\\n'\np0\n."
    h["string-py2-bad"] = b"S'unterminated\n."
    h["binstring-latin1"] = b"\x80\x02U\x02\xe9\xe9."
    h["global-set"] = b"c__builtin__\nset\n(]K\x01a\x85R."
    h["global-bytes"] = b"c_codecs\nencode\n(X\x02\x00\x00\x00\xc3\xa9X\x06\x00\x00\x00latin1\x86R."
    h["global-os"] = b"cos\nsystem\n(S'echo'\ntR."
    h["stack-global"] = b"\x80\x04\x8c\x02os\x8c\x06system\x93."
    h["persid"] = b"Pid\n."
    h["self-list"] = b"\x80\x02]q\x00h\x00a."
    h["self-dict-memo"] = b"\x80\x02}q\x00K\x01h\x00s."
    h["memo-shared-nan"] = (b"\x80\x04}(G\x7f\xf8\x00\x00\x00\x00\x00\x00"
                            b"\x94K\x01h\x00K\x02u.")
    return h


def pickle_seeds():
    seeds = {}
    for name, v in pickle_values().items():
        for proto in range(6):
            seeds["%s-p%d" % (name, proto)] = pickle.dumps(v, protocol=proto)
    # A pickle cut short at several points.
    whole = pickle.dumps(pickle_values()["mixed"], protocol=4)
    for cut in (1, 3, 11, len(whole) // 2, len(whole) - 1):
        seeds["truncated-%d" % cut] = whole[:cut]
    for name, data in hostile_pickles().items():
        seeds["hostile-" + name] = data
    here = os.path.dirname(os.path.abspath(__file__))
    reject = os.path.join(here, "..", "vectors", "pickle", "reject.txt")
    with open(reject) as f:
        for line in f:
            name, hexdata, _ = line.rstrip("\n").split("\t")
            seeds["reject-" + name] = bytes.fromhex(hexdata)
    return seeds


# ------------------------------------------------------------------ api

# Operations (fuzz_api.c run_op): (kind << 1) | end, then an argument byte.
(SEND, BATCH, RECV_A, INTO_A, SIZE_A, POLL_A, TIMEOUT_A, FLUSH, QUERY, CLOSE_A,
 BUFFERED) = (0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12)
BUF_0, BUF_64, BUF_4096, BUF_65536 = range(4)
SZ = {0: 0, 1: 1, 3: 2, 100: 6, 4096: 9, 32768: 12, 65536: 14, 200000: 15}


def a(kind, end, arg=0):
    return bytes([(kind << 1) | end, arg])


def api_seeds():
    seeds = {}
    for kind, name in ((DUPLEX, "duplex"), (SIMPLEX, "simplex"),
                       (SHARED, "shared"), (SHARED_SIMPLEX, "sharedsimplex")):
        simplex = kind in (SIMPLEX, SHARED_SIMPLEX)
        s, r = (1, 0) if simplex else (0, 1)
        pre = bytes([kind])
        ping = (a(SEND, s, SZ[100]) + a(RECV_A, r) + a(SEND, s, SZ[0]) +
                a(POLL_A, r) + a(SIZE_A, r) + a(RECV_A, r) + a(QUERY, s) +
                a(QUERY, r))
        if not simplex:
            ping += a(SEND, r, SZ[3] | 16) + a(INTO_A, s) + a(RECV_A, s)
        seeds[name + "-pingpong"] = pre + ping
        seeds[name + "-batch"] = pre + (a(BATCH, s, 3) + a(BATCH, s, 0x41) +
                                        a(POLL_A, r, 4) + a(RECV_A, r) * 12)
        seeds[name + "-big-timeout0"] = pre + (
            a(TIMEOUT_A, s, 1) + a(TIMEOUT_A, r, 1) + a(SEND, s, SZ[200000]) +
            a(RECV_A, r) + a(FLUSH, s) + a(POLL_A, r) + a(RECV_A, r) +
            a(FLUSH, s) + a(RECV_A, r) + a(SEND, s, SZ[65536] | 16) +
            a(INTO_A, r, 7) + a(FLUSH, s) + a(INTO_A, r))
        seeds[name + "-limits"] = pre + (
            a(SEND, s, SZ[100]) + a(INTO_A, r, 3) + a(SIZE_A, r) +
            a(RECV_A, r, 3) + a(QUERY, r) + a(RECV_A, r) + a(POLL_A, r))
        seeds[name + "-close-held"] = pre + (
            a(TIMEOUT_A, s, 1) + a(SEND, s, SZ[4096]) +
            a(SEND, s, SZ[200000]) + a(CLOSE_A, s, 0) + a(RECV_A, r) +
            a(RECV_A, r) + a(POLL_A, r) + a(RECV_A, r) + a(QUERY, s))
        seeds[name + "-close-receiver"] = pre + (
            a(SEND, s, SZ[100]) + a(CLOSE_A, r, 1) + a(SEND, s, SZ[1]) +
            a(FLUSH, s) + a(BATCH, s, 1) + a(POLL_A, r) + a(QUERY, r))
        seeds[name + "-timeouts"] = pre + (
            a(TIMEOUT_A, r, 3) + a(RECV_A, r) + a(POLL_A, r, 2) +
            a(TIMEOUT_A, r, 0) + a(SEND, s, SZ[32768]) + a(RECV_A, r) +
            a(POLL_A, r, 3) + a(TIMEOUT_A, s, 3) + a(SEND, s, SZ[65536]) +
            a(RECV_A, r) + a(SIZE_A, r))
        seeds[name + "-buffered"] = pre + (
            a(BUFFERED, s, BUF_4096) + a(SEND, s, SZ[100]) +
            a(SEND, s, SZ[3]) + a(POLL_A, r) + a(FLUSH, s) + a(RECV_A, r) +
            a(BATCH, s, 2) + a(SEND, s, SZ[32768]) + a(RECV_A, r) +
            a(RECV_A, r) + a(BUFFERED, s, BUF_64) + a(SEND, s, SZ[1]) +
            a(BUFFERED, s, BUF_0) + a(RECV_A, r) * 6)
        seeds[name + "-buffered-close"] = pre + (
            a(BUFFERED, s, BUF_65536) + a(TIMEOUT_A, s, 1) +
            a(SEND, s, SZ[4096]) + a(SEND, s, SZ[100]) +
            a(CLOSE_A, s, 0) + a(RECV_A, r) * 3 + a(POLL_A, r))
        seeds[name + "-wrong-direction"] = pre + (
            a(SEND, r, SZ[1]) + a(RECV_A, s) + a(POLL_A, s) + a(FLUSH, r) +
            a(SIZE_A, s))
    return seeds


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus")
    for target, seeds in (("frame", frame_seeds()),
                          ("pickle", pickle_seeds()),
                          ("api", api_seeds())):
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in sorted(seeds.items()):
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
        print("%s: %d seeds" % (target, len(seeds)))


if __name__ == "__main__":
    main()
