/* SPDX-License-Identifier: MIT */
/* pc_value: construction, access, containers, equality, repr, depth, and
 * reference counting across threads. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

/* Asserts repr(v) == expected and releases v. */
static void check_repr_free(pc_value *v, const char *expected) {
  assert_non_null(v);
  char *r = pc_value_repr(v);
  assert_non_null(r);
  assert_string_equal(r, expected);
  free(r);
  pc_value_free(v);
}

static pc_value *pint(const char *decimal) {
  pc_value *v = pc_value_int_parse(decimal, strlen(decimal));
  assert_non_null(v);
  return v;
}

static pc_value *fbits(uint64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return pc_value_float(d);
}

static void test_singletons_and_types(void **state) {
  (void)state;
  pc_value *n = pc_value_none(), *t = pc_value_bool(true),
           *f = pc_value_bool(false);
  bool b = false;
  assert_int_equal(pc_value_type(n), PC_TYPE_NONE);
  assert_int_equal(pc_value_type(t), PC_TYPE_BOOL);
  assert_ptr_equal(t, pc_value_bool(true));
  assert_rc(0, pc_value_get_bool(t, &b));
  assert_true(b);
  assert_rc(0, pc_value_get_bool(f, &b));
  assert_false(b);
  assert_rc(-EINVAL, pc_value_get_bool(n, &b));
  assert_rc(-EINVAL, pc_value_get_bool(NULL, &b));
  /* Singletons are immortal: extra releases do nothing. */
  pc_value_free(pc_value_ref(n));
  pc_value_free(n);
  pc_value_free(n);
  assert_int_equal(pc_value_type(pc_value_none()), PC_TYPE_NONE);
  pc_value_free(NULL);
  assert_null(pc_value_ref(NULL));

  static const char *const names[] = {"NoneType", "bool",  "int",      "float",
                                      "str",      "bytes", "list",     "tuple",
                                      "dict",     "set",   "frozenset"};
  for (int i = 0; i <= PC_TYPE_FROZENSET; i++)
    assert_string_equal(pc_type_name((pc_type)i), names[i]);
  assert_string_equal(pc_type_name((pc_type)99), "?");
  check_repr_free(pc_value_none(), "None");
  check_repr_free(pc_value_bool(true), "True");
  check_repr_free(pc_value_bool(false), "False");
}

