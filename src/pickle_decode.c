/* SPDX-License-Identifier: MIT */
/* pc_pickle_loads: the data subset of Python's pickle, protocols 0 to 5.
 *
 * A pickle is a program for a stack machine. This decoder runs it with a
 * value stack, a mark stack and a memo, all bounded by the input's length,
 * and knows only the opcodes that build data. Anything that would import,
 * call or build something else is refused (PC_EUNSAFE), except the exact
 * forms older protocols use for bytes, set and frozenset, which are
 * recognised by name without importing anything (see value.h).
 *
 * Cycles: a container may only be filled while nothing else refers to it.
 * It is "sealed" as soon as it is fetched again from the memo, duplicated,
 * or inserted into another container; filling a sealed container is
 * refused. Python fills every container before referring to it, so only
 * self-referencing structures are affected, and those could not be freed by
 * reference counting anyway.
 *
 * Opcode semantics follow CPython's Lib/pickle.py and Modules/_pickle.c
 * (the mark "fence", MEMOIZE numbering by the memo's size, PROTO anywhere).
 * Stricter than Python: STOP must leave exactly one value and no mark, and
 * nothing may follow it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------- opcodes */
enum {
  OP_MARK = '(',
  OP_STOP = '.',
  OP_POP = '0',
  OP_POP_MARK = '1',
  OP_DUP = '2',
  OP_FLOAT = 'F',
  OP_INT = 'I',
  OP_BININT = 'J',
  OP_BININT1 = 'K',
  OP_LONG = 'L',
  OP_BININT2 = 'M',
  OP_NONE = 'N',
  OP_PERSID = 'P',
  OP_BINPERSID = 'Q',
  OP_REDUCE = 'R',
  OP_STRING = 'S',
  OP_BINSTRING = 'T',
  OP_SHORT_BINSTRING = 'U',
  OP_UNICODE = 'V',
  OP_BINUNICODE = 'X',
  OP_APPEND = 'a',
  OP_BUILD = 'b',
  OP_GLOBAL = 'c',
  OP_DICT = 'd',
  OP_EMPTY_DICT = '}',
  OP_APPENDS = 'e',
  OP_GET = 'g',
  OP_BINGET = 'h',
  OP_INST = 'i',
  OP_LONG_BINGET = 'j',
  OP_LIST = 'l',
  OP_EMPTY_LIST = ']',
  OP_OBJ = 'o',
  OP_PUT = 'p',
  OP_BINPUT = 'q',
  OP_LONG_BINPUT = 'r',
  OP_SETITEM = 's',
  OP_TUPLE = 't',
  OP_EMPTY_TUPLE = ')',
  OP_SETITEMS = 'u',
  OP_BINFLOAT = 'G',
  OP_PROTO = 0x80,
  OP_NEWOBJ = 0x81,
  OP_EXT1 = 0x82,
  OP_EXT2 = 0x83,
  OP_EXT4 = 0x84,
  OP_TUPLE1 = 0x85,
  OP_TUPLE2 = 0x86,
  OP_TUPLE3 = 0x87,
  OP_NEWTRUE = 0x88,
  OP_NEWFALSE = 0x89,
  OP_LONG1 = 0x8a,
  OP_LONG4 = 0x8b,
  OP_BINBYTES = 'B',
  OP_SHORT_BINBYTES = 'C',
  OP_SHORT_BINUNICODE = 0x8c,
  OP_BINUNICODE8 = 0x8d,
  OP_BINBYTES8 = 0x8e,
  OP_EMPTY_SET = 0x8f,
  OP_ADDITEMS = 0x90,
  OP_FROZENSET = 0x91,
  OP_NEWOBJ_EX = 0x92,
  OP_STACK_GLOBAL = 0x93,
  OP_MEMOIZE = 0x94,
  OP_FRAME = 0x95,
  OP_BYTEARRAY8 = 0x96,
  OP_NEXT_BUFFER = 0x97,
  OP_READONLY_BUFFER = 0x98
};

static const struct {
  int op;
  const char *name;
} op_names[] = {
    {OP_MARK, "MARK"},
    {OP_STOP, "STOP"},
    {OP_POP, "POP"},
    {OP_POP_MARK, "POP_MARK"},
    {OP_DUP, "DUP"},
    {OP_FLOAT, "FLOAT"},
    {OP_INT, "INT"},
    {OP_BININT, "BININT"},
    {OP_BININT1, "BININT1"},
    {OP_LONG, "LONG"},
    {OP_BININT2, "BININT2"},
    {OP_NONE, "NONE"},
    {OP_PERSID, "PERSID"},
    {OP_BINPERSID, "BINPERSID"},
    {OP_REDUCE, "REDUCE"},
    {OP_STRING, "STRING"},
    {OP_BINSTRING, "BINSTRING"},
    {OP_SHORT_BINSTRING, "SHORT_BINSTRING"},
    {OP_UNICODE, "UNICODE"},
    {OP_BINUNICODE, "BINUNICODE"},
    {OP_APPEND, "APPEND"},
    {OP_BUILD, "BUILD"},
    {OP_GLOBAL, "GLOBAL"},
    {OP_DICT, "DICT"},
    {OP_EMPTY_DICT, "EMPTY_DICT"},
    {OP_APPENDS, "APPENDS"},
    {OP_GET, "GET"},
    {OP_BINGET, "BINGET"},
    {OP_INST, "INST"},
    {OP_LONG_BINGET, "LONG_BINGET"},
    {OP_LIST, "LIST"},
    {OP_EMPTY_LIST, "EMPTY_LIST"},
    {OP_OBJ, "OBJ"},
    {OP_PUT, "PUT"},
    {OP_BINPUT, "BINPUT"},
    {OP_LONG_BINPUT, "LONG_BINPUT"},
    {OP_SETITEM, "SETITEM"},
    {OP_TUPLE, "TUPLE"},
    {OP_EMPTY_TUPLE, "EMPTY_TUPLE"},
    {OP_SETITEMS, "SETITEMS"},
    {OP_BINFLOAT, "BINFLOAT"},
    {OP_PROTO, "PROTO"},
    {OP_NEWOBJ, "NEWOBJ"},
    {OP_EXT1, "EXT1"},
    {OP_EXT2, "EXT2"},
    {OP_EXT4, "EXT4"},
    {OP_TUPLE1, "TUPLE1"},
    {OP_TUPLE2, "TUPLE2"},
    {OP_TUPLE3, "TUPLE3"},
    {OP_NEWTRUE, "NEWTRUE"},
    {OP_NEWFALSE, "NEWFALSE"},
    {OP_LONG1, "LONG1"},
    {OP_LONG4, "LONG4"},
    {OP_BINBYTES, "BINBYTES"},
    {OP_SHORT_BINBYTES, "SHORT_BINBYTES"},
    {OP_SHORT_BINUNICODE, "SHORT_BINUNICODE"},
    {OP_BINUNICODE8, "BINUNICODE8"},
    {OP_BINBYTES8, "BINBYTES8"},
    {OP_EMPTY_SET, "EMPTY_SET"},
    {OP_ADDITEMS, "ADDITEMS"},
    {OP_FROZENSET, "FROZENSET"},
    {OP_NEWOBJ_EX, "NEWOBJ_EX"},
    {OP_STACK_GLOBAL, "STACK_GLOBAL"},
    {OP_MEMOIZE, "MEMOIZE"},
    {OP_FRAME, "FRAME"},
    {OP_BYTEARRAY8, "BYTEARRAY8"},
    {OP_NEXT_BUFFER, "NEXT_BUFFER"},
    {OP_READONLY_BUFFER, "READONLY_BUFFER"},
};

