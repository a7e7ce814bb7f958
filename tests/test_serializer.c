/* SPDX-License-Identifier: MIT */
/* The serializer layer: pc_send / pc_recv with the default pickle codec
 * and with a user codec. */
#include "helpers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A user codec for one int32, which refuses negative numbers. */
static int i32_encode(void *ctx, const void *obj, pc_buffer *out) {
  int *calls = ctx;
  int32_t v = *(const int32_t *)obj;
  (*calls)++;
  if (v < 0)
    return PC_EENCODE;
  /* Write something first: a failing encoder's bytes must not leak out. */
  int rc = pc_buffer_append(out, "partial", 7);
  if (rc == 0) {
    out->len -= 7;
    rc = pc_buffer_append(out, &v, sizeof v);
  }
  return rc;
}

static int i32_decode(void *ctx, const void *data, size_t len, void **obj) {
  (void)ctx;
  if (len != sizeof(int32_t))
    return PC_EPROTO;
  int32_t *p = malloc(sizeof *p);
  if (p == NULL)
    return -ENOMEM;
  memcpy(p, data, sizeof *p);
  *obj = p;
  return 0;
}

static void i32_release(void *ctx, void *obj) {
  (void)ctx;
  free(obj);
}

static const pc_serializer i32_codec = {"int32", i32_encode, i32_decode,
                                        i32_release};

static void test_default_serializer_is_pickle_over_values(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pc_value *list = pc_value_list();
  pc_value_list_append_steal(list, pc_value_str("spam"));
  pc_value_list_append_steal(list, pc_value_int(42));
  pc_value_list_append_steal(list, pc_value_str("eggs"));
  assert_rc(0, pc_send(a, list));
  /* On the wire: one frame holding a protocol-4 pickle, as Python sends. */
  void *raw;
  size_t n;
  assert_rc(0, pc_recv_bytes(b, &raw, &n, PC_NOLIMIT));
  assert_true(n > 2);
  assert_memory_equal(raw, "\x80\x04", 2);
  assert_rc(0, pc_send_bytes(a, raw, n));
  free(raw);
  void *got = NULL;
  assert_rc(0, pc_recv(b, &got));
  assert_int_equal(pc_value_equal(got, list), 1);
  char *repr = pc_value_repr(got);
  assert_string_equal(repr, "['spam', 42, 'eggs']");
  free(repr);
  pc_value_free(got);
  pc_value_free(list);
  pc_close(a);
  pc_close(b);
}

static void test_decode_failure_consumes_exactly_one_message(void **state) {
  (void)state;
  pc_conn *a, *b;
  assert_rc(0, pc_pipe(&a, &b, 0));
  pc_value *v = pc_value_int(7);
  assert_rc(0, pc_send_bytes(a, "not a pickle", 12));
  /* A pickle that would import and call: refused, never run. */
  /* pickle.dumps(os.system, protocol=4), made by CPython 3.11. */
  static const char evil[] = "\x80\x04\x95\x14\x00\x00\x00\x00\x00\x00\x00"
                             "\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.";
  assert_rc(0, pc_send_bytes(a, evil, sizeof evil - 1));
  assert_rc(0, pc_send(a, v));
  void *got = NULL;
  int rc = pc_recv(b, &got);
  assert_true(rc == PC_EPROTO);
  assert_null(got);
  assert_rc(PC_EUNSAFE, pc_recv(b, &got));
  assert_null(got);
  assert_rc(0, pc_recv(b, &got));
  assert_int_equal(pc_value_equal(got, v), 1);
  pc_value_free(got);
  pc_value_free(v);
  pc_close(a);
  pc_close(b);
}

static void test_user_serializer_round_trips(void **state) {
  (void)state;
  pc_conn *a, *b;
  int calls = 0;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_conn_set_serializer(a, &i32_codec, &calls));
  assert_rc(0, pc_conn_set_serializer(b, &i32_codec, &calls));
  int32_t x = 123456;
  assert_rc(0, pc_send(a, &x));
  void *got;
  assert_rc(0, pc_recv(b, &got));
  assert_int_equal(*(int32_t *)got, 123456);
  i32_release(NULL, got);
  assert_int_equal(calls, 1);
  pc_close(a);
  pc_close(b);
}

