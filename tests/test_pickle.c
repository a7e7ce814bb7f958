/* SPDX-License-Identifier: MIT */
/* The pickle codec: CPython's golden vectors (decode, repr, byte-identical
 * re-encoding), hostile input, and seeded round-trip properties. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

#define VEC_DIR PC_TEST_SOURCE_DIR "/vectors/pickle/"

/* ---------------------------------------------------------------- failing malloc
 * For the allocation-failure sweep, this executable replaces malloc, calloc,
 * realloc and free (glibc supports that, and routes its own calls through
 * them): after `alloc_budget` successful allocations every further one
 * fails, and `alloc_live` counts blocks not yet freed, so a run that leaks
 * shows. The sanitizers replace malloc themselves, so there the sweep is
 * skipped. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PC_TEST_NO_MALLOC_HOOK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PC_TEST_NO_MALLOC_HOOK 1
#endif
#endif

#ifndef PC_TEST_NO_MALLOC_HOOK
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
static long alloc_budget = -1; /* -1: unlimited */
static long alloc_count, alloc_live;

static bool alloc_allowed(void) {
  bool ok = alloc_budget < 0 || alloc_count < alloc_budget;
  if (ok)
    alloc_count++;
  else
    errno = ENOMEM;
  return ok;
}

void *malloc(size_t n) {
  void *p = alloc_allowed() ? __libc_malloc(n) : NULL;
  alloc_live += p != NULL;
  return p;
}
void *calloc(size_t n, size_t size) {
  void *p = alloc_allowed() ? __libc_calloc(n, size) : NULL;
  alloc_live += p != NULL;
  return p;
}
void *realloc(void *p, size_t n) {
  void *q = alloc_allowed() ? __libc_realloc(p, n) : NULL;
  alloc_live += p == NULL && q != NULL;
  return q;
}
void free(void *p) {
  alloc_live -= p != NULL;
  __libc_free(p);
}
#endif

/* ---------------------------------------------------------------- helpers */

/* malloc for the test's own buffers: failing it is not what is tested. */
static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL)
    abort();
  return p;
}

/* Reads a whole vector file (NUL-terminated). */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;
  if (f == NULL)
    fail_msg("cannot open %s", path);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  buf = xmalloc((size_t)n + 1);
  assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  if (len != NULL)
    *len = (size_t)n;
  return buf;
}

/* Splits line (modified in place) into at most max tab-separated fields. */
static int split_tabs(char *line, char **fields, int max) {
  int n = 0;
  fields[n++] = line;
  for (char *p = line; *p != '\0' && n < max; p++) {
    if (*p == '\t') {
      *p = '\0';
      fields[n++] = p + 1;
    }
  }
  return n;
}

static unsigned char *unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex) / 2;
  unsigned char *out = xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    unsigned x;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &x), 1);
    out[i] = (unsigned char)x;
  }
  *len = n;
  return out;
}

static int errcode(const char *name) {
  int code = 0;
  if (strcmp(name, "PC_EUNSAFE") == 0)
    code = PC_EUNSAFE;
  else if (strcmp(name, "PC_EPROTO") == 0)
    code = PC_EPROTO;
  else if (strcmp(name, "PC_ELIMIT") == 0)
    code = PC_ELIMIT;
  else
    fail_msg("unknown error name %s", name);
  return code;
}

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * UINT64_C(0x100000001b3);
  return h;
}

/* Decodes a pickle given as bytes and asserts the code. */
static pc_value *loads_ok(const void *data, size_t len) {
  pc_value *v = NULL;
  pc_pickle_error err;
  int rc = pc_pickle_loads(data, len, &v, &err);
  if (rc != 0)
    fail_msg("pc_pickle_loads: %s (%s)", pc_errname(rc), err.message);
  return v;
}

static int loads_rc(const void *data, size_t len, pc_pickle_error *err) {
  pc_value *v = NULL;
  int rc = pc_pickle_loads(data, len, &v, err);
  if (rc == 0)
    pc_value_free(v);
  else
    assert_null(v);
  return rc;
}

#define LOADS_RC(lit, err) loads_rc(lit, sizeof(lit) - 1, err)

/* ---------------------------------------------------------------- golden */

static void test_golden_decode_repr_and_reencode(void **state) {
  (void)state;
  char *text = read_file(VEC_DIR "decode.txt", NULL);
  int count = 0, bad = 0, exact = 0;
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *f[5] = {NULL};
    assert_int_equal(split_tabs(line, f, 5), 5);
    int proto = atoi(f[1]);
    size_t len;
    unsigned char *data = unhex(f[2], &len);
    pc_value *v = NULL;
    pc_pickle_error err;
    int rc = pc_pickle_loads(data, len, &v, &err);
    count++;
    if (rc != 0) {
      print_message("%s/%d: decode failed: %s\n", f[0], proto, err.message);
      bad++;
      free(data);
      continue;
    }
    char *r = pc_value_repr(v);
    if (r == NULL || strcmp(r, f[4]) != 0) {
      print_message("%s/%d: repr mismatch\n  want %.200s\n  got  %.200s\n",
                    f[0], proto, f[4], r != NULL ? r : "(null)");
      bad++;
    }
    free(r);
    /* Re-encoding what Python sent gives Python's bytes. */
    if (proto >= 2 && atoi(f[3]) == 1) {
      pc_buffer b = PC_BUFFER_INIT;
      rc = pc_pickle_dumps(v, proto, &b);
      if (rc != 0 || b.len != len || memcmp(b.data, data, len) != 0) {
        print_message("%s/%d: re-encoding differs (rc %d, %zu vs %zu bytes)\n",
                      f[0], proto, rc, b.len, len);
        bad++;
      } else {
        exact++;
      }
      pc_buffer_release(&b);
    }
    /* And every protocol round-trips it. */
    for (int p = 2; p <= 5; p++) {
      pc_buffer b = PC_BUFFER_INIT;
      pc_value *w = NULL;
      if (pc_pickle_dumps(v, p, &b) != 0 ||
          pc_pickle_loads(b.data, b.len, &w, NULL) != 0 ||
          pc_value_identical(v, w) != 1) {
        print_message("%s/%d: round trip through protocol %d failed\n", f[0],
                      proto, p);
        bad++;
      }
      pc_value_free(w);
      pc_buffer_release(&b);
    }
    pc_value_free(v);
    free(data);
  }
  print_message("%d golden vectors, %d re-encoded byte-identical\n", count,
                exact);
  free(text);
  assert_true(count > 600);
  assert_int_equal(bad, 0);
}