static void test_int_small_and_large(void **state) {
  (void)state;
  static const int64_t cases[] = {0,
                                  1,
                                  -1,
                                  255,
                                  -256,
                                  INT64_C(4611686018427387903), /* 2^62-1 */
                                  INT64_C(-4611686018427387904),
                                  INT64_C(4611686018427387904), /* 2^62 */
                                  INT64_C(-4611686018427387905),
                                  INT64_MAX,
                                  INT64_MIN};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pc_value *v = pc_value_int(cases[i]);
    int64_t got = 0;
    assert_non_null(v);
    assert_int_equal(pc_value_type(v), PC_TYPE_INT);
    assert_rc(0, pc_value_get_int(v, &got));
    assert_true(got == cases[i]);
    /* Through bytes and back: same value, shortest form. */
    unsigned char le[16];
    ssize_t n = pc_value_int_to_bytes(v, le, sizeof le);
    assert_true(n >= 1 && n <= 8);
    pc_value *w = pc_value_int_from_bytes(le, (size_t)n, true);
    assert_int_equal(pc_value_equal(v, w), 1);
    assert_int_equal(pc_value_identical(v, w), 1);
    pc_value_free(w);
    pc_value_free(v);
  }
  check_repr_free(pc_value_int(INT64_MIN), "-9223372036854775808");
  check_repr_free(pc_value_int(INT64_MAX), "9223372036854775807");
  check_repr_free(pc_value_uint(UINT64_MAX), "18446744073709551615");
  check_repr_free(pc_value_int(-42), "-42");

  /* 2**100 and -(2**100) through text, bytes and repr. */
  pc_value *big = pint("1267650600228229401496703205376");
  int64_t i64;
  assert_rc(-ERANGE, pc_value_get_int(big, &i64));
  unsigned char le[32];
  ssize_t n = pc_value_int_to_bytes(big, NULL, 0);
  assert_int_equal(n, 13); /* 101 bits + sign bit */
  assert_int_equal(pc_value_int_to_bytes(big, le, sizeof le), 13);
  assert_int_equal(le[12], 0x10);
  for (int k = 0; k < 12; k++)
    assert_int_equal(le[k], 0);
  check_repr_free(big, "1267650600228229401496703205376");
  check_repr_free(pint(" -1_267_650_600_228_229_401_496_703_205_376\n"),
                  "-1267650600228229401496703205376");
  /* -(2**63) is its own shortest 8-byte form; -(2**63)-1 needs 9. */
  pc_value *m = pint("-9223372036854775809");
  assert_int_equal(pc_value_int_to_bytes(m, NULL, 0), 9);
  pc_value_free(m);
  /* Unsigned bytes: 0xff is 255, signed it is -1. */
  unsigned char ff = 0xff;
  check_repr_free(pc_value_int_from_bytes(&ff, 1, false), "255");
  check_repr_free(pc_value_int_from_bytes(&ff, 1, true), "-1");
  check_repr_free(pc_value_int_from_bytes(NULL, 0, true), "0");
  /* Redundant sign bytes are dropped: canonical ints compare bytewise. */
  unsigned char padded[12] = {5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  pc_value *five = pc_value_int_from_bytes(padded, sizeof padded, true);
  assert_int_equal(pc_value_identical(five, pc_value_int(5)), 1);
  pc_value_free(five);

  /* A 1000-digit number survives text -> value -> text. */
  char digits[1001];
  for (int k = 0; k < 1000; k++)
    digits[k] = (char)('1' + k % 9);
  digits[1000] = '\0';
  check_repr_free(pint(digits), digits);

  /* Bad text. */
  static const char *const bad[] = {"",    "-",    "1__0", "_1", "1_",
                                    "12a", "0x10", "1.0",  "+ 1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    assert_null(pc_value_int_parse(bad[i], strlen(bad[i])));
    assert_int_equal(errno, EINVAL);
  }
  char *huge = malloc(4302);
  memset(huge, '7', 4301);
  assert_null(pc_value_int_parse(huge, 4301)); /* Python's digit limit */
  pc_value *v4300 = pc_value_int_parse(huge, 4300);
  huge[4300] = '\0';
  check_repr_free(v4300, huge);
  free(huge);
  /* bool is an int for get_int, as in Python. */
  assert_rc(0, pc_value_get_int(pc_value_bool(true), &i64));
  assert_true(i64 == 1);
  assert_rc(-EINVAL, pc_value_get_int(pc_value_none(), &i64));
}

static void test_float_bits_and_repr(void **state) {
  (void)state;
  static const uint64_t bits[] = {
      UINT64_C(0x7ff8000000000001), /* NaN with a payload */
      UINT64_C(0xfff8000000000000), /* negative NaN */
      UINT64_C(0x8000000000000000), /* -0.0 */
      UINT64_C(0x7ff0000000000000), UINT64_C(0x0000000000000001)};
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
    pc_value *v = fbits(bits[i]);
    double d;
    uint64_t got;
    assert_rc(0, pc_value_get_float(v, &d));
    memcpy(&got, &d, 8);
    assert_true(got == bits[i]);
    pc_value_free(v);
  }
  static const struct {
    double d;
    const char *repr;
  } cases[] = {{1.5, "1.5"},
               {0.1, "0.1"},
               {1e16, "1e+16"},
               {1e15, "1000000000000000.0"},
               {1e-5, "1e-05"},
               {0.0001, "0.0001"},
               {-0.0, "-0.0"},
               {0.0, "0.0"},
               {1.0 / 3, "0.3333333333333333"},
               {5e-324, "5e-324"},
               {1.7976931348623157e308, "1.7976931348623157e+308"},
               {9223372036854775808.0, "9.223372036854776e+18"},
               {123456789.125, "123456789.125"},
               {-2.5e-7, "-2.5e-07"}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_repr_free(pc_value_float(cases[i].d), cases[i].repr);
  check_repr_free(pc_value_float(INFINITY), "inf");
  check_repr_free(pc_value_float(-INFINITY), "-inf");
  check_repr_free(fbits(UINT64_C(0xfff8000000000000)), "nan");
  assert_rc(-EINVAL, pc_value_get_float(pc_value_int(1), &(double){0}));
}

