/* SPDX-License-Identifier: MIT */
/* A real python3 peer: multiprocessing.connection.Connection on an
 * inherited descriptor sends objects with conn.send (and pickle protocols
 * 0-5); the C side receives each as a pc_value, sends it back, and Python
 * checks it is the same object. Then values built in C travel to Python,
 * which checks their repr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers.h"

#define PEER PC_TEST_SOURCE_DIR "/python/pickle_peer.py"

/* Starts python3 pickle_peer.py with `fd` inherited as descriptor 3. */
static pid_t start_peer(int fd, const char *mode) {
  const char *py = pc_test_python();
  char *argv[] = {(char *)(uintptr_t)py, (char *)(uintptr_t)PEER,
                  (char *)(uintptr_t) "3", (char *)(uintptr_t)mode, NULL};
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* dup2 clears close-on-exec on the new descriptor. */
    if (dup2(fd, 3) < 0)
      _exit(120);
    execv(py, argv);
    _exit(121);
  }
  return pid;
}

/* Objects over the connection with its serializer (pickle by default). */
static int send_value(pc_conn *c, const pc_value *v) { return pc_send(c, v); }

static int recv_value(pc_conn *c, pc_value **v) {
  void *obj = NULL;
  int rc = pc_recv(c, &obj);
  if (rc == 0)
    *v = obj;
  return rc;
}

static void echo_with_protocol(int protocol) {
  pc_conn *mine, *theirs;
  pc_pickle_options opt = {protocol};
  int count = 0, refused = 0;
  if (pc_test_python() == NULL) {
    print_message("python3 not found: Python peer test skipped\n");
    skip();
  }
  assert_rc(0, pc_pipe(&mine, &theirs, 0));
  /* The pickle codec with an explicit protocol (the default is 4). */
  assert_rc(0, pc_conn_set_serializer(mine, pc_pickle_serializer(), &opt));
  pid_t pid = start_peer(pc_fileno(theirs), "echo");
  pc_close(theirs);
  for (;;) {
    pc_value *v = NULL;
    int rc = recv_value(mine, &v);
    if (rc == PC_EOF)
      break;
    if (rc == PC_EUNSAFE || rc == PC_EPROTO) {
      /* The message was consumed; say so and carry on. */
      char text[64];
      snprintf(text, sizeof text, "refused %s", pc_errname(rc));
      pc_value *answer = pc_value_str(text);
      assert_rc(0, send_value(mine, answer));
      pc_value_free(answer);
      refused++;
      continue;
    }
    assert_rc(0, rc);
    assert_rc(0, send_value(mine, v));
    pc_value_free(v);
    count++;
  }
  pc_close(mine);
  pc_test_wait_ok(pid, 120);
  assert_int_equal(refused, 2);
  assert_true(count > 400);
}

static void test_python_objects_echo_through_c_protocol_4(void **state) {
  (void)state;
  echo_with_protocol(4);
}

static void test_python_objects_echo_through_c_protocol_2(void **state) {
  (void)state;
  echo_with_protocol(2);
}

static void test_python_objects_echo_through_c_protocol_5(void **state) {
  (void)state;
  echo_with_protocol(5);
}

/* ---------------------------------------------------------------- C values */

static pc_value *str(const char *s) {
  pc_value *v = pc_value_str(s);
  assert_non_null(v);
  return v;
}

static pc_value *make_int_set(int n, bool frozen) {
  pc_value *s = frozen ? pc_value_frozenset() : pc_value_set();
  for (int i = 1; i <= n; i++)
    assert_rc(0, pc_value_set_add_steal(s, pc_value_int(i)));
  return s;
}

static pc_value *make_nested(void) {
  pc_value *d = pc_value_dict();
  pc_value *l = pc_value_list();
  assert_rc(0, pc_value_list_append_steal(l, pc_value_int(1)));
  pc_value *two = pc_value_int(2), *three = pc_value_int(3);
  assert_rc(0,
            pc_value_list_append_steal(l, pc_value_tuple_pack(2, two, three)));
  assert_rc(0, pc_value_dict_set_str_steal(d, "list", l));
  assert_rc(0, pc_value_dict_set_str_steal(d, "none", pc_value_none()));
  pc_value *k = str("k");
  pc_value *key = pc_value_tuple_pack(2, pc_value_int(1), k);
  pc_value_free(k);
  assert_rc(0, pc_value_dict_set_steal(d, key, pc_value_bytes("v", 1)));
  return d;
}

static pc_value *make_merged_keys(void) {
  pc_value *d = pc_value_dict();
  assert_rc(0, pc_value_dict_set_steal(d, pc_value_int(1), str("a")));
  assert_rc(0, pc_value_dict_set_steal(d, pc_value_bool(true), str("b")));
  return d;
}