/* The recipes of gen_pickle_vectors.py's big(); keep them in step. */
static pc_value *big_value(const char *name) {
  pc_value *l = pc_value_list();
  if (strcmp(name, "big_list") == 0) {
    for (int i = 0; i < 22000; i++)
      assert_rc(0, pc_value_list_append_steal(l, pc_value_int(i)));
  } else if (strcmp(name, "big_str") == 0) {
    char *a = xmalloc(70000);
    char *c = xmalloc(65536);
    memset(a, 'a', 70000);
    memset(c, 'c', 65536);
    pc_value *one = pc_value_list();
    assert_rc(0, pc_value_list_append_steal(one, pc_value_int(1)));
    assert_rc(0, pc_value_list_append_steal(l, pc_value_strn(a, 70000)));
    assert_rc(0, pc_value_list_append_steal(l, pc_value_str("b")));
    assert_rc(0, pc_value_list_append_steal(l, pc_value_bytes(c, 65536)));
    assert_rc(0, pc_value_list_append_steal(l, one));
    free(a);
    free(c);
  } else if (strcmp(name, "big_bytes") == 0) {
    unsigned char *b = xmalloc(65536);
    memset(b, 1, 65535);
    assert_rc(0, pc_value_list_append_steal(l, pc_value_bytes(b, 65535)));
    memset(b, 2, 65536);
    assert_rc(0, pc_value_list_append_steal(l, pc_value_bytes(b, 65536)));
    free(b);
  } else if (strcmp(name, "big_nested") == 0) {
    for (int i = 0; i < 6000; i++) {
      char num[16];
      pc_value *pair = pc_value_list();
      snprintf(num, sizeof num, "%d", i);
      assert_rc(0, pc_value_list_append_steal(pair, pc_value_int(i)));
      assert_rc(0, pc_value_list_append_steal(pair, pc_value_str(num)));
      assert_rc(0, pc_value_list_append_steal(l, pair));
    }
  } else {
    fail_msg("no recipe for %s", name);
  }
  return l;
}

static void test_golden_big_values_cross_frames(void **state) {
  (void)state;
  char *text = read_file(VEC_DIR "big.txt", NULL);
  int count = 0;
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *f[4] = {NULL};
    assert_int_equal(split_tabs(line, f, 4), 4);
    pc_value *v = big_value(f[0]);
    pc_buffer b = PC_BUFFER_INIT;
    assert_rc(0, pc_pickle_dumps(v, atoi(f[1]), &b));
    if (b.len != strtoull(f[2], NULL, 10) ||
        fnv1a64(b.data, b.len) != strtoull(f[3], NULL, 16))
      fail_msg("%s/%s: %zu bytes, hash %016llx; Python: %s bytes, %s", f[0],
               f[1], b.len, (unsigned long long)fnv1a64(b.data, b.len), f[2],
               f[3]);
    pc_value *w = loads_ok(b.data, b.len);
    assert_int_equal(pc_value_identical(v, w), 1);
    pc_value_free(w);
    pc_value_free(v);
    pc_buffer_release(&b);
    count++;
  }
  free(text);
  assert_int_equal(count, 16);
}

static void test_golden_rejects(void **state) {
  (void)state;
  char *text = read_file(VEC_DIR "reject.txt", NULL);
  int count = 0;
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *f[3] = {NULL};
    assert_int_equal(split_tabs(line, f, 3), 3);
    size_t len;
    unsigned char *data = unhex(f[1], &len);
    pc_pickle_error err;
    memset(&err, 0, sizeof err);
    int rc = loads_rc(data, len, &err);
    if (rc != errcode(f[2]))
      fail_msg("%s: got %s (%s), want %s", f[0], pc_errname(rc), err.message,
               f[2]);
    assert_int_equal(err.code, rc);
    assert_true(err.offset < len);
    assert_true(strlen(err.message) > 10);
    free(data);
    count++;
  }
  free(text);
  assert_true(count >= 50);
}

static void test_golden_float_repr(void **state) {
  (void)state;
  char *text = read_file(VEC_DIR "floats.txt", NULL);
  int count = 0;
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *f[2] = {NULL, NULL};
    assert_int_equal(split_tabs(line, f, 2), 2);
    uint64_t bits = strtoull(f[0], NULL, 16);
    double d;
    memcpy(&d, &bits, sizeof d);
    pc_value *v = pc_value_float(d);
    char *r = pc_value_repr(v);
    if (strcmp(r, f[1]) != 0)
      fail_msg("float %s: want %s got %s", f[0], f[1], r);
    free(r);
    pc_value_free(v);
    count++;
  }
  free(text);
  assert_int_equal(count, 5000);
}

/* ---------------------------------------------------------------- specific decoding */