static void test_str_and_bytes(void **state) {
  (void)state;
  /* Embedded NUL and a non-BMP character. */
  static const char text[] = "a\0b\xf0\x9f\x98\x80";
  pc_value *s = pc_value_strn(text, sizeof text - 1);
  size_t len = 0;
  assert_non_null(s);
  const char *data = pc_value_str_data(s, &len);
  assert_int_equal(len, sizeof text - 1);
  assert_memory_equal(data, text, len);
  assert_int_equal(data[len], '\0');
  assert_int_equal(pc_value_len(s), 4); /* code points */
  check_repr_free(s, "'a\\x00b\xf0\x9f\x98\x80'");

  check_repr_free(pc_value_str("Hello \xe5\xa6\xb9\xe5\xa6\xb9"),
                  "'Hello \xe5\xa6\xb9\xe5\xa6\xb9'");
  check_repr_free(pc_value_str("it's"), "\"it's\"");
  check_repr_free(pc_value_str("say \"hi\""), "'say \"hi\"'");
  check_repr_free(pc_value_str("both ' and \""), "'both \\' and \"'");
  check_repr_free(pc_value_str("\t\n\r\\\x7f\x1b"),
                  "'\\t\\n\\r\\\\\\x7f\\x1b'");
  /* Non-printable non-ASCII: NBSP, zero-width space, a tag character. */
  check_repr_free(pc_value_str("\xc2\xa0\xe2\x80\x8b\xf3\xa0\x80\x81"),
                  "'\\xa0\\u200b\\U000e0001'");
  /* A lone surrogate (as Python pickles it) is accepted and escaped. */
  check_repr_free(pc_value_str("\xed\xa0\x80"), "'\\ud800'");
  check_repr_free(pc_value_str(""), "''");

  static const char *const bad[] = {"\xff",         "\xc0\x80",
                                    "\xe0\x80\x80", "\xf4\x90\x80\x80",
                                    "\xe2\x82",     "\xf0\x9f\x98"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    assert_null(pc_value_str(bad[i]));
    assert_int_equal(errno, EINVAL);
  }
  assert_null(pc_value_str(NULL));
  assert_null(pc_value_str_data(pc_value_none(), NULL));

  pc_value *b = pc_value_bytes("\x00\xff'x", 4);
  const unsigned char *bd = pc_value_bytes_data(b, &len);
  assert_int_equal(len, 4);
  assert_int_equal(bd[1], 0xff);
  assert_int_equal(bd[4], 0);
  assert_int_equal(pc_value_len(b), 4);
  assert_null(pc_value_str_data(b, NULL));
  check_repr_free(b, "b\"\\x00\\xff'x\"");
  check_repr_free(pc_value_bytes(NULL, 0), "b''");
  check_repr_free(pc_value_bytes("a'\"\\\t", 5), "b'a\\'\"\\\\\\t'");
}