/* The opcode's name for messages, or NULL for a byte that is none. */
static const char *op_name(int op) {
  const char *name = NULL;
  for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
    if (op_names[i].op == op)
      name = op_names[i].name;
  return name;
}

/* ---------------------------------------------------------------- safe globals
 * Static markers for the four callables older protocols name. They live on
 * the stack and in the memo like values, but never inside a container and
 * never as the result. */
enum gkind { G_SET, G_FROZENSET, G_BYTES, G_ENCODE };
#define MARKER(k)                                                              \
  { 0, PC__TYPE_GLOBAL, PC__VF_IMMORTAL, (uint16_t)(k) }
static pc_value g_markers[] = {MARKER(G_SET), MARKER(G_FROZENSET),
                               MARKER(G_BYTES), MARKER(G_ENCODE)};
/* The marker's kind is kept in its depth field, unused for markers. */
#define MARKER_KIND(v) ((enum gkind)(v)->depth)

static bool is_marker(const pc_value *v) {
  return !pc__is_small(v) && v->type == PC__TYPE_GLOBAL;
}

static bool is_container(const pc_value *v) {
  unsigned t = pc__type(v);
  return t == PC_TYPE_LIST || t == PC_TYPE_TUPLE || t == PC_TYPE_DICT ||
         t == PC_TYPE_SET || t == PC_TYPE_FROZENSET;
}

/* ---------------------------------------------------------------- state */
#define STACK_INLINE 64
#define MARKS_INLINE 16
#define MEMO_INLINE 32

typedef struct dec {
  const unsigned char *start, *p, *end;
  size_t op_off; /* offset of the opcode being run */
  int op;
  pc_value **stack;
  size_t sp, stack_cap;
  size_t *marks;
  size_t nmarks, marks_cap;
  pc_value **memo;
  size_t memo_cap, memo_count, memo_limit;
  uint64_t new_refs; /* references handed out by GET, DUP and PUT */
  pc_pickle_error *err;
  pc_value *stack_inline[STACK_INLINE];
  size_t marks_inline[MARKS_INLINE];
  pc_value *memo_inline[MEMO_INLINE];
} dec;

/* Every reference the memo and stack hand out is counted, so that a hostile
 * pickle cannot wrap a 32-bit reference count. */