static void test_shared_references_stay_shared(void **state) {
  (void)state;
  /* Python: l = [1]; pickle.dumps([l, l], 4) */
  static const unsigned char pk[] = {
      0x80, 0x04, 0x95, 0x0c, 0,   0,    0,   0,   0,    0,   0,  ']',
      0x94, '(',  ']',  0x94, 'K', 0x01, 'a', 'h', 0x01, 'e', '.'};
  pc_value *v = loads_ok(pk, sizeof pk);
  assert_int_equal(pc_value_len(v), 2);
  assert_ptr_equal(pc_value_item(v, 0), pc_value_item(v, 1));
  char *r = pc_value_repr(v);
  assert_string_equal(r, "[[1], [1]]");
  free(r);
  /* Re-encoding keeps the sharing (a BINGET), byte for byte. */
  pc_buffer b = PC_BUFFER_INIT;
  assert_rc(0, pc_pickle_dumps(v, 4, &b));
  assert_int_equal(b.len, sizeof pk);
  assert_memory_equal(b.data, pk, sizeof pk);
  pc_buffer_release(&b);
  pc_value_free(v);
}

static void test_decode_text_forms(void **state) {
  (void)state;
  static const struct {
    const char *pickle;
    size_t len;
    const char *repr;
  } cases[] = {
#define C(p, r) {p, sizeof(p) - 1, r}
      C("I01\n.", "True"),
      C("I00\n.", "False"),
      C("I-5\n.", "-5"),
      C("I007\n.", "7"),
      C("L1099511627776L\n.", "1099511627776"),
      C("L-123456789012345678901234567890L\n.",
        "-123456789012345678901234567890"),
      C("F1.5\n.", "1.5"),
      C("Fnan\n.", "nan"),
      C("F-inf\n.", "-inf"),
      C("F1e+16\n.", "1e+16"),
      C("Va\\u005cb\\u000a\\U0001f600\xe9\n.",
        "'a\\\\b\\n\xf0\x9f\x98\x80\xc3\xa9'"),
      C("V\\\\u0041\n.", "'\\\\\\\\u0041'"),
      C("V\\\\\\u0041\n.", "'\\\\\\\\A'"),
      C("S'it\\'s\\n'\n.", "\"it's\\n\""),
      C("S\"\\x41\\101\"\n.", "'AA'"),
      C("U\x03"
        "abc.",
        "'abc'"),
      C("T\x02\x00\x00\x00hi.", "'hi'"),
      C("(I1\nI2\nt.", "(1, 2)"),
      C("(S'a'\nI1\nd.", "{'a': 1}"),
      C("(lp0\nI1\nag0\na.", NULL), /* appends the list to itself */
      C("N0N.", "None"),
      C("(N1N.", "None"),
      C("N2\x86.", "(None, None)"),
      C("\x80\x02K\x01\x80\x05.", "1"), /* PROTO may appear anywhere */
#undef C
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pc_value *v = NULL;
    pc_pickle_error err;
    int rc = pc_pickle_loads(cases[i].pickle, cases[i].len, &v, &err);
    if (cases[i].repr == NULL) {
      assert_rc(PC_EPROTO, rc);
      continue;
    }
    if (rc != 0)
      fail_msg("case %zu: %s", i, err.message);
    char *r = pc_value_repr(v);
    if (strcmp(r, cases[i].repr) != 0)
      fail_msg("case %zu: want %s got %s", i, cases[i].repr, r);
    free(r);
    pc_value_free(v);
  }
}

/* ---------------------------------------------------------------- hostile input */

static void test_every_unsafe_opcode_is_refused(void **state) {
  (void)state;
  static const struct {
    const char *pickle;
    size_t len;
    const char *name;
  } cases[] = {
#define C(s, n) {s, sizeof(s) - 1, n}
      C("cos\nsystem\n.", "GLOBAL"),
      C("c__builtin__\neval\n.", "GLOBAL"),
      C("cbuiltins\nbytearray\n.", "GLOBAL"),
      C("\x80\x04\x8c\x02os\x8c\x06system\x93.", "STACK_GLOBAL"),
      C("N)R.", "REDUCE"),
      C("]N\x85R.", "REDUCE"),
      C("NNb.", "BUILD"),
      C("(ios\nsystem\n.", "INST"),
      C("(No.", "OBJ"),
      C("N)\x81.", "NEWOBJ"),
      C("N)}\x92.", "NEWOBJ_EX"),
      C("P1\n.", "PERSID"),
      C("NQ.", "BINPERSID"),
      C("\x82\x01.", "EXT1"),
      C("\x83\x01\x00.", "EXT2"),
      C("\x84\x01\x00\x00\x00.", "EXT4"),
      C("\x97.", "NEXT_BUFFER"),
      C("N\x98.", "READONLY_BUFFER"),
      /* Safe globals outside their exact forms. */
      C("c__builtin__\nset\nN\x85R.", "REDUCE"),
      C("c__builtin__\nset\nK\x01K\x02\x86R.", "REDUCE"),
      C("c__builtin__\nbytes\nK\x01\x85R.", "REDUCE"),
      C("c_codecs\nencode\nX\x01\x00\x00\x00"
        "aX\x05\x00\x00\x00utf_8\x86R.",
        "REDUCE"),
      C("c_codecs\nencode\nX\x01\x00\x00\x00"
        "a\x85R.",
        "REDUCE"),
      C("c__builtin__\nset\n.", "STOP"),
      C("](c__builtin__\nset\ne.", "APPENDS"),
      C("c__builtin__\nset\n\x85.", "TUPLE1"),
#undef C
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pc_pickle_error err;
    int rc = loads_rc(cases[i].pickle, cases[i].len, &err);
    if (rc != PC_EUNSAFE || strstr(err.message, cases[i].name) == NULL)
      fail_msg("case %zu (%s): %s: %s", i, cases[i].name, pc_errname(rc),
               err.message);
    assert_int_equal(err.code, PC_EUNSAFE);
  }
  /* The message names the module and function, and where. */
  pc_pickle_error err;
  assert_rc(PC_EUNSAFE, LOADS_RC("\x80\x02"
                                 "cos\nsystem\n.",
                                 &err));
  assert_int_equal(err.offset, 2);
  assert_int_equal(err.opcode, 'c');
  assert_non_null(strstr(err.message, "os.system"));
  assert_non_null(strstr(err.message, "offset 2"));
}