static void test_list_and_tuple(void **state) {
  (void)state;
  pc_value *l = pc_value_list();
  pc_value *s = pc_value_str("spam");
  assert_rc(0, pc_value_list_append(l, s));
  pc_value_free(s); /* the list kept its own reference */
  assert_rc(0, pc_value_list_append_steal(l, pc_value_int(42)));
  assert_rc(0, pc_value_list_append_steal(l, pc_value_str("eggs")));
  assert_int_equal(pc_value_len(l), 3);
  assert_string_equal(pc_value_str_data(pc_value_item(l, 0), NULL), "spam");
  assert_null(pc_value_item(l, 3));
  assert_rc(-EINVAL, pc_value_list_append(l, l));
  assert_rc(-EINVAL, pc_value_list_append(l, NULL));
  assert_rc(-EINVAL,
            pc_value_list_append_steal(pc_value_none(), pc_value_int(1)));
  assert_rc(-ERANGE, pc_value_list_set_steal(l, 3, pc_value_int(0)));
  assert_rc(0, pc_value_list_set_steal(l, 1, pc_value_float(4.5)));
  char *r = pc_value_repr(l);
  assert_string_equal(r, "['spam', 4.5, 'eggs']");
  free(r);

  pc_value *t1 = pc_value_tuple_pack(1, l);
  pc_value *t0 = pc_value_tuple(0, NULL);
  pc_value *t3 = pc_value_tuple_pack(3, pc_value_int(1), t0, pc_value_none());
  check_repr_free(t1, "(['spam', 4.5, 'eggs'],)");
  check_repr_free(t0, "()");
  check_repr_free(t3, "(1, (), None)");
  pc_value *items[2] = {pc_value_int(1), NULL};
  assert_null(pc_value_tuple(2, items));
  assert_int_equal(errno, EINVAL);
  pc_value_free(l);
}

static void test_dict_keys_follow_python_equality(void **state) {
  (void)state;
  pc_value *d = pc_value_dict();
  assert_rc(0, pc_value_dict_set_str_steal(d, "name", pc_value_str("bob")));
  assert_rc(0, pc_value_dict_set_str_steal(d, "spam", pc_value_int(42)));
  check_repr_free(pc_value_ref(d), "{'name': 'bob', 'spam': 42}");
  assert_string_equal(pc_value_str_data(pc_value_dict_get_str(d, "name"), NULL),
                      "bob");
  assert_null(pc_value_dict_get_str(d, "nope"));

  /* 1, 1.0 and True are one key; the first key object stays. */
  assert_rc(0, pc_value_dict_set_steal(d, pc_value_int(1), pc_value_str("a")));
  assert_rc(0,
            pc_value_dict_set_steal(d, pc_value_float(1.0), pc_value_str("b")));
  assert_rc(0,
            pc_value_dict_set_steal(d, pc_value_bool(true), pc_value_str("c")));
  assert_int_equal(pc_value_len(d), 3);
  check_repr_free(pc_value_ref(d), "{'name': 'bob', 'spam': 42, 1: 'c'}");
  pc_value *k = pc_value_float(1.0);
  assert_string_equal(pc_value_str_data(pc_value_dict_get(d, k), NULL), "c");
  pc_value_free(k);

  /* Tuples are keys; lists are not. */
  pc_value *x = pc_value_str("x");
  pc_value *tk = pc_value_tuple_pack(2, pc_value_int(1), x);
  pc_value_free(x);
  assert_rc(0, pc_value_dict_set_steal(d, tk, pc_value_none()));
  pc_value *lk = pc_value_list();
  assert_rc(-EINVAL, pc_value_dict_set(d, lk, pc_value_none()));
  pc_value *bad_tuple = pc_value_tuple_pack(1, lk);
  assert_rc(-EINVAL, pc_value_dict_set(d, bad_tuple, pc_value_none()));
  assert_int_equal(pc_value_contains(d, lk), -EINVAL);
  pc_value_free(bad_tuple);
  pc_value_free(lk);

  /* Delete keeps the order of the rest. */
  pc_value *name = pc_value_str("name");
  assert_rc(0, pc_value_dict_del(d, name));
  assert_rc(-ENOENT, pc_value_dict_del(d, name));
  pc_value_free(name);
  check_repr_free(pc_value_ref(d), "{'spam': 42, 1: 'c', (1, 'x'): None}");
  pc_value *key, *val;
  assert_rc(0, pc_value_dict_item(d, 1, &key, &val));
  assert_string_equal(pc_value_str_data(val, NULL), "c");
  assert_rc(-ERANGE, pc_value_dict_item(d, 3, &key, &val));
  assert_rc(-EINVAL, pc_value_dict_item(pc_value_none(), 0, &key, &val));
  pc_value_free(d);

  /* Big ints and floats as keys: 2**70 == 2.0**70. */
  d = pc_value_dict();
  pc_value *big = pint("1180591620717411303424");
  assert_rc(0, pc_value_dict_set_steal(d, big, pc_value_str("big")));
  pc_value *fk = pc_value_float(1180591620717411303424.0);
  assert_non_null(pc_value_dict_get(d, fk));
  pc_value_free(fk);
  pc_value_free(d);
}