static pc_value *make_seed_list(void) {
  pc_value *l = pc_value_list();
  assert_rc(0, pc_value_list_append_steal(l, str("spam")));
  assert_rc(0, pc_value_list_append_steal(l, pc_value_int(42)));
  assert_rc(0, pc_value_list_append_steal(l, str("eggs")));
  return l;
}

static pc_value *make_seed_dict(void) {
  pc_value *d = pc_value_dict();
  assert_rc(0, pc_value_dict_set_str_steal(d, "name", str("bob")));
  assert_rc(0, pc_value_dict_set_str_steal(d, "spam", pc_value_int(42)));
  return d;
}

static pc_value *make_big(void) {
  unsigned char le[13] = {0};
  le[12] = 0x10; /* 2**100 */
  return pc_value_int_from_bytes(le, sizeof le, true);
}

static pc_value *make_nan(void) {
  uint64_t bits = UINT64_C(0x7ff8000000000123);
  double d;
  memcpy(&d, &bits, sizeof d);
  return pc_value_float(d);
}

static void test_c_values_have_python_repr(void **state) {
  (void)state;
  pc_conn *mine, *theirs;
  if (pc_test_python() == NULL) {
    print_message("python3 not found: Python peer test skipped\n");
    skip();
  }
  const struct {
    pc_value *v;
    const char *repr;
  } cases[] = {
      {pc_value_none(), "None"},
      {pc_value_bool(true), "True"},
      {pc_value_int(42), "42"},
      {pc_value_int(INT64_MIN), "-9223372036854775808"},
      {pc_value_uint(UINT64_MAX), "18446744073709551615"},
      {make_big(), "1267650600228229401496703205376"},
      {pc_value_int_parse("-123456789012345678901234567890", 31),
       "-123456789012345678901234567890"},
      {pc_value_float(0.1), "0.1"},
      {pc_value_float(-0.0), "-0.0"},
      {pc_value_float(1e16), "1e+16"},
      {pc_value_float(1e-5), "1e-05"},
      {make_nan(), "nan"},
      {str("Hello \xe5\xa6\xb9\xe5\xa6\xb9"),
       "'Hello \xe5\xa6\xb9\xe5\xa6\xb9'"},
      {pc_value_strn("a\0\xf0\x9f\x98\x80", 6), "'a\\x00\xf0\x9f\x98\x80'"},
      {str("it's"), "\"it's\""},
      {str("\xed\xa0\x80"), "'\\ud800'"},
      {str("tab\tnl\n\xc2\xa0"), "'tab\\tnl\\n\\xa0'"},
      {pc_value_bytes("\x00\xff'", 3), "b\"\\x00\\xff'\""},
      {make_seed_list(), "['spam', 42, 'eggs']"},
      {pc_value_tuple_pack(1, pc_value_int(1)), "(1,)"},
      {pc_value_tuple(0, NULL), "()"},
      {make_seed_dict(), "{'name': 'bob', 'spam': 42}"},
      {make_int_set(3, false), "{1, 2, 3}"},
      {make_int_set(2, true), "frozenset({1, 2})"},
      {pc_value_set(), "set()"},
      {pc_value_frozenset(), "frozenset()"},
      {make_nested(), "{'list': [1, (2, 3)], 'none': None, (1, 'k'): b'v'}"},
      {make_merged_keys(), "{1: 'b'}"},
  };
  size_t n = sizeof cases / sizeof cases[0];
  assert_rc(0, pc_pipe(&mine, &theirs, 0));
  pid_t pid = start_peer(pc_fileno(theirs), "c_values");
  pc_close(theirs);
  for (size_t i = 0; i < n; i++) {
    assert_non_null(cases[i].v);
    /* Our repr agrees with the text Python must produce... */
    char *r = pc_value_repr(cases[i].v);
    assert_string_equal(r, cases[i].repr);
    free(r);
    /* ...and so does Python's, on what it decodes. */
    assert_rc(0, send_value(mine, cases[i].v));
    assert_rc(0, pc_send_bytes(mine, cases[i].repr, strlen(cases[i].repr)));
    /* Python pickles it back: the C side reads Python's own encoding of
     * the value and gets the same value (NaN payload included). */
    pc_value *back = NULL;
    assert_rc(0, recv_value(mine, &back));
    if (pc_value_identical(cases[i].v, back) != 1)
      fail_msg("value %zu (%s) came back different", i, cases[i].repr);
    pc_value_free(back);
    pc_value_free(cases[i].v);
  }
  pc_close(mine);
  pc_test_wait_ok(pid, 60);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_python_objects_echo_through_c_protocol_4),
      cmocka_unit_test(test_python_objects_echo_through_c_protocol_2),
      cmocka_unit_test(test_python_objects_echo_through_c_protocol_5),
      cmocka_unit_test(test_c_values_have_python_repr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