static void test_malformed_input_is_an_error(void **state) {
  (void)state;
  static const struct {
    const char *pickle;
    size_t len;
    int rc;
  } cases[] = {
#define C(s, r) {s, sizeof(s) - 1, r}
      C("", PC_EPROTO),           /* empty */
      C("N", PC_EPROTO),          /* no STOP */
      C(".", PC_EPROTO),          /* STOP on an empty stack */
      C("NN.", PC_EPROTO),        /* two values at STOP */
      C("(N.", PC_EPROTO),        /* a mark left at STOP */
      C("N.N", PC_EPROTO),        /* bytes after STOP */
      C("\xff.", PC_EPROTO),      /* unknown opcode */
      C("\x80\x06N.", PC_EPROTO), /* protocol 6 */
      C("0.", PC_EPROTO),         /* POP on empty */
      C("1.", PC_EPROTO),         /* POP_MARK without MARK */
      C("2.", PC_EPROTO),         /* DUP on empty */
      C("(2.", PC_EPROTO),        /* DUP reaching below MARK */
      C("a.", PC_EPROTO),         /* APPEND on empty */
      C("Na.", PC_EPROTO),        /* APPEND with no target */
      C("NKa.", PC_EPROTO),       /* truncated BININT1 */
      C("]NK\x01s.", PC_EPROTO),  /* SETITEM on a list */
      C("}N(K\x01"
        "e.",
        PC_EPROTO),                       /* APPENDS on None */
      C("}(K\x01u.", PC_EPROTO),          /* odd SETITEMS */
      C("}]K\x01s.", PC_EPROTO),          /* unhashable key */
      C("\x8f(]\x90.", PC_EPROTO),        /* unhashable set element */
      C("(]\x91.", PC_EPROTO),            /* unhashable frozenset element */
      C("(\x91(N\x90.", PC_EPROTO),       /* ADDITEMS on a frozenset */
      C("h\x00.", PC_EPROTO),             /* undefined memo entry */
      C("j\x05\x00\x00\x00.", PC_EPROTO), /* undefined memo entry */
      C("g1\n.", PC_EPROTO),              /* undefined memo entry */
      C("Np-1\n.", PC_EPROTO),            /* negative PUT */
      C("Np\n.", PC_EPROTO),              /* empty PUT */
      C("Nq.", PC_EPROTO),                /* truncated BINPUT */
      C("X\x02\x00\x00\x00\xff\xfe.", PC_EPROTO), /* invalid UTF-8 */
      C("X\x03\x00\x00\x00\xc0\x80"
        "a.",
        PC_EPROTO),                          /* overlong UTF-8 */
      C("U\x01\xe9.", PC_EPROTO),            /* non-ASCII Python 2 str */
      C("T\x00\x00\x00\x80.", PC_EPROTO),    /* negative BINSTRING */
      C("\x8b\xff\xff\xff\xff.", PC_EPROTO), /* negative LONG4 */
      C("S'abc\n.", PC_EPROTO),              /* unquoted STRING */
      C("Iabc\n.", PC_EPROTO),               /* bad INT */
      C("I12", PC_EPROTO),                   /* INT without newline */
      C("F1.5x\n.", PC_EPROTO),              /* bad FLOAT */
      C("F0x10\n.", PC_EPROTO),              /* hex FLOAT: float() refuses */
      C("V\\u00\n.", PC_EPROTO),             /* truncated \u escape */
      C("V\\U00110000\n.", PC_EPROTO),       /* escape beyond U+10FFFF */
      C("c_codecs\nencode\nX\x02\x00\x00\x00\xe2\x82X\x06\x00\x00\x00latin1"
        "\x86R.",
        PC_EPROTO), /* invalid UTF-8 inside */
      C("c_codecs\nencode\nX\x03\x00\x00\x00\xe2\x82\xacX\x06\x00\x00\x00"
        "latin1\x86R.",
        PC_EPROTO),                              /* U+20AC is not Latin-1 */
      C("c_codecs\nencode\nK\x02R.", PC_EPROTO), /* args not a tuple */
      C("cos\n", PC_EPROTO),                     /* GLOBAL truncated */
#undef C
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pc_pickle_error err;
    int rc = loads_rc(cases[i].pickle, cases[i].len, &err);
    if (rc != cases[i].rc)
      fail_msg("case %zu: %s (%s), want %s", i, pc_errname(rc), err.message,
               pc_errname(cases[i].rc));
  }
}

