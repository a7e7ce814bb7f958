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

/* Dumps v with protocol, decodes the dump and checks it against v. */
static void round_trip(const pc_value *v, const char *repr, int protocol) {
  pc_buffer a = PC_BUFFER_INIT, b = PC_BUFFER_INIT;
  pc_value *w = NULL;
  pc_pickle_error err;
  int rc = pc_pickle_dumps(v, protocol, &a);
  FZ_CHECK(rc == 0, "pc_pickle_dumps(protocol %d) of %s returned %s", protocol,
           repr, fz_name(rc));
  rc = pc_pickle_loads(a.data, a.len, &w, &err);
  FZ_CHECK(rc == 0,
           "loads of our own protocol %d dump of %s returned %s at offset "
           "%zu: %s",
           protocol, repr, fz_name(rc), err.offset, err.message);
  rc = pc_value_identical(v, w);
  FZ_CHECK(rc == 1, "protocol %d round trip of %s is not identical (%s)",
           protocol, repr, fz_name(rc));
  char *repr2 = pc_value_repr(w);
  FZ_CHECK(repr2 != NULL && strcmp(repr, repr2) == 0,
           "protocol %d round trip changed repr %s into %s", protocol, repr,
           repr2 != NULL ? repr2 : "(null)");
  free(repr2);
  rc = pc_pickle_dumps(w, protocol, &b);
  FZ_CHECK(rc == 0 && a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
           "protocol %d: dumps of the decoded dump differs (%zu vs %zu "
           "bytes, %s) for %s",
           protocol, a.len, b.len, fz_name(rc), repr);
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
  char *repr = pc_value_repr(v);
  FZ_CHECK(repr != NULL, "pc_value_repr of a decoded value failed");
  /* Equality must terminate and agree with identity where no NaN is
   * involved; it is exercised here, not asserted (NaN != NaN). */
  (void)pc_value_equal(v, v);
  (void)pc_value_len(v);
  for (int protocol = 2; protocol <= PC_PICKLE_HIGHEST_PROTOCOL; protocol++)
    round_trip(v, repr, protocol);
  free(repr);
  pc_value_free(v);
  return 0;
}