static void test_large_dict_and_set_use_the_index(void **state) {
  (void)state;
  pc_value *d = pc_value_dict(), *s = pc_value_set();
  for (int i = 0; i < 5000; i++) {
    assert_rc(0,
              pc_value_dict_set_steal(d, pc_value_int(i), pc_value_int(i * 2)));
    assert_rc(0, pc_value_set_add_steal(s, pc_value_int(4999 - i)));
  }
  assert_int_equal(pc_value_len(d), 5000);
  assert_int_equal(pc_value_len(s), 5000);
  for (int i = 0; i < 5000; i += 7) {
    pc_value *k = pc_value_int(i);
    int64_t got;
    assert_rc(0, pc_value_get_int(pc_value_dict_get(d, k), &got));
    assert_true(got == i * 2);
    assert_int_equal(pc_value_contains(s, k), 1);
    pc_value_free(k);
  }
  /* Arrival order is kept. */
  int64_t first;
  assert_rc(0, pc_value_get_int(pc_value_item(s, 0), &first));
  assert_true(first == 4999);
  /* Deleting from an indexed dict keeps lookups right. */
  for (int i = 0; i < 5000; i += 2) {
    pc_value *k = pc_value_int(i);
    assert_rc(0, pc_value_dict_del(d, k));
    pc_value_free(k);
  }
  assert_int_equal(pc_value_len(d), 2500);
  pc_value *k3 = pc_value_int(3), *k4 = pc_value_int(4);
  assert_non_null(pc_value_dict_get(d, k3));
  assert_null(pc_value_dict_get(d, k4));
  pc_value_free(k3);
  pc_value_free(k4);
  pc_value_free(d);
  pc_value_free(s);
}

static void test_sets_keep_arrival_order(void **state) {
  (void)state;
  pc_value *s = pc_value_set();
  static const char *const words[] = {"ss", "pp", "aa", "mm", "pp"};
  for (size_t i = 0; i < 5; i++)
    assert_rc(0, pc_value_set_add_steal(s, pc_value_str(words[i])));
  assert_int_equal(pc_value_len(s), 4);
  check_repr_free(pc_value_ref(s), "{'ss', 'pp', 'aa', 'mm'}");
  check_repr_free(pc_value_set(), "set()");
  check_repr_free(pc_value_frozenset(), "frozenset()");
  pc_value *f = pc_value_frozenset();
  assert_rc(0, pc_value_set_add_steal(f, pc_value_int(2)));
  assert_rc(0, pc_value_set_add_steal(f, pc_value_int(1)));
  /* A frozenset is hashable: it can be a set element. */
  pc_value *outer = pc_value_set();
  assert_rc(0, pc_value_set_add(outer, f));
  assert_rc(-EINVAL, pc_value_set_add(outer, s)); /* a set is not */
  check_repr_free(outer, "{frozenset({2, 1})}");
  /* set == frozenset with the same elements, in any order. */
  pc_value *g = pc_value_set();
  assert_rc(0, pc_value_set_add_steal(g, pc_value_float(1.0)));
  assert_rc(0, pc_value_set_add_steal(g, pc_value_int(2)));
  assert_int_equal(pc_value_equal(f, g), 1);
  assert_int_equal(pc_value_identical(f, g), 0);
  check_repr_free(f, "frozenset({2, 1})");
  pc_value_free(g);
  pc_value_free(s);
}