static void test_lying_lengths_allocate_nothing(void **state) {
  (void)state;
  /* Each announces far more than is there; the decoder must notice before
   * allocating (under ASan an attempt at 2^62 bytes would abort). */
  static const struct {
    const char *pickle;
    size_t len;
  } cases[] = {
#define C(s) {s, sizeof(s) - 1}
      C("\x8d\xff\xff\xff\xff\xff\xff\xff\x3f"
        "abc."), /* BINUNICODE8 */
      C("\x8e\x00\x00\x00\x00\x00\x00\x00\x40"
        "abc."), /* BINBYTES8 */
      C("\x96\xff\xff\xff\xff\xff\xff\xff\xff"
        "abc."), /* BYTEARRAY8 */
      C("X\xff\xff\xff\xff"
        "abc."), /* BINUNICODE */
      C("B\xff\xff\xff\x7f"
        "abc."), /* BINBYTES */
      C("C\xff"
        "abc."), /* SHORT_BINBYTES */
      C("\x8c\x10"
        "abc."), /* SHORT_BINUNICODE */
      C("\x8a\xff"
        "abc."), /* LONG1 */
      C("\x8b\xff\xff\xff\x7f"
        "abc."),                                           /* LONG4 */
      C("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7fN."), /* FRAME */
      C("T\xff\xff\xff\x7f"
        "abc."), /* BINSTRING */
#undef C
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    pc_pickle_error err;
    int rc = loads_rc(cases[i].pickle, cases[i].len, &err);
    if (rc != PC_EPROTO)
      fail_msg("case %zu: %s (%s)", i, pc_errname(rc), err.message);
    assert_non_null(strstr(err.message, "length"));
  }
  /* Memo indices far beyond the input are a limit, not a huge table. */
  pc_pickle_error err;
  assert_rc(PC_ELIMIT, LOADS_RC("Nr\xff\xff\xff\xff.", &err));
  assert_rc(PC_ELIMIT, LOADS_RC("Np99999999999\n.", &err));
  assert_rc(PC_ELIMIT, LOADS_RC("N\x94q\xff"
                                "r\x00\x10\x00\x00.",
                                &err));
  /* But a legitimate high BINPUT in a tiny pickle is fine (Python accepts
   * it too). */
  assert_rc(0, LOADS_RC("Nq\xff.", &err));
}

static void test_self_reference_is_refused(void **state) {
  (void)state;
  pc_pickle_error err;
  /* l = []; l.append(l) in protocols 4 and 0, and via DUP. */
  assert_rc(PC_EPROTO, LOADS_RC("\x80\x04]\x94h\x00"
                                "a.",
                                &err));
  assert_non_null(strstr(err.message, "self-referencing"));
  assert_rc(PC_EPROTO, LOADS_RC("(lp0\ng0\na.", &err));
  assert_rc(PC_EPROTO, LOADS_RC("]2a.", &err));
  /* d = {}; d['me'] = d, and a set reached again (sets cannot contain
   * themselves, but filling after sharing is refused all the same). */
  assert_rc(PC_EPROTO, LOADS_RC("}q\x00X\x02\x00\x00\x00meh\x00s.", &err));
  assert_rc(PC_EPROTO, LOADS_RC("]\x94]\x94h\x00"
                                "ah\x01"
                                "a.",
                                &err));
  assert_rc(PC_EPROTO, LOADS_RC("]\x94]\x94h\x01"
                                "a0h\x00"
                                "a.",
                                &err));
  /* Filling a container after it went into another one. */
  assert_rc(PC_EPROTO, LOADS_RC("]]2\x85"
                                "0K\x01"
                                "a.",
                                &err));
  /* Shared but complete containers are fine: [[1], [1]] sharing one. */
  assert_rc(0, LOADS_RC("]\x94(]\x94K\x01"
                        "ah\x01"
                        "e.",
                        &err));
}

static void test_depth_limit_on_decode(void **state) {
  (void)state;
  /* n nested lists: ']' * n + 'a' * (n-1) + '.' */
  for (int n = 200; n <= PC_VALUE_MAX_DEPTH + 1;
       n += PC_VALUE_MAX_DEPTH - 199) {
    size_t len = (size_t)n * 2;
    char *p = xmalloc(len);
    memset(p, ']', (size_t)n);
    memset(p + n, 'a', (size_t)n - 1);
    p[len - 1] = '.';
    pc_pickle_error err;
    int rc = loads_rc(p, len, &err);
    if (n <= PC_VALUE_MAX_DEPTH)
      assert_rc(0, rc);
    else
      assert_rc(PC_ELIMIT, rc);
    free(p);
  }
  /* Exactly the limit decodes, and everything else works on it. */
  int n = PC_VALUE_MAX_DEPTH;
  size_t len = (size_t)n * 2;
  char *p = xmalloc(len);
  memset(p, ']', (size_t)n);
  memset(p + n, 'a', (size_t)n - 1);
  p[len - 1] = '.';
  pc_value *v = loads_ok(p, len);
  char *r = pc_value_repr(v);
  assert_non_null(r);
  free(r);
  pc_buffer b = PC_BUFFER_INIT;
  assert_rc(0, pc_pickle_dumps(v, 4, &b));
  pc_value *w = loads_ok(b.data, b.len);
  assert_int_equal(pc_value_equal(v, w), 1);
  pc_value_free(w);
  pc_buffer_release(&b);
  /* One level more, built in C, cannot be encoded: PC_ELIMIT, and the
   * buffer keeps what it had. */
  pc_value *outer = pc_value_list();
  assert_rc(0, pc_value_list_append_steal(outer, v));
  assert_rc(0, pc_buffer_append(&b, "xyz", 3));
  assert_rc(PC_ELIMIT, pc_pickle_dumps(outer, 4, &b));
  assert_int_equal(b.len, 3);
  pc_buffer_release(&b);
  pc_value_free(outer);
  free(p);
  /* Deep tuples and marks: 100000 nested MARKs do not blow anything. */
  len = 100001;
  p = xmalloc(len);
  memset(p, '(', len - 1);
  p[len - 1] = '.';
  pc_pickle_error err;
  assert_rc(PC_EPROTO, loads_rc(p, len, &err));
  free(p);
}

/* Every prefix of valid pickles fails cleanly (no crash, no leak). */
static void test_truncated_streams(void **state) {
  (void)state;
  char *text = read_file(VEC_DIR "decode.txt", NULL);
  int checked = 0;
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *f[5] = {NULL};
    split_tabs(line, f, 5);
    if (strlen(f[2]) > 4000)
      continue;
    size_t len;
    unsigned char *data = unhex(f[2], &len);
    for (size_t cut = 0; cut < len; cut++) {
      pc_pickle_error err;
      int rc = loads_rc(data, cut, &err);
      if (rc != PC_EPROTO)
        fail_msg("%s/%s cut at %zu: %s (%s)", f[0], f[1], cut, pc_errname(rc),
                 err.message);
      checked++;
    }
    free(data);
  }
  free(text);
  assert_true(checked > 10000);
}