#define MAX_NEW_REFS (UINT64_C(1) << 31)

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int
fail(dec *d, int code, const char *fmt, ...) {
  if (d->err != NULL) {
    char detail[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    d->err->code = code;
    d->err->offset = d->op_off;
    d->err->opcode = d->op;
    if (d->op >= 0 && op_name(d->op) != NULL)
      snprintf(d->err->message, sizeof d->err->message, "%s at offset %zu: %s",
               op_name(d->op), d->op_off, detail);
    else
      snprintf(d->err->message, sizeof d->err->message, "offset %zu: %s",
               d->op_off, detail);
  }
  return code;
}

static int fail_nomem(dec *d) { return fail(d, -ENOMEM, "out of memory"); }

static int truncated(dec *d) {
  return fail(d, PC_EPROTO, "pickle data was truncated");
}

/* Copies text from the input into a message, replacing anything that is
 * not printable ASCII and cutting it short. */
static void quote_text(char *dst, size_t cap, const unsigned char *s,
                       size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 4 < cap; i++)
    dst[k++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
  if (n > 0 && k + 4 >= cap) {
    memcpy(dst + k, "...", 3);
    k += 3;
  }
  dst[k] = '\0';
}

/* ---------------------------------------------------------------- input */
static int need(dec *d, size_t n, const unsigned char **out) {
  int rc = 0;
  if ((size_t)(d->end - d->p) < n) {
    rc = truncated(d);
  } else {
    *out = d->p;
    d->p += n;
  }
  return rc;
}

/* A text argument: the bytes up to the next newline (excluded). */
static int readline(dec *d, const unsigned char **s, size_t *n) {
  const unsigned char *nl = memchr(d->p, '\n', (size_t)(d->end - d->p));
  int rc = 0;
  if (nl == NULL) {
    rc = truncated(d);
  } else {
    *s = d->p;
    *n = (size_t)(nl - d->p);
    d->p = nl + 1;
  }
  return rc;
}

static uint64_t le_uint(const unsigned char *p, int n) {
  uint64_t u = 0;
  for (int k = 0; k < n; k++)
    u |= (uint64_t)p[k] << (8 * k);
  return u;
}

/* A length field of n bytes, checked against what is actually there. */
static int read_len(dec *d, int n, size_t *out) {
  const unsigned char *p = d->p;
  int rc = need(d, (size_t)n, &p);
  if (rc == 0) {
    uint64_t len = le_uint(p, n);
    if (len > (uint64_t)(d->end - d->p))
      rc = fail(d, PC_EPROTO,
                "length %llu is larger than the %zu bytes that follow",
                (unsigned long long)len, (size_t)(d->end - d->p));
    else
      *out = (size_t)len;
  }
  return rc;
}

/* ---------------------------------------------------------------- stack */
static int grow(dec *d, void **arr, size_t *cap, size_t elem, void *inl) {
  size_t ncap = *cap * 2;
  void *n = NULL;
  int rc = 0;
  /* Every push consumes at least one input byte, so the input's length
   * bounds the stacks. */
  if (ncap <= SIZE_MAX / elem) {
    if (*arr == inl) {
      n = malloc(ncap * elem);
      if (n != NULL)
        memcpy(n, *arr, *cap * elem);
    } else {
      n = realloc(*arr, ncap * elem);
    }
  }
  if (n == NULL) {
    rc = fail_nomem(d);
  } else {
    *arr = n;
    *cap = ncap;
  }
  return rc;
}

/* Pushes v, taking over the reference (released if the push fails). */
static int push(dec *d, pc_value *v) {
  int rc = 0;
  if (d->sp == d->stack_cap)
    rc = grow(d, (void **)&d->stack, &d->stack_cap, sizeof *d->stack,
              d->stack_inline);
  if (rc == 0)
    d->stack[d->sp++] = v;
  else
    pc_value_free(v);
  return rc;
}

static size_t fence(const dec *d) {
  return d->nmarks > 0 ? d->marks[d->nmarks - 1] : 0;
}

static int underflow(dec *d) {
  return fail(d, PC_EPROTO, "stack underflow (or reaching below a MARK)");
}

/* Releases stack[from..sp) (stolen entries are NULL) and drops them. */
static void drop_from(dec *d, size_t from) {
  while (d->sp > from) {
    pc_value *v = d->stack[--d->sp];
    if (v != NULL)
      pc_value_free(v);
  }
}

static int pop_mark(dec *d, size_t *mark) {
  int rc = 0;
  if (d->nmarks == 0)
    rc = fail(d, PC_EPROTO, "no MARK on the stack");
  else
    *mark = d->marks[--d->nmarks];
  return rc;
}

/* The values in stack[from..sp) are about to become data inside a
 * container: none may be one of the global markers. */
static int check_data(dec *d, size_t from) {
  int rc = 0;
  for (size_t i = from; i < d->sp && rc == 0; i++)
    if (is_marker(d->stack[i]))
      rc = fail(d, PC_EUNSAFE,
                "a global (set, frozenset, bytes or "
                "_codecs.encode) used as data");
  return rc;
}

/* Maps a builder's error to the decoder's codes. */
static int builder_fail(dec *d, int rc, const char *what) {
  if (rc == PC_EUNSAFE)
    rc = fail(d, PC_EUNSAFE,
              "a global (set, frozenset, bytes or "
              "_codecs.encode) used as data");
  else if (rc == -EINVAL)
    rc = fail(d, PC_EPROTO, "unhashable %s (list, dict or set)", what);
  else if (rc == PC_ELIMIT)
    rc =
        fail(d, PC_ELIMIT, "nesting deeper than %d levels", PC_VALUE_MAX_DEPTH);
  else
    rc = fail_nomem(d);
  return rc;
}

/* The container below the mark that APPENDS/SETITEMS/ADDITEMS fill. */
static int target(dec *d, size_t mark, unsigned type, pc_value **out) {
  int rc = 0;
  if (mark == 0 || mark <= fence(d)) {
    rc = underflow(d);
  } else {
    pc_value *t = d->stack[mark - 1];
    if (pc__type(t) != type)
      rc = fail(d, PC_EPROTO, "target is a %s, not a %s",
                is_marker(t) ? "global" : pc_type_name(pc__type(t)),
                pc_type_name((pc_type)type));
    else if (d->sp > mark && (t->flags & PC__VF_SEALED))
      rc = fail(d, PC_EPROTO,
                "the %s is already referenced elsewhere; filling it now "
                "would make a self-referencing structure",
                pc_type_name((pc_type)type));
    else
      *out = t;
  }
  return rc;
}

/* ---------------------------------------------------------------- memo */
static int memo_grow(dec *d, size_t idx) {
  size_t ncap = d->memo_cap;
  pc_value **m;
  int rc = 0;
  while (ncap <= idx)
    ncap *= 2;
  if (ncap > d->memo_limit)
    ncap = d->memo_limit;
  m = d->memo == d->memo_inline ? malloc(ncap * sizeof *m)
                                : realloc(d->memo, ncap * sizeof *m);
  if (m == NULL) {
    rc = fail_nomem(d);
  } else {
    if (d->memo == d->memo_inline)
      memcpy(m, d->memo_inline, d->memo_cap * sizeof *m);
    memset(m + d->memo_cap, 0, (ncap - d->memo_cap) * sizeof *m);
    d->memo = m;
    d->memo_cap = ncap;
  }
  return rc;
}

static int memo_put(dec *d, size_t idx) {
  int rc = 0;
  if (d->sp <= fence(d))
    rc = underflow(d);
  else if (idx >= d->memo_limit)
    rc = fail(d, PC_ELIMIT, "memo index %zu is beyond the input's size", idx);
  else if (++d->new_refs > MAX_NEW_REFS)
    rc = fail(d, PC_ELIMIT, "too many references");
  else if (idx >= d->memo_cap)
    rc = memo_grow(d, idx);
  if (rc == 0) {
    pc_value *old = d->memo[idx];
    d->memo[idx] = pc__ref(d->stack[d->sp - 1]);
    if (old != NULL)
      pc_value_free(old);
    else
      d->memo_count++;
  }
  return rc;
}

static void seal(pc_value *v) {
  if (is_container(v) && (v->flags & PC__VF_IMMORTAL) == 0)
    v->flags |= PC__VF_SEALED;
}

static int memo_get(dec *d, size_t idx) {
  int rc = 0;
  if (idx >= d->memo_cap || d->memo[idx] == NULL) {
    rc = fail(d, PC_EPROTO, "memo entry %zu is not defined", idx);
  } else if (++d->new_refs > MAX_NEW_REFS) {
    rc = fail(d, PC_ELIMIT, "too many references");
  } else {
    pc_value *v = d->memo[idx];
    seal(v);
    rc = push(d, pc__ref(v));
  }
  return rc;
}

/* Decimal argument of PUT and GET. */
static int text_index(dec *d, size_t *idx) {
  const unsigned char *s = NULL;
  size_t n = 0, v = 0;
  int rc = readline(d, &s, &n);
  if (rc == 0 && (n == 0 || n > 18))
    rc = fail(d, PC_EPROTO, "bad memo index");
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (s[i] < '0' || s[i] > '9')
      rc = fail(d, PC_EPROTO, "bad memo index");
    else
      v = v * 10 + (size_t)(s[i] - '0');
  }
  if (rc == 0)
    *idx = v;
  return rc;
}