static void test_encode_failure_writes_nothing(void **state) {
  (void)state;
  pc_conn *a, *b;
  int calls = 0;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_conn_set_serializer(a, &i32_codec, &calls));
  int32_t bad = -1;
  assert_rc(PC_EENCODE, pc_send(a, &bad));
  assert_int_equal(pc_poll(b, 0), 0); /* not even a header went out */
  int32_t good = 5;
  assert_rc(0, pc_send(a, &good));
  void *raw;
  size_t n;
  assert_rc(0, pc_recv_bytes(b, &raw, &n, PC_NOLIMIT));
  assert_int_equal(n, 4);
  free(raw);
  pc_close(a);
  pc_close(b);
}

static void test_user_decoder_error_keeps_connection_usable(void **state) {
  (void)state;
  pc_conn *a, *b;
  int calls = 0;
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(0, pc_conn_set_serializer(b, &i32_codec, &calls));
  assert_rc(0, pc_send_bytes(a, "abc", 3));
  assert_rc(0, pc_send_bytes(a, "wxyz", 4));
  void *got = NULL;
  assert_rc(PC_EPROTO, pc_recv(b, &got));
  assert_rc(0, pc_recv(b, &got));
  assert_memory_equal(got, "wxyz", 4);
  free(got);
  pc_close(a);
  pc_close(b);
}

static void
test_set_serializer_validates_and_null_restores_default(void **state) {
  (void)state;
  pc_conn *a, *b;
  int calls = 0;
  const pc_serializer half = {"half", i32_encode, NULL, i32_release};
  assert_rc(0, pc_pipe(&a, &b, 0));
  assert_rc(-EINVAL, pc_conn_set_serializer(a, &half, NULL));
  assert_rc(-EINVAL, pc_conn_set_serializer(NULL, &i32_codec, NULL));
  assert_rc(0, pc_conn_set_serializer(a, &i32_codec, &calls));
  assert_rc(0, pc_conn_set_serializer(a, NULL, NULL));
  pc_value *v = pc_value_str("back to pickle");
  assert_rc(0, pc_send(a, v));
  void *got;
  assert_rc(0, pc_recv(b, &got));
  assert_int_equal(pc_value_equal(got, v), 1);
  assert_int_equal(calls, 0);
  pc_value_free(got);
  pc_value_free(v);
  assert_rc(-EINVAL, pc_recv(b, NULL));
  assert_rc(-EINVAL, pc_send(NULL, v));
  pc_close(a);
  pc_close(b);
}

static void test_typed_send_and_recv_respect_directions_and_eof(void **state) {
  (void)state;
  pc_conn *r, *w;
  assert_rc(0, pc_pipe(&r, &w, PC_SIMPLEX));
  pc_value *v = pc_value_none();
  void *got;
  assert_rc(PC_EREADONLY, pc_send(r, v));
  assert_rc(PC_EWRITEONLY, pc_recv(w, &got));
  assert_rc(0, pc_send(w, v));
  pc_close(w);
  assert_rc(0, pc_recv(r, &got));
  assert_int_equal(pc_value_type(got), pc_value_type(v));
  pc_value_free(got);
  assert_rc(PC_EOF, pc_recv(r, &got));
  pc_value_free(v);
  pc_close(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_serializer_is_pickle_over_values),
      cmocka_unit_test(test_decode_failure_consumes_exactly_one_message),
      cmocka_unit_test(test_user_serializer_round_trips),
      cmocka_unit_test(test_encode_failure_writes_nothing),
      cmocka_unit_test(test_user_decoder_error_keeps_connection_usable),
      cmocka_unit_test(test_set_serializer_validates_and_null_restores_default),
      cmocka_unit_test(test_typed_send_and_recv_respect_directions_and_eof),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