/* Seeded random corruption of valid pickles: every outcome is a value or
 * one of the documented codes. The sanitizer build checks for memory
 * errors and leaks. */
static void test_mutated_pickles_never_crash(void **state) {
  (void)state;
  char *text = read_file(VEC_DIR "decode.txt", NULL);
  uint64_t s = UINT64_C(0x9e3779b97f4a7c15);
  int decoded = 0, refused = 0;
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *f[5] = {NULL};
    split_tabs(line, f, 5);
    if (strlen(f[2]) > 2000)
      continue;
    size_t len;
    unsigned char *data = unhex(f[2], &len);
    for (int round = 0; round < 40; round++) {
      unsigned char *m = xmalloc(len + 8);
      memcpy(m, data, len);
      size_t mlen = len;
      int edits = 1 + (int)(s % 3);
      for (int k = 0; k < edits; k++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        size_t at = (size_t)(s % (mlen + 1));
        switch ((s >> 32) % 3) {
        case 0:
          if (at < mlen)
            m[at] = (unsigned char)(s >> 40);
          break;
        case 1:
          if (at < mlen) {
            memmove(m + at, m + at + 1, mlen - at - 1);
            mlen--;
          }
          break;
        default:
          memmove(m + at + 1, m + at, mlen - at);
          m[at] = (unsigned char)(s >> 48);
          mlen++;
          break;
        }
      }
      pc_pickle_error err;
      pc_value *v = NULL;
      int rc = pc_pickle_loads(m, mlen, &v, &err);
      if (rc == 0) {
        char *r = pc_value_repr(v);
        assert_non_null(r);
        free(r);
        pc_value_free(v);
        decoded++;
      } else {
        assert_true(rc == PC_EPROTO || rc == PC_EUNSAFE || rc == PC_ELIMIT);
        assert_int_equal(err.code, rc);
        refused++;
      }
      free(m);
    }
    free(data);
  }
  free(text);
  print_message("mutations: %d decoded, %d refused\n", decoded, refused);
  assert_true(refused > 1000);
}

/* ---------------------------------------------------------------- round trips */

typedef struct gen {
  uint64_t s;
  pc_value *pool[64]; /* earlier values, reused to make shared references */
  size_t npool;
} gen;

static uint64_t rnd(gen *g) {
  g->s ^= g->s << 13;
  g->s ^= g->s >> 7;
  g->s ^= g->s << 17;
  return g->s;
}

static pc_value *gen_value(gen *g, int depth, bool hashable);