static void test_equal_is_python_equality(void **state) {
  (void)state;
  pc_value *one = pc_value_int(1), *onef = pc_value_float(1.0),
           *t = pc_value_bool(true), *half = pc_value_float(0.5);
  assert_int_equal(pc_value_equal(one, onef), 1);
  assert_int_equal(pc_value_equal(one, t), 1);
  assert_int_equal(pc_value_equal(onef, t), 1);
  assert_int_equal(pc_value_equal(one, half), 0);
  assert_int_equal(pc_value_identical(one, t), 0);
  assert_int_equal(pc_value_identical(one, onef), 0);

  /* NaN: unequal to itself directly, equal by identity inside containers. */
  pc_value *nan = pc_value_float(NAN);
  assert_int_equal(pc_value_equal(nan, nan), 0);
  pc_value *l1 = pc_value_list(), *l2 = pc_value_list();
  pc_value_list_append(l1, nan);
  pc_value_list_append(l2, nan);
  assert_int_equal(pc_value_equal(l1, l2), 1);
  pc_value *nan2 = pc_value_float(NAN);
  pc_value_list_set(l2, 0, nan2);
  assert_int_equal(pc_value_equal(l1, l2), 0);
  assert_int_equal(pc_value_identical(l1, l2), 1); /* same bits */
  pc_value_free(nan2);

  /* list != tuple; str != bytes; dict order does not matter. */
  pc_value *tup = pc_value_tuple_pack(1, nan);
  assert_int_equal(pc_value_equal(l1, tup), 0);
  pc_value *s = pc_value_str("a"), *b = pc_value_bytes("a", 1);
  assert_int_equal(pc_value_equal(s, b), 0);
  pc_value *d1 = pc_value_dict(), *d2 = pc_value_dict();
  pc_value_dict_set_str_steal(d1, "x", pc_value_int(1));
  pc_value_dict_set_str_steal(d1, "y", pc_value_int(2));
  pc_value_dict_set_str_steal(d2, "y", pc_value_float(2.0));
  pc_value_dict_set_str_steal(d2, "x", pc_value_int(1));
  assert_int_equal(pc_value_equal(d1, d2), 1);
  assert_int_equal(pc_value_identical(d1, d2), 0);
  pc_value_dict_set_str_steal(d2, "x", pc_value_int(3));
  assert_int_equal(pc_value_equal(d1, d2), 0);
  assert_int_equal(pc_value_equal(NULL, NULL), 1);
  assert_int_equal(pc_value_equal(one, NULL), 0);

  pc_value *vals[] = {one, onef, half, nan, l1, l2, tup, s, b, d1, d2};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
    pc_value_free(vals[i]);
}

/* Builds `depth` nested lists around an int. */
static pc_value *nest(int depth) {
  pc_value *v = pc_value_int(7);
  for (int i = 0; i < depth; i++) {
    pc_value *l = pc_value_list();
    assert_rc(0, pc_value_list_append_steal(l, v));
    v = l;
  }
  return v;
}