/* ---------------------------------------------------------------- text forms */
/* Pushes a value a helper just made, or reports the helper's failure:
 * -EINVAL (invalid input), PC_ELIMIT, -ENOMEM; codes already reported by
 * the decoder itself pass through. */
static int push_new(dec *d, int rc, pc_value *v, const char *what) {
  if (rc == 0)
    rc = push(d, v);
  else if (rc == -EINVAL)
    rc = fail(d, PC_EPROTO, "%s", what);
  else if (rc == PC_ELIMIT)
    rc = fail(d, PC_ELIMIT, "%s", "int with more than 4300 digits");
  else if (rc == -ENOMEM)
    rc = fail_nomem(d);
  return rc;
}

static int load_text_int(dec *d, bool long_form) {
  const unsigned char *s = NULL;
  size_t n = 0;
  pc_value *v = NULL;
  int rc = readline(d, &s, &n);
  if (rc < 0) {
    /* reported */
  } else if (!long_form && n == 2 && s[0] == '0' &&
             (s[1] == '0' || s[1] == '1')) {
    rc = push(d, pc_value_bool(s[1] == '1')); /* I00 / I01 */
  } else {
    if (long_form && n > 0 && s[n - 1] == 'L')
      n--;
    rc = pc__int_from_decimal((const char *)s, n, &v);
    rc = push_new(d, rc, v, "invalid decimal integer");
  }
  return rc;
}

static int load_text_float(dec *d) {
  const unsigned char *s = NULL;
  size_t n = 0;
  double x = 0;
  pc_value *v = NULL;
  int rc = readline(d, &s, &n);
  if (rc == 0)
    rc = pc__float_parse((const char *)s, n, &x);
  if (rc == 0)
    rc = pc__float_new(x, &v);
  return push_new(d, rc, v, "invalid float text");
}

static int hexval(unsigned c) {
  int v = -1;
  if (c >= '0' && c <= '9')
    v = (int)(c - '0');
  else if (c >= 'a' && c <= 'f')
    v = (int)(c - 'a' + 10);
  else if (c >= 'A' && c <= 'F')
    v = (int)(c - 'A' + 10);
  return v;
}

static unsigned char *put_utf8(unsigned char *o, uint32_t c) {
  if (c < 0x80) {
    *o++ = (unsigned char)c;
  } else if (c < 0x800) {
    *o++ = (unsigned char)(0xc0 | (c >> 6));
    *o++ = (unsigned char)(0x80 | (c & 0x3f));
  } else if (c < 0x10000) {
    *o++ = (unsigned char)(0xe0 | (c >> 12));
    *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (c & 0x3f));
  } else {
    *o++ = (unsigned char)(0xf0 | (c >> 18));
    *o++ = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    *o++ = (unsigned char)(0x80 | (c & 0x3f));
  }
  return o;
}

/* UNICODE: 'raw-unicode-escape'. Bytes are Latin-1 code points, except
 * \uXXXX and \UXXXXXXXX after an odd number of backslashes. */
static int load_unicode(dec *d) {
  const unsigned char *s = NULL;
  size_t n = 0;
  pc_value *v = NULL;
  unsigned char *buf = NULL, *o;
  size_t i = 0;
  int rc = readline(d, &s, &n);
  if (rc < 0)
    goto out;
  buf = n < SIZE_MAX / 2 ? malloc(n * 2 + 1) : NULL;
  if (buf == NULL) {
    rc = fail_nomem(d);
    goto out;
  }
  o = buf;
  while (i < n && rc == 0) {
    if (s[i] != '\\') {
      o = put_utf8(o, s[i++]);
      continue;
    }
    size_t run = 0;
    while (i + run < n && s[i + run] == '\\')
      run++;
    bool esc =
        (run & 1) && i + run < n && (s[i + run] == 'u' || s[i + run] == 'U');
    size_t literal = esc ? run - 1 : run;
    memset(o, '\\', literal);
    o += literal;
    i += run;
    if (!esc)
      continue;
    int digits = s[i] == 'u' ? 4 : 8;
    uint32_t c = 0;
    i++;
    for (int k = 0; k < digits && rc == 0; k++) {
      int h = i + (size_t)k < n ? hexval(s[i + (size_t)k]) : -1;
      if (h < 0)
        rc = fail(d, PC_EPROTO, "truncated \\%c escape in UNICODE text",
                  digits == 4 ? 'u' : 'U');
      else
        c = c * 16 + (uint32_t)h;
    }
    if (rc == 0 && c > 0x10ffff)
      rc = fail(d, PC_EPROTO, "\\U escape out of range");
    if (rc == 0) {
      o = put_utf8(o, c);
      i += (size_t)digits;
    }
  }
  if (rc == 0) {
    rc = pc__str_new((const char *)buf, (size_t)(o - buf), true, &v);
    rc = push_new(d, rc, v, "invalid text");
  }
out:
  free(buf);
  return rc;
}

/* STRING: a Python 2 str literal in quotes, with backslash escapes. Decoded
 * as Python 3 does by default (encoding='ASCII'): to str, ASCII only. */
