/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pickle: the pickle decoder on arbitrary bytes.
 *
 * pc_pickle_loads must return 0 or one of its documented codes, and fill
 * pc_pickle_error consistently. When it decodes, the value must survive a
 * round trip through every protocol: pc_value_repr works, pc_pickle_dumps
 * succeeds, decoding the dump gives an identical value (pc_value_identical:
 * same types, floats bit for bit, same order) with the same repr, and dumping
 * that again gives the same bytes. The input is the pickle itself, so
 * CPython's pickles are seeds as they are.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static bool decode_code_ok(int rc) {
  return rc == PC_EPROTO || rc == PC_EUNSAFE || rc == PC_ELIMIT ||
         rc == -ENOMEM;
}

/* Nodes of v counted as a tree (a shared value once per reference), up to
 * about `budget`. repr and the comparisons walk that tree, and a pickle of a
 * few hundred bytes can describe one of 2^100 nodes with shared references
 * (as in Python, where repr() of it never ends too), so they are checked
 * only on values of reasonable size; the encoder writes shared values once
 * (memo), so the round trip is checked on all. */
static size_t tree_size(const pc_value *v, size_t budget) {
  size_t n = 1;
  pc_type t = pc_value_type(v);
  if (t == PC_TYPE_LIST || t == PC_TYPE_TUPLE || t == PC_TYPE_SET ||
      t == PC_TYPE_FROZENSET || t == PC_TYPE_DICT) {
    size_t len = pc_value_len(v);
    for (size_t i = 0; i < len && n < budget; i++) {
      pc_value *key = NULL, *val = NULL;
      if (t == PC_TYPE_DICT) {
        FZ_CHECK(pc_value_dict_item(v, i, &key, &val) == 0 && key != NULL &&
                     val != NULL,
                 "pc_value_dict_item(%zu) of %zu", i, len);
        n += tree_size(key, budget - n);
        if (n < budget)
          n += tree_size(val, budget - n);
      } else {
        key = pc_value_item(v, i);
        FZ_CHECK(key != NULL, "pc_value_item(%zu) of %zu is NULL", i, len);
        n += tree_size(key, budget - n);
      }
    }
  }
  return n;
}

/* Dumps v with protocol, decodes the dump and checks it against v (repr is
 * NULL when v is too big a tree to compare). */
static void round_trip(const pc_value *v, const char *repr, int protocol) {
  const char *what = repr != NULL ? repr : "(a large tree)";
  pc_buffer a = PC_BUFFER_INIT, b = PC_BUFFER_INIT;
  pc_value *w = NULL;
  pc_pickle_error err;
  int rc = pc_pickle_dumps(v, protocol, &a);
  FZ_CHECK(rc == 0, "pc_pickle_dumps(protocol %d) of %s returned %s", protocol,
           what, fz_name(rc));
  rc = pc_pickle_loads(a.data, a.len, &w, &err);
  FZ_CHECK(rc == 0,
           "loads of our own protocol %d dump of %s returned %s at offset "
           "%zu: %s",
           protocol, what, fz_name(rc), err.offset, err.message);
  if (repr != NULL) {
    rc = pc_value_identical(v, w);
    FZ_CHECK(rc == 1, "protocol %d round trip of %s is not identical (%s)",
             protocol, repr, fz_name(rc));
    char *repr2 = pc_value_repr(w);
    FZ_CHECK(repr2 != NULL && strcmp(repr, repr2) == 0,
             "protocol %d round trip changed repr %s into %s", protocol, repr,
             repr2 != NULL ? repr2 : "(null)");
    free(repr2);
  }
  rc = pc_pickle_dumps(w, protocol, &b);
  FZ_CHECK(rc == 0 && a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
           "protocol %d: dumps of the decoded dump differs (%zu vs %zu "
           "bytes, %s) for %s",
           protocol, a.len, b.len, fz_name(rc), what);
  pc_value_free(w);
  pc_buffer_release(&a);
  pc_buffer_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pc_value *v = NULL;
  pc_pickle_error err;
  memset(&err, 0x5a, sizeof err);
  int rc = pc_pickle_loads(data, size, &v, &err);
  if (rc != 0) {
    FZ_CHECK(decode_code_ok(rc), "pc_pickle_loads returned %d (%s)", rc,
             fz_name(rc));
    FZ_CHECK(v == NULL, "*out written on failure (%s)", fz_name(rc));
    FZ_CHECK(err.code == rc, "err.code %d, returned %d", err.code, rc);
    FZ_CHECK(memchr(err.message, '\0', sizeof err.message) != NULL,
             "err.message not terminated");
    FZ_CHECK(err.offset <= size, "err.offset %zu beyond the input (%zu)",
             err.offset, size);
    FZ_CHECK(err.opcode >= -1 && err.opcode <= 255, "err.opcode %d",
             err.opcode);
    return 0;
  }
  FZ_CHECK(v != NULL, "pc_pickle_loads returned 0 without a value");
  char *repr = NULL;
  if (tree_size(v, 100000) < 100000) {
    repr = pc_value_repr(v);
    FZ_CHECK(repr != NULL, "pc_value_repr of a decoded value failed");
    /* Exercised, not asserted: NaN != NaN. */
    (void)pc_value_equal(v, v);
  }
  for (int protocol = 2; protocol <= PC_PICKLE_HIGHEST_PROTOCOL; protocol++)
    round_trip(v, repr, protocol);
  free(repr);
  pc_value_free(v);
  return 0;
}