static void test_depth_limits(void **state) {
  (void)state;
  /* 200 deep: everything works. */
  pc_value *a = nest(200), *b = nest(200);
  assert_int_equal(pc_value_equal(a, b), 1);
  assert_int_equal(pc_value_identical(a, b), 1);
  char *r = pc_value_repr(a);
  assert_non_null(r);
  assert_int_equal(strlen(r), 401);
  free(r);
  pc_value_free(a);
  pc_value_free(b);

  /* Exactly the limit works; one more is refused, not a crash. */
  a = nest(PC_VALUE_MAX_DEPTH);
  b = nest(PC_VALUE_MAX_DEPTH);
  r = pc_value_repr(a);
  assert_non_null(r);
  free(r);
  assert_int_equal(pc_value_equal(a, b), 1);
  pc_value_free(b);
  pc_value *deeper = pc_value_list();
  pc_value_list_append_steal(deeper, a);
  assert_null(pc_value_repr(deeper));
  pc_buffer buf = PC_BUFFER_INIT;
  assert_rc(PC_ELIMIT, pc_value_repr_append(deeper, &buf));
  assert_int_equal(buf.len, 0);
  b = pc_value_list();
  pc_value_list_append_steal(b, nest(PC_VALUE_MAX_DEPTH));
  assert_rc(PC_ELIMIT, pc_value_equal(deeper, b));
  assert_rc(PC_ELIMIT, pc_value_identical(deeper, b));
  pc_value_free(b);
  pc_value_free(deeper);
  pc_buffer_release(&buf);

  /* Release never recurses: a million levels of lists, dicts and tuples. */
  pc_value *v = pc_value_int(1);
  for (int i = 0; i < 1000000; i++) {
    pc_value *c;
    if (i % 3 == 0) {
      c = pc_value_list();
      pc_value_list_append_steal(c, v);
    } else if (i % 3 == 1) {
      c = pc_value_dict();
      pc_value_dict_set_str_steal(c, "k", v);
    } else {
      c = pc_value_tuple_pack(1, v);
      pc_value_free(v);
    }
    v = c;
  }
  pc_value_free(v);
}

static void *ref_churn(void *arg) {
  pc_value *v = arg;
  for (int i = 0; i < 200000; i++)
    pc_value_free(pc_value_ref(v));
  return NULL;
}

static void test_refcount_is_thread_safe(void **state) {
  (void)state;
  pc_value *v = pc_value_list();
  pc_value_list_append_steal(v, pc_value_str("shared"));
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&th[i], NULL, ref_churn, v), 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  /* Still exactly one reference: the value is intact and frees cleanly
   * (the sanitizer build would flag a premature free or a leak). */
  check_repr_free(v, "['shared']");
}

static void test_len_and_item_on_every_type(void **state) {
  (void)state;
  pc_value *f = pc_value_float(1.0);
  assert_int_equal(pc_value_len(pc_value_none()), 0);
  assert_int_equal(pc_value_len(f), 0);
  assert_int_equal(pc_value_len(NULL), 0);
  assert_null(pc_value_item(f, 0));
  assert_null(pc_value_item(pc_value_int(3), 0));
  pc_value *d = pc_value_dict();
  pc_value_dict_set_str_steal(d, "k", pc_value_int(1));
  assert_string_equal(pc_value_str_data(pc_value_item(d, 0), NULL), "k");
  assert_int_equal(pc_value_contains(d, pc_value_item(d, 0)), 1);
  assert_int_equal(pc_value_contains(f, f), -EINVAL);
  pc_value_free(d);
  pc_value_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_singletons_and_types),
      cmocka_unit_test(test_int_small_and_large),
      cmocka_unit_test(test_float_bits_and_repr),
      cmocka_unit_test(test_str_and_bytes),
      cmocka_unit_test(test_list_and_tuple),
      cmocka_unit_test(test_dict_keys_follow_python_equality),
      cmocka_unit_test(test_large_dict_and_set_use_the_index),
      cmocka_unit_test(test_sets_keep_arrival_order),
      cmocka_unit_test(test_equal_is_python_equality),
      cmocka_unit_test(test_depth_limits),
      cmocka_unit_test(test_refcount_is_thread_safe),
      cmocka_unit_test(test_len_and_item_on_every_type),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