static int load_string(dec *d) {
  const unsigned char *s = NULL;
  size_t n = 0;
  pc_value *v = NULL;
  unsigned char *buf = NULL, *o;
  int rc = readline(d, &s, &n);
  if (rc < 0)
    goto out;
  if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0]) {
    rc = fail(d, PC_EPROTO, "the STRING opcode argument must be quoted");
    goto out;
  }
  s++;
  n -= 2;
  buf = malloc(n + 1);
  if (buf == NULL) {
    rc = fail_nomem(d);
    goto out;
  }
  o = buf;
  for (size_t i = 0; i < n && rc == 0;) {
    unsigned c = s[i++];
    if (c != '\\' || i == n) {
      *o++ = (unsigned char)c;
      continue;
    }
    c = s[i++];
    switch (c) {
    case '\n':
      break;
    case '\\':
    case '\'':
    case '"':
      *o++ = (unsigned char)c;
      break;
    case 'a':
      *o++ = 7;
      break;
    case 'b':
      *o++ = 8;
      break;
    case 'f':
      *o++ = 12;
      break;
    case 'n':
      *o++ = 10;
      break;
    case 'r':
      *o++ = 13;
      break;
    case 't':
      *o++ = 9;
      break;
    case 'v':
      *o++ = 11;
      break;
    case 'x': {
      int h1 = i < n ? hexval(s[i]) : -1;
      int h2 = i + 1 < n ? hexval(s[i + 1]) : -1;
      if (h1 < 0 || h2 < 0)
        rc = fail(d, PC_EPROTO, "invalid \\x escape in STRING");
      else
        *o++ = (unsigned char)(h1 * 16 + h2);
      i += 2;
      break;
    }
    default:
      if (c >= '0' && c <= '7') {
        unsigned x = c - '0';
        for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++)
          x = x * 8 + (unsigned)(s[i++] - '0');
        *o++ = (unsigned char)x;
      } else {
        *o++ = '\\';
        *o++ = (unsigned char)c;
      }
      break;
    }
  }
  for (unsigned char *q = buf; q < o && rc == 0; q++)
    if (*q >= 0x80)
      rc = fail(d, PC_EPROTO, "non-ASCII Python 2 string");
  if (rc == 0) {
    rc = pc__str_new((const char *)buf, (size_t)(o - buf), true, &v);
    rc = push_new(d, rc, v, "invalid text");
  }
out:
  free(buf);
  return rc;
}

/* ---------------------------------------------------------------- GLOBAL and REDUCE */
static bool line_is(const unsigned char *s, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static int load_global(dec *d) {
  const unsigned char *mod = NULL, *name = NULL;
  size_t nmod = 0, nname = 0;
  int kind = -1;
  int rc = readline(d, &mod, &nmod);
  if (rc == 0)
    rc = readline(d, &name, &nname);
  if (rc < 0)
    goto out;
  if (line_is(mod, nmod, "__builtin__") || line_is(mod, nmod, "builtins")) {
    if (line_is(name, nname, "set"))
      kind = G_SET;
    else if (line_is(name, nname, "frozenset"))
      kind = G_FROZENSET;
    else if (line_is(name, nname, "bytes"))
      kind = G_BYTES;
  } else if (line_is(mod, nmod, "_codecs") && line_is(name, nname, "encode")) {
    kind = G_ENCODE;
  }
  if (kind < 0) {
    char m[40], nm[40];
    quote_text(m, sizeof m, mod, nmod);
    quote_text(nm, sizeof nm, name, nname);
    rc = fail(d, PC_EUNSAFE,
              "refusing to import %s.%s (not one of the data-only forms)", m,
              nm);
  } else {
    rc = push(d, &g_markers[kind]);
  }
out:
  return rc;
}

/* set(list) / frozenset(list): a new set with the list's items. */
static int make_set(dec *d, pc_type type, const pc_value *args,
                    pc_value **out) {
  size_t nargs, n = 0;
  pc_value *const *a = pc__seq_items(args, &nargs);
  pc_value *const *items = NULL;
  pc_value *s = NULL;
  int rc = 0;
  if (nargs == 1 && pc__type(a[0]) != PC_TYPE_LIST &&
      pc__type(a[0]) != PC_TYPE_TUPLE) {
    rc = fail(d, PC_EUNSAFE, "%s() of a %s (only a list is data)",
              pc_type_name(type), pc_type_name(pc__type(a[0])));
  } else if (nargs > 1) {
    rc = fail(d, PC_EUNSAFE, "%s() with %zu arguments", pc_type_name(type),
              nargs);
  } else {
    if (nargs == 1)
      items = pc__seq_items(a[0], &n);
    s = pc__map_new(type);
    if (s == NULL)
      rc = fail_nomem(d);
  }
  for (size_t i = 0; i < n && rc == 0; i++) {
    rc = pc__set_add_steal(s, pc__ref(items[i]));
    if (rc < 0) {
      pc_value_free(items[i]);
      rc = builder_fail(d, rc, "set element");
    }
  }
  if (rc == 0)
    *out = s;
  else
    pc_value_free(s);
  return rc;
}

/* _codecs.encode(text, 'latin1'): the protocol 0-2 form of bytes. */
static int make_encoded_bytes(dec *d, const pc_value *args, pc_value **out) {
  size_t nargs, n = 0, k = 0, enc_len = 0;
  pc_value *const *a = pc__seq_items(args, &nargs);
  const unsigned char *s = NULL;
  unsigned char *buf = NULL;
  int rc = 0;
  if (nargs != 2 || pc__type(a[0]) != PC_TYPE_STR ||
      pc__type(a[1]) != PC_TYPE_STR) {
    rc = fail(d, PC_EUNSAFE, "_codecs.encode() not called as (str, 'latin1')");
  } else {
    const char *enc = pc__strbuf(a[1], &enc_len);
    if (!line_is((const unsigned char *)enc, enc_len, "latin1"))
      rc = fail(d, PC_EUNSAFE,
                "_codecs.encode() with an encoding other than "
                "'latin1'");
  }
  if (rc == 0) {
    s = (const unsigned char *)pc__strbuf(a[0], &n);
    buf = malloc(n + 1);
    if (buf == NULL)
      rc = fail_nomem(d);
  }
  /* The text is valid UTF-8: code points up to U+00FF are one byte or
   * 0xc2/0xc3 and one continuation byte. */
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (s[i] < 0x80) {
      buf[k++] = s[i];
    } else if ((s[i] == 0xc2 || s[i] == 0xc3) && i + 1 < n) {
      buf[k++] = (unsigned char)(((s[i] & 0x03) << 6) | (s[i + 1] & 0x3f));
      i++;
    } else {
      rc = fail(d, PC_EPROTO, "text for bytes has characters above U+00FF");
    }
  }
  if (rc == 0 && pc__bytes_new(buf, k, out) < 0)
    rc = fail_nomem(d);
  free(buf);
  return rc;
}