static pc_value *gen_str(gen *g) {
  char buf[64];
  size_t n = 0, want = rnd(g) % 12;
  for (size_t i = 0; i < want; i++) {
    uint32_t c;
    switch (rnd(g) % 5) {
    case 0:
      c = (uint32_t)(rnd(g) % 0x80);
      break;
    case 1:
      c = (uint32_t)(0x80 + rnd(g) % 0x780);
      break;
    case 2:
      c = (uint32_t)(0x800 + rnd(g) % 0xf800); /* surrogates included */
      break;
    case 3:
      c = (uint32_t)(0x10000 + rnd(g) % 0x100000);
      break;
    default:
      c = "'\"\\\n\0 x"[rnd(g) % 7];
      break;
    }
    if (c < 0x80) {
      buf[n++] = (char)c;
    } else if (c < 0x800) {
      buf[n++] = (char)(0xc0 | (c >> 6));
      buf[n++] = (char)(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      buf[n++] = (char)(0xe0 | (c >> 12));
      buf[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
      buf[n++] = (char)(0x80 | (c & 0x3f));
    } else {
      buf[n++] = (char)(0xf0 | (c >> 18));
      buf[n++] = (char)(0x80 | ((c >> 12) & 0x3f));
      buf[n++] = (char)(0x80 | ((c >> 6) & 0x3f));
      buf[n++] = (char)(0x80 | (c & 0x3f));
    }
  }
  pc_value *v = pc_value_strn(buf, n);
  assert_non_null(v);
  return v;
}

static pc_value *gen_scalar(gen *g) {
  pc_value *v = NULL;
  switch (rnd(g) % 9) {
  case 0:
    v = pc_value_none();
    break;
  case 1:
    v = pc_value_bool(rnd(g) & 1);
    break;
  case 2:
    v = pc_value_int((int64_t)(rnd(g) % 600) - 300);
    break;
  case 3:
    v = pc_value_int((int64_t)rnd(g) >> (rnd(g) % 64));
    break;
  case 4: {
    unsigned char le[40];
    size_t n = 1 + rnd(g) % sizeof le;
    for (size_t i = 0; i < n; i++)
      le[i] = (unsigned char)rnd(g);
    v = pc_value_int_from_bytes(le, n, true);
    break;
  }
  case 5: {
    uint64_t bits = rnd(g);
    double d;
    if (rnd(g) % 4 == 0)
      bits =
          (bits & UINT64_C(0x800fffffffffffff)) | UINT64_C(0x7ff0000000000000);
    memcpy(&d, &bits, sizeof d);
    v = pc_value_float(d);
    break;
  }
  case 6:
    v = pc_value_float((double)(int64_t)(rnd(g) % 1000) / 8);
    break;
  case 7: {
    unsigned char b[16];
    size_t n = rnd(g) % sizeof b;
    for (size_t i = 0; i < n; i++)
      b[i] = (unsigned char)rnd(g);
    v = pc_value_bytes(b, n);
    break;
  }
  default:
    v = gen_str(g);
    break;
  }
  assert_non_null(v);
  return v;
}

static pc_value *gen_value(gen *g, int depth, bool hashable) {
  uint64_t k = rnd(g) % 10;
  pc_value *v;
  if (!hashable && g->npool > 0 && rnd(g) % 8 == 0)
    return pc_value_ref(g->pool[rnd(g) % g->npool]);
  if (depth > 4 || k < 4)
    return gen_scalar(g);
  size_t n = rnd(g) % 6;
  if (hashable || k == 4) {
    pc_value *items[6] = {NULL};
    for (size_t i = 0; i < n; i++)
      items[i] = gen_value(g, depth + 1, hashable);
    v = pc_value_tuple(n, items);
    for (size_t i = 0; i < n; i++)
      pc_value_free(items[i]);
  } else if (k == 5 || k == 6) {
    v = pc_value_list();
    for (size_t i = 0; i < n; i++)
      assert_rc(0,
                pc_value_list_append_steal(v, gen_value(g, depth + 1, false)));
  } else if (k == 7) {
    v = pc_value_dict();
    for (size_t i = 0; i < n; i++)
      assert_rc(0, pc_value_dict_set_steal(v, gen_value(g, depth + 1, true),
                                           gen_value(g, depth + 1, false)));
  } else {
    v = k == 8 ? pc_value_set() : pc_value_frozenset();
    for (size_t i = 0; i < n; i++)
      assert_rc(0, pc_value_set_add_steal(v, gen_value(g, depth + 1, true)));
  }
  if (!hashable && g->npool < 64)
    g->pool[g->npool++] = pc_value_ref(v);
  return v;
}

static void test_random_round_trips(void **state) {
  (void)state;
  gen g = {UINT64_C(0x2545f4914f6cdd1d), {NULL}, 0};
  int n = 0;
  for (int i = 0; i < 3000; i++) {
    pc_value *v = gen_value(&g, 0, false);
    for (int proto = 2; proto <= 5; proto++) {
      pc_buffer b = PC_BUFFER_INIT;
      assert_rc(0, pc_pickle_dumps(v, proto, &b));
      pc_value *w = loads_ok(b.data, b.len);
      if (pc_value_identical(v, w) != 1) {
        char *rv = pc_value_repr(v), *rw = pc_value_repr(w);
        fail_msg("value %d protocol %d:\n  %s\n  %s", i, proto, rv, rw);
      }
      /* Re-encoding the decoded value gives the same bytes: the memo keeps
       * the structure's sharing. */
      pc_buffer b2 = PC_BUFFER_INIT;
      assert_rc(0, pc_pickle_dumps(w, proto, &b2));
      assert_int_equal(b2.len, b.len);
      assert_memory_equal(b2.data, b.data, b.len);
      pc_buffer_release(&b2);
      pc_value_free(w);
      pc_buffer_release(&b);
      n++;
    }
    pc_value_free(v);
    if (g.npool == 64) { /* refresh the pool now and then */
      for (size_t k = 0; k < g.npool; k++)
        pc_value_free(g.pool[k]);
      g.npool = 0;
    }
  }
  for (size_t k = 0; k < g.npool; k++)
    pc_value_free(g.pool[k]);
  assert_int_equal(n, 12000);
}

/* ---------------------------------------------------------------- API */

static void test_dumps_arguments_and_output(void **state) {
  (void)state;
  pc_buffer b = PC_BUFFER_INIT;
  pc_value *d = pc_value_dict();
  assert_rc(0, pc_value_dict_set_str_steal(d, "name", pc_value_str("bob")));
  assert_rc(0, pc_value_dict_set_str_steal(d, "spam", pc_value_int(42)));
  /* Python 3.11: pickle.dumps(dict(name='bob', spam=42), 4) */
  static const unsigned char py4[] = {
      0x80, 0x04, 0x95, 0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x7d, 0x94, 0x28, 0x8c, 0x04, 'n',  'a',  'm',  'e',
      0x94, 0x8c, 0x03, 'b',  'o',  'b',  0x94, 0x8c, 0x04, 's',
      'p',  'a',  'm',  0x94, 0x4b, 0x2a, 0x75, 0x2e};
  assert_rc(0, pc_pickle_dumps(d, -1, &b));
  assert_int_equal(b.len, sizeof py4);
  assert_memory_equal(b.data, py4, sizeof py4);
  /* Appends after what the buffer holds. */
  assert_rc(0, pc_pickle_dumps(pc_value_none(), 2, &b));
  assert_int_equal(b.len, sizeof py4 + 4);
  assert_memory_equal(b.data + sizeof py4, "\x80\x02N.", 4);
  assert_rc(-EINVAL, pc_pickle_dumps(d, 1, &b));
  assert_rc(-EINVAL, pc_pickle_dumps(d, 6, &b));
  assert_rc(-EINVAL, pc_pickle_dumps(NULL, 4, &b));
  assert_rc(-EINVAL, pc_pickle_dumps(d, 4, NULL));
  assert_int_equal(b.len, sizeof py4 + 4);
  pc_buffer_release(&b);

  pc_value *v = NULL;
  pc_pickle_error err;
  assert_rc(-EINVAL, pc_pickle_loads(NULL, 1, &v, &err));
  assert_rc(-EINVAL, pc_pickle_loads("N.", 2, NULL, NULL));
  assert_int_equal(err.code, -EINVAL);
  pc_value_free(d);
}

static void test_serializer_table(void **state) {
  (void)state;
  const pc_serializer *s = pc_pickle_serializer();
  assert_non_null(s);
  assert_ptr_equal(s, pc_pickle_serializer());
  assert_string_equal(s->name, "pickle");
  pc_value *l = pc_value_list();
  assert_rc(0, pc_value_list_append_steal(l, pc_value_bytes("ab", 2)));
  /* ctx NULL: protocol 4; options: any protocol. */
  pc_pickle_options opt = {2};
  pc_buffer b4 = PC_BUFFER_INIT, b2 = PC_BUFFER_INIT;
  assert_rc(0, s->encode(NULL, l, &b4));
  assert_rc(0, s->encode(&opt, l, &b2));
  assert_memory_equal(b4.data, "\x80\x04", 2);
  assert_memory_equal(b2.data, "\x80\x02", 2);
  assert_non_null(memmem(b2.data, b2.len, "c_codecs\nencode\n", 16));
  void *obj = NULL;
  assert_rc(0, s->decode(NULL, b2.data, b2.len, &obj));
  assert_int_equal(pc_value_identical(obj, l), 1);
  s->release(NULL, obj);
  s->release(NULL, NULL);
  assert_rc(PC_EPROTO, s->decode(NULL, "garbage", 7, &obj));
  pc_buffer_release(&b4);
  pc_buffer_release(&b2);
  pc_value_free(l);
}

/* Runs fn with 0, 1, 2, ... allocations allowed until it succeeds: each
 * failing run must report -ENOMEM and leave no block behind. */
#ifndef PC_TEST_NO_MALLOC_HOOK
typedef int (*sweep_fn)(const void *arg);

static int sweep_loads(const void *arg) {
  const pc_buffer *b = arg;
  pc_value *v = NULL;
  int rc = pc_pickle_loads(b->data, b->len, &v, NULL);
  if (rc == 0) {
    char *r = pc_value_repr(v);
    rc = r == NULL ? -ENOMEM : 0;
    free(r);
    pc_value_free(v);
  }
  return rc;
}

static int sweep_dumps(const void *arg) {
  pc_buffer b = PC_BUFFER_INIT;
  int rc = pc_pickle_dumps(arg, 4, &b);
  if (rc == 0)
    rc = pc_pickle_dumps(arg, 2, &b);
  pc_buffer_release(&b);
  return rc;
}

static long sweep(sweep_fn fn, const void *arg) {
  long budget = 0;
  for (;; budget++) {
    long live = alloc_live;
    alloc_count = 0;
    alloc_budget = budget;
    int rc = fn(arg);
    alloc_budget = -1;
    if (alloc_live != live)
      fail_msg("with %ld allocations allowed: %ld blocks leaked", budget,
               alloc_live - live);
    if (rc == 0)
      break;
    if (rc != -ENOMEM)
      fail_msg("with %ld allocations allowed: %s, want -ENOMEM", budget,
               pc_errname(rc));
  }
  return budget;
}
#endif

static void test_allocation_failures_are_clean(void **state) {
  (void)state;
#ifdef PC_TEST_NO_MALLOC_HOOK
  print_message("sanitizer build: the allocation-failure sweep is skipped "
                "(it replaces malloc)\n");
  skip();
#else
  if (getenv("PC_TEST_VALGRIND") != NULL) {
    /* valgrind replaces malloc itself and sends some of the library's
     * calls past this file's malloc, so the counts cannot add up there
     * (test_alloc_fail sweeps through --wrap, which works everywhere). */
    print_message("under valgrind: the allocation-failure sweep is skipped "
                  "(valgrind replaces malloc)\n");
    skip();
  }
  /* A value with every kind of container, shared references, a big int, a
   * long list (the decoder's stacks and memo grow) and the protocol 2
   * forms (sets and bytes through REDUCE). */
  char *text = read_file(VEC_DIR "decode.txt", NULL);
  long total = 0;
  int vectors = 0;
  /* One-time state (the C locale used for float text) first, so it does
   * not count as a leak. */
  pc_value *warm = pc_value_float(0.5);
  free(pc_value_repr(warm));
  pc_value_free(warm);
  for (char *line = strtok(text, "\n"); line != NULL;
       line = strtok(NULL, "\n")) {
    char *f[5] = {NULL};
    split_tabs(line, f, 5);
    if (strncmp(f[0], "nested", 6) != 0 && strncmp(f[0], "shared", 6) != 0 &&
        strcmp(f[0], "list_range1001") != 0 && strcmp(f[0], "dict_keys") != 0 &&
        strcmp(f[0], "set_mixed") != 0 && strcmp(f[0], "int_31") != 0 &&
        strcmp(f[0], "bytes_5") != 0)
      continue;
    pc_buffer b = PC_BUFFER_INIT;
    size_t len;
    unsigned char *data = unhex(f[2], &len);
    assert_rc(0, pc_buffer_append(&b, data, len));
    total += sweep(sweep_loads, &b);
    pc_value *v = loads_ok(b.data, b.len);
    total += sweep(sweep_dumps, v);
    pc_value_free(v);
    pc_buffer_release(&b);
    free(data);
    vectors++;
  }
  free(text);
  print_message("%d vectors, %ld failing allocations injected\n", vectors,
                total);
  assert_true(vectors >= 30);
  assert_true(total > 100);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden_decode_repr_and_reencode),
      cmocka_unit_test(test_golden_big_values_cross_frames),
      cmocka_unit_test(test_golden_rejects),
      cmocka_unit_test(test_golden_float_repr),
      cmocka_unit_test(test_shared_references_stay_shared),
      cmocka_unit_test(test_decode_text_forms),
      cmocka_unit_test(test_every_unsafe_opcode_is_refused),
      cmocka_unit_test(test_malformed_input_is_an_error),
      cmocka_unit_test(test_lying_lengths_allocate_nothing),
      cmocka_unit_test(test_self_reference_is_refused),
      cmocka_unit_test(test_depth_limit_on_decode),
      cmocka_unit_test(test_truncated_streams),
      cmocka_unit_test(test_mutated_pickles_never_crash),
      cmocka_unit_test(test_random_round_trips),
      cmocka_unit_test(test_dumps_arguments_and_output),
      cmocka_unit_test(test_serializer_table),
      cmocka_unit_test(test_allocation_failures_are_clean),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