static int load_reduce(dec *d) {
  pc_value *args = NULL, *callable = NULL, *v = NULL;
  int rc = 0;
  if (d->sp < fence(d) + 2) {
    rc = underflow(d);
  } else {
    args = d->stack[d->sp - 1];
    callable = d->stack[d->sp - 2];
    if (!is_marker(callable))
      rc = fail(d, PC_EUNSAFE,
                "calling a %s (only set, frozenset, bytes and "
                "_codecs.encode of data are allowed)",
                pc_type_name(pc__type(callable)));
    else if (pc__type(args) != PC_TYPE_TUPLE)
      rc = fail(d, PC_EPROTO, "arguments are not a tuple");
  }
  if (rc == 0) {
    switch (MARKER_KIND(callable)) {
    case G_SET:
      rc = make_set(d, PC_TYPE_SET, args, &v);
      break;
    case G_FROZENSET:
      rc = make_set(d, PC_TYPE_FROZENSET, args, &v);
      break;
    case G_BYTES:
      if (pc_value_len(args) != 0)
        rc = fail(d, PC_EUNSAFE, "bytes() with arguments");
      else
        rc = pc__bytes_new(NULL, 0, &v);
      break;
    case G_ENCODE:
      rc = make_encoded_bytes(d, args, &v);
      break;
    }
  }
  if (rc == 0) {
    drop_from(d, d->sp - 2); /* the callable is immortal, args released */
    rc = push(d, v);
  }
  return rc;
}

/* ---------------------------------------------------------------- containers */
/* (The builders refuse global markers among the items themselves.) */
static int build_seq(dec *d, bool tuple, size_t from) {
  size_t n = d->sp - from;
  pc_value *v = NULL;
  int rc = 0;
  if (tuple) {
    rc = pc__tuple_new_steal(d->stack + from, n, &v);
  } else {
    v = pc__list_new();
    rc = v == NULL ? -ENOMEM : pc__list_extend_steal(v, d->stack + from, n);
    if (rc < 0)
      pc_value_free(v);
  }
  if (rc == 0) {
    d->sp = from; /* the items now belong to v */
    rc = push(d, v);
  } else {
    rc = builder_fail(d, rc, "item");
  }
  return rc;
}

static int fill_dict(dec *d, pc_value *dict, size_t from) {
  int rc = check_data(d, from);
  if (rc == 0 && (d->sp - from) % 2 != 0)
    rc = fail(d, PC_EPROTO, "odd number of items for a dict");
  for (size_t i = from; i < d->sp && rc == 0; i += 2) {
    rc = pc__dict_set_steal(dict, d->stack[i], d->stack[i + 1]);
    if (rc < 0) {
      rc = builder_fail(d, rc, "dict key");
    } else {
      d->stack[i] = NULL;
      d->stack[i + 1] = NULL;
    }
  }
  drop_from(d, from);
  return rc;
}

static int fill_set(dec *d, pc_value *set, size_t from) {
  int rc = check_data(d, from);
  for (size_t i = from; i < d->sp && rc == 0; i++) {
    rc = pc__set_add_steal(set, d->stack[i]);
    if (rc < 0)
      rc = builder_fail(d, rc, "set element");
    else
      d->stack[i] = NULL;
  }
  drop_from(d, from);
  return rc;
}

static int new_map_from(dec *d, pc_type type, size_t from) {
  pc_value *m = pc__map_new(type);
  int rc;
  if (m == NULL)
    rc = fail_nomem(d);
  else if (type == PC_TYPE_DICT)
    rc = fill_dict(d, m, from);
  else
    rc = fill_set(d, m, from);
  if (rc == 0)
    rc = push(d, m);
  else
    pc_value_free(m);
  return rc;
}

static int append_items(dec *d, size_t mark) {
  pc_value *list;
  int rc = target(d, mark, PC_TYPE_LIST, &list);
  if (rc == 0) {
    rc = pc__list_extend_steal(list, d->stack + mark, d->sp - mark);
    if (rc < 0)
      rc = builder_fail(d, rc, "item");
    else
      d->sp = mark;
  }
  return rc;
}

/* ---------------------------------------------------------------- the loop */
static int push_int(dec *d, int64_t i) { return push(d, pc__small(i)); }

/* Decodes a run of BININT1/BININT2/BININT opcodes starting at d->p - 1
 * without going round the main loop for each: the items of a list of ints.
 * Stops at anything else (or when the stack is full), leaving it to the
 * main loop. */
static void int_run(dec *d) {
  const unsigned char *p = d->p - 1, *end = d->end;
  pc_value **sp = d->stack + d->sp, **cap = d->stack + d->stack_cap;
  while (sp < cap && p < end) {
    if (p[0] == OP_BININT1 && end - p >= 2) {
      *sp++ = pc__small(p[1]);
      p += 2;
    } else if (p[0] == OP_BININT2 && end - p >= 3) {
      *sp++ = pc__small((int64_t)p[1] | (int64_t)p[2] << 8);
      p += 3;
    } else if (p[0] == OP_BININT && end - p >= 5) {
      *sp++ = pc__small((int32_t)(uint32_t)le_uint(p + 1, 4));
      p += 5;
    } else {
      break;
    }
  }
  d->p = p;
  d->sp = (size_t)(sp - d->stack);
}

static int push_bytes_op(dec *d, int lenbytes, int kind) {
  size_t n = 0;
  pc_value *v = NULL;
  const unsigned char *s = d->p;
  int rc = read_len(d, lenbytes, &n);
  if (rc == 0) {
    s = d->p;
    d->p += n;
    if (kind == PC_TYPE_BYTES) {
      rc = pc__bytes_new(s, n, &v);
    } else if (kind == PC_TYPE_STR) {
      rc = pc__str_new((const char *)s, n, false, &v);
    } else { /* a Python 2 str, read as ASCII */
      bool ascii = true;
      for (size_t i = 0; i < n; i++)
        ascii = ascii && s[i] < 0x80;
      rc = ascii ? pc__str_new((const char *)s, n, true, &v) : -EINVAL;
    }
    rc = push_new(d, rc, v,
                  kind == PC_TYPE_STR ? "invalid UTF-8" : "non-ASCII string");
  }
  return rc;
}

static int run(dec *d, pc_value **out) {
  int rc = 0;
  bool stop = false;
  while (rc == 0 && !stop) {
    const unsigned char *a = d->p;
    size_t mark = 0, idx = 0;
    if (d->p >= d->end) {
      d->op = -1;
      d->op_off = (size_t)(d->p - d->start);
      rc = fail(d, PC_EPROTO, "pickle data was truncated (no STOP)");
      break;
    }
    d->op_off = (size_t)(d->p - d->start);
    d->op = *d->p++;
    switch (d->op) {
    case OP_BININT1:
    case OP_BININT2:
    case OP_BININT: {
      size_t before = d->sp;
      int_run(d);
      if (d->sp != before)
        break;
      /* Nothing decoded (truncated, or the stack is full): one at a time,
       * which reports the error or grows the stack. */
      d->p = d->start + d->op_off + 1;
      if (d->op == OP_BININT1 && (rc = need(d, 1, &a)) == 0)
        rc = push_int(d, a[0]);
      else if (d->op == OP_BININT2 && (rc = need(d, 2, &a)) == 0)
        rc = push_int(d, (int64_t)le_uint(a, 2));
      else if (d->op == OP_BININT && (rc = need(d, 4, &a)) == 0)
        rc = push_int(d, (int32_t)(uint32_t)le_uint(a, 4));
      break;
    }
    case OP_MEMOIZE:
      rc = memo_put(d, d->memo_count);
      break;
    case OP_BINPUT:
      if ((rc = need(d, 1, &a)) == 0)
        rc = memo_put(d, a[0]);
      break;
    case OP_LONG_BINPUT:
      if ((rc = need(d, 4, &a)) == 0)
        rc = memo_put(d, (size_t)le_uint(a, 4));
      break;
    case OP_PUT:
      if ((rc = text_index(d, &idx)) == 0)
        rc = memo_put(d, idx);
      break;
    case OP_BINGET:
      if ((rc = need(d, 1, &a)) == 0)
        rc = memo_get(d, a[0]);
      break;
    case OP_LONG_BINGET:
      if ((rc = need(d, 4, &a)) == 0)
        rc = memo_get(d, (size_t)le_uint(a, 4));
      break;
    case OP_GET:
      if ((rc = text_index(d, &idx)) == 0)
        rc = memo_get(d, idx);
      break;
    case OP_SHORT_BINUNICODE:
      rc = push_bytes_op(d, 1, PC_TYPE_STR);
      break;
    case OP_BINUNICODE:
      rc = push_bytes_op(d, 4, PC_TYPE_STR);
      break;
    case OP_BINUNICODE8:
      rc = push_bytes_op(d, 8, PC_TYPE_STR);
      break;
    case OP_SHORT_BINBYTES:
      rc = push_bytes_op(d, 1, PC_TYPE_BYTES);
      break;
    case OP_BINBYTES:
      rc = push_bytes_op(d, 4, PC_TYPE_BYTES);
      break;
    case OP_BINBYTES8:
    case OP_BYTEARRAY8:
      rc = push_bytes_op(d, 8, PC_TYPE_BYTES);
      break;
    case OP_SHORT_BINSTRING:
      rc = push_bytes_op(d, 1, -1);
      break;
    case OP_BINSTRING:
      if (d->end - d->p >= 4 && (d->p[3] & 0x80))
        rc = fail(d, PC_EPROTO, "negative byte count");
      else
        rc = push_bytes_op(d, 4, -1);
      break;
    case OP_MARK:
      if (d->nmarks == d->marks_cap)
        rc = grow(d, (void **)&d->marks, &d->marks_cap, sizeof *d->marks,
                  d->marks_inline);
      if (rc == 0)
        d->marks[d->nmarks++] = d->sp;
      break;
    case OP_APPENDS:
      if ((rc = pop_mark(d, &mark)) == 0)
        rc = append_items(d, mark);
      break;
    case OP_APPEND:
      if (d->sp <= fence(d) + 1)
        rc = underflow(d);
      else
        rc = append_items(d, d->sp - 1);
      break;
    case OP_SETITEMS:
    case OP_SETITEM: {
      pc_value *dict;
      if (d->op == OP_SETITEMS)
        rc = pop_mark(d, &mark);
      else if (d->sp < fence(d) + 3)
        rc = underflow(d);
      else
        mark = d->sp - 2;
      if (rc == 0)
        rc = target(d, mark, PC_TYPE_DICT, &dict);
      if (rc == 0)
        rc = fill_dict(d, dict, mark);
      break;
    }
    case OP_ADDITEMS: {
      pc_value *set;
      if ((rc = pop_mark(d, &mark)) == 0)
        rc = target(d, mark, PC_TYPE_SET, &set);
      if (rc == 0)
        rc = fill_set(d, set, mark);
      break;
    }
    case OP_EMPTY_LIST: {
      pc_value *v = pc__list_new();
      rc = v == NULL ? fail_nomem(d) : push(d, v);
      break;
    }
    case OP_EMPTY_DICT:
    case OP_EMPTY_SET: {
      pc_value *v =
          pc__map_new(d->op == OP_EMPTY_DICT ? PC_TYPE_DICT : PC_TYPE_SET);
      rc = v == NULL ? fail_nomem(d) : push(d, v);
      break;
    }
    case OP_EMPTY_TUPLE:
      rc = build_seq(d, true, d->sp);
      break;
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3: {
      size_t n = (size_t)(d->op - OP_TUPLE1 + 1);
      if (d->sp < fence(d) + n)
        rc = underflow(d);
      else
        rc = build_seq(d, true, d->sp - n);
      break;
    }
    case OP_TUPLE:
    case OP_LIST:
      if ((rc = pop_mark(d, &mark)) == 0)
        rc = build_seq(d, d->op == OP_TUPLE, mark);
      break;
    case OP_DICT:
      if ((rc = pop_mark(d, &mark)) == 0)
        rc = new_map_from(d, PC_TYPE_DICT, mark);
      break;
    case OP_FROZENSET:
      if ((rc = pop_mark(d, &mark)) == 0)
        rc = new_map_from(d, PC_TYPE_FROZENSET, mark);
      break;
    case OP_NONE:
      rc = push(d, pc_value_none());
      break;
    case OP_NEWTRUE:
    case OP_NEWFALSE:
      rc = push(d, pc_value_bool(d->op == OP_NEWTRUE));
      break;
    case OP_BINFLOAT:
      if ((rc = need(d, 8, &a)) == 0) {
        uint64_t bits = 0;
        double x;
        pc_value *v = NULL;
        for (int k = 0; k < 8; k++)
          bits = (bits << 8) | a[k];
        memcpy(&x, &bits, sizeof x);
        rc = pc__float_new(x, &v) < 0 ? fail_nomem(d) : push(d, v);
      }
      break;
    case OP_LONG1:
    case OP_LONG4: {
      size_t n;
      pc_value *v = NULL;
      if (d->op == OP_LONG4 && d->end - d->p >= 4 && (d->p[3] & 0x80))
        rc = fail(d, PC_EPROTO, "negative byte count");
      else
        rc = read_len(d, d->op == OP_LONG1 ? 1 : 4, &n);
      if (rc == 0) {
        rc = pc__int_from_le(d->p, n, &v) < 0 ? fail_nomem(d) : push(d, v);
        d->p += n;
      }
      break;
    }
    case OP_INT:
      rc = load_text_int(d, false);
      break;
    case OP_LONG:
      rc = load_text_int(d, true);
      break;
    case OP_FLOAT:
      rc = load_text_float(d);
      break;
    case OP_UNICODE:
      rc = load_unicode(d);
      break;
    case OP_STRING:
      rc = load_string(d);
      break;
    case OP_FRAME: {
      size_t n;
      rc = read_len(d, 8, &n); /* only checks that the frame is there */
      break;
    }
    case OP_PROTO:
      if ((rc = need(d, 1, &a)) == 0 && a[0] > PC_PICKLE_HIGHEST_PROTOCOL)
        rc = fail(d, PC_EPROTO, "unsupported pickle protocol %u", a[0]);
      break;
    case OP_POP:
      if (d->nmarks > 0 && d->marks[d->nmarks - 1] == d->sp)
        d->nmarks--;
      else if (d->sp <= fence(d))
        rc = underflow(d);
      else
        drop_from(d, d->sp - 1);
      break;
    case OP_POP_MARK:
      if ((rc = pop_mark(d, &mark)) == 0)
        drop_from(d, mark);
      break;
    case OP_DUP:
      if (d->sp <= fence(d)) {
        rc = underflow(d);
      } else if (++d->new_refs > MAX_NEW_REFS) {
        rc = fail(d, PC_ELIMIT, "too many references");
      } else {
        pc_value *v = d->stack[d->sp - 1];
        seal(v);
        rc = push(d, pc__ref(v));
      }
      break;
    case OP_GLOBAL:
      rc = load_global(d);
      break;
    case OP_REDUCE:
      rc = load_reduce(d);
      break;
    case OP_STOP:
      if (d->sp != 1 || d->nmarks != 0)
        rc = fail(d, PC_EPROTO,
                  "STOP with %zu values and %zu marks on the "
                  "stack (expected one value)",
                  d->sp, d->nmarks);
      else if (d->p != d->end)
        rc =
            fail(d, PC_EPROTO, "%zu bytes after STOP", (size_t)(d->end - d->p));
      else if (is_marker(d->stack[0]))
        rc = fail(d, PC_EUNSAFE, "the result is a global, not data");
      if (rc == 0) {
        *out = d->stack[0];
        d->sp = 0;
      }
      stop = true;
      break;
    case OP_PERSID:
    case OP_BINPERSID:
    case OP_BUILD:
    case OP_INST:
    case OP_OBJ:
    case OP_NEWOBJ:
    case OP_NEWOBJ_EX:
    case OP_EXT1:
    case OP_EXT2:
    case OP_EXT4:
    case OP_STACK_GLOBAL:
    case OP_NEXT_BUFFER:
    case OP_READONLY_BUFFER:
      rc = fail(d, PC_EUNSAFE,
                "refused: it imports, calls or builds objects outside the "
                "data subset");
      break;
    default:
      rc = fail(d, PC_EPROTO, "invalid opcode 0x%02x", (unsigned)d->op);
      break;
    }
  }
  return rc;
}

int pc_pickle_loads(const void *data, size_t len, pc_value **out,
                    pc_pickle_error *err) {
  dec d; /* about 1 KiB, inline stacks included: no allocation for small
          * pickles */
  pc_value *v = NULL;
  int rc = 0;
  d.start = data;
  d.p = data;
  d.end = d.start + len;
  d.op_off = 0;
  d.op = -1;
  d.stack = d.stack_inline;
  d.sp = 0;
  d.stack_cap = STACK_INLINE;
  d.marks = d.marks_inline;
  d.nmarks = 0;
  d.marks_cap = MARKS_INLINE;
  d.memo = d.memo_inline;
  d.memo_cap = MEMO_INLINE;
  d.memo_count = 0;
  /* Python numbers memo entries 0, 1, 2, ...: each needs an opcode, so a
   * valid index is below the input's length (plus BINPUT's 256 for tiny
   * inputs). This bounds the memo's memory by the input's size. */
  d.memo_limit = len < SIZE_MAX / sizeof(pc_value *) - 256
                     ? len + 256
                     : SIZE_MAX / sizeof(pc_value *);
  d.new_refs = 0;
  d.err = err;
  memset(d.memo_inline, 0, sizeof d.memo_inline);

  if ((data == NULL && len > 0) || out == NULL)
    rc = fail(&d, -EINVAL, "invalid arguments");
  else
    rc = run(&d, &v);

  drop_from(&d, 0);
  for (size_t i = 0; i < d.memo_cap && d.memo_count > 0; i++) {
    if (d.memo[i] != NULL) {
      pc_value_free(d.memo[i]);
      d.memo_count--;
    }
  }
  if (d.stack != d.stack_inline)
    free(d.stack);
  if (d.marks != d.marks_inline)
    free(d.marks);
  if (d.memo != d.memo_inline)
    free(d.memo);
  if (rc == 0)
    *out = v;
  return rc;
}
