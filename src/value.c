/* SPDX-License-Identifier: MIT */
/* pc_value: layout, construction, access, containers, hashing, equality and
 * release. Everything outside this file sees values through internal.h. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

/* ---------------------------------------------------------------- layout
 * Every heap value starts with the common header (struct pc_value). Small
 * ints never reach the heap (see pc__small). */
typedef struct pfloat {
  pc_value h;
  double d;
} pfloat;

/* str and bytes: the text follows the struct, NUL-terminated, so one
 * allocation holds everything. */
typedef struct pstr {
  pc_value h;
  size_t len; /* bytes */
} pstr;

/* Ints outside the immediate range: shortest two's complement,
 * little-endian, following the struct. */
typedef struct pbig {
  pc_value h;
  size_t len;
} pbig;

/* list and tuple. A tuple's items follow the struct. While a value is being
 * released, `next` links it into the list of containers still to empty. */
typedef struct pseq {
  pc_value h;
  size_t len;
  union {
    size_t cap;
    pc_value *next;
  } u;
  pc_value **items;
} pseq;

/* dict, set and frozenset: entries in insertion order, plus a hash index
 * (open addressing over entry numbers + 1) once they hold more than
 * MAP_LINEAR entries. Small maps keep their entries inside the allocation. */
#define MAP_INLINE 4
#define MAP_LINEAR 8
typedef struct pmap {
  pc_value h;
  size_t len;
  union {
    size_t cap;
    pc_value *next;
  } u;
  pc__entry *entries;
  uint32_t *index; /* NULL while len <= MAP_LINEAR */
  size_t index_mask;
  pc__entry inl[MAP_INLINE];
} pmap;

static char *str_data(const pstr *s) { return (char *)(uintptr_t)(s + 1); }
static unsigned char *big_data(const pbig *b) {
  return (unsigned char *)(uintptr_t)(b + 1);
}

static bool is_seq_type(unsigned t) {
  return t == PC_TYPE_LIST || t == PC_TYPE_TUPLE;
}
static bool is_map_type(unsigned t) {
  return t == PC_TYPE_DICT || t == PC_TYPE_SET || t == PC_TYPE_FROZENSET;
}
static bool is_container_type(unsigned t) {
  return is_seq_type(t) || is_map_type(t);
}

/* ---------------------------------------------------------------- singletons */
#define IMMORTAL_HDR(t)                                                        \
  { 0, (uint8_t)(t), PC__VF_IMMORTAL, 0 }

static pc_value none_v = IMMORTAL_HDR(PC_TYPE_NONE);
static pc_value true_v = IMMORTAL_HDR(PC_TYPE_BOOL);
static pc_value false_v = IMMORTAL_HDR(PC_TYPE_BOOL);
/* The empty str and bytes carry their terminating NUL right after the
 * struct, as allocated ones do. */
static struct {
  pstr s;
  char nul[8];
} empty_str = {{IMMORTAL_HDR(PC_TYPE_STR), 0}, {0}},
  empty_bytes = {{IMMORTAL_HDR(PC_TYPE_BYTES), 0}, {0}};
static pseq empty_tuple = {IMMORTAL_HDR(PC_TYPE_TUPLE), 0, {0}, NULL};

static pc_value *fail_null(int err) {
  errno = err;
  return NULL;
}

/* ---------------------------------------------------------------- type */
pc_type pc_value_type(const pc_value *v) { return (pc_type)pc__type(v); }

const char *pc_type_name(pc_type t) {
  static const char *const names[] = {"NoneType", "bool",  "int",      "float",
                                      "str",      "bytes", "list",     "tuple",
                                      "dict",     "set",   "frozenset"};
  const char *s = "?";
  if ((unsigned)t < sizeof names / sizeof names[0])
    s = names[t];
  return s;
}

/* ---------------------------------------------------------------- release */
static void release_child(pc_value *c, pc_value **pending);

static pc_value **link_of(pc_value *v) {
  return is_seq_type(v->type) ? &((pseq *)v)->u.next : &((pmap *)v)->u.next;
}

/* Frees v (whose count reached zero) and everything only it held, without
 * recursion: containers whose count drops to zero are pushed on a chain
 * linked through their `next` field (their capacity is no longer needed)
 * and emptied in turn, so any depth takes constant stack. */
static void destroy(pc_value *v) {
  pc_value *pending = NULL;
  while (v != NULL) {
    if (is_seq_type(v->type)) {
      pseq *s = (pseq *)v;
      if (v->flags & PC__VF_HEAPITEMS) {
        for (size_t i = 0; i < s->len; i++)
          release_child(s->items[i], &pending);
      }
      if (v->type == PC_TYPE_LIST)
        free(s->items);
    } else if (is_map_type(v->type)) {
      pmap *m = (pmap *)v;
      for (size_t i = 0; i < m->len; i++) {
        release_child(m->entries[i].key, &pending);
        if (m->entries[i].value != NULL)
          release_child(m->entries[i].value, &pending);
      }
      if (m->entries != m->inl)
        free(m->entries);
      free(m->index);
    }
    free(v);
    v = pending;
    if (v != NULL)
      pending = *link_of(v);
  }
}

/* Drops one reference; true when it was the last (v must then be freed). */
static bool unref(pc_value *v) {
  bool last = false;
  /* acq_rel rather than release + an acquire fence: the same ordering, and
   * one that ThreadSanitizer understands (gcc refuses fences under it). */
  if (pc__is_counted(v) &&
      atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
    last = true;
  return last;
}

static void release_child(pc_value *c, pc_value **pending) {
  if (!unref(c)) {
    /* still referenced elsewhere */
  } else if (is_container_type(c->type)) {
    *link_of(c) = *pending;
    *pending = c;
  } else {
    free(c);
  }
}

void pc_value_free(pc_value *v) {
  if (v != NULL && unref(v))
    destroy(v);
}

pc_value *pc_value_ref(pc_value *v) {
  if (v != NULL)
    pc__ref(v);
  return v;
}

/* ---------------------------------------------------------------- scalars */
static void *alloc_value(size_t size, pc_type type) {
  pc_value *v = malloc(size);
  if (v != NULL) {
    atomic_init(&v->refs, 1);
    v->type = (uint8_t)type;
    v->flags = 0;
    v->depth = 0;
  }
  return v;
}

pc_value *pc_value_none(void) { return &none_v; }

pc_value *pc_value_bool(bool b) { return b ? &true_v : &false_v; }

pc_value *pc_value_int(int64_t i) {
  pc_value *v;
  if (i >= PC__SMALL_MIN && i <= PC__SMALL_MAX) {
    v = pc__small(i);
  } else {
    unsigned char le[8];
    for (int k = 0; k < 8; k++)
      le[k] = (unsigned char)((uint64_t)i >> (8 * k));
    int rc = pc__int_from_le(le, 8, &v);
    if (rc < 0)
      v = fail_null(-rc);
  }
  return v;
}

pc_value *pc_value_uint(uint64_t u) {
  pc_value *v;
  if (u <= (uint64_t)INT64_MAX) {
    v = pc_value_int((int64_t)u);
  } else {
    unsigned char le[9];
    for (int k = 0; k < 8; k++)
      le[k] = (unsigned char)(u >> (8 * k));
    le[8] = 0;
    int rc = pc__int_from_le(le, 9, &v);
    if (rc < 0)
      v = fail_null(-rc);
  }
  return v;
}

pc_value *pc_value_int_from_bytes(const void *bytes, size_t len,
                                  bool is_signed) {
  pc_value *v = NULL;
  unsigned char *tmp = NULL;
  int rc;
  if (bytes == NULL && len > 0) {
    rc = -EINVAL;
  } else if (is_signed || len == 0) {
    rc = pc__int_from_le(bytes, len, &v);
  } else {
    /* Unsigned: a zero byte on top makes it a non-negative two's
     * complement number. */
    tmp = malloc(len + 1);
    if (tmp == NULL) {
      rc = -ENOMEM;
    } else {
      memcpy(tmp, bytes, len);
      tmp[len] = 0;
      rc = pc__int_from_le(tmp, len + 1, &v);
    }
  }
  free(tmp);
  return rc < 0 ? fail_null(-rc) : v;
}

pc_value *pc_value_int_parse(const char *text, size_t len) {
  pc_value *v = NULL;
  int rc = text == NULL ? -EINVAL : pc__int_from_decimal(text, len, &v);
  return rc < 0 ? fail_null(rc == -ENOMEM ? ENOMEM : EINVAL) : v;
}

int pc__float_new(double d, pc_value **out) {
  pfloat *f = alloc_value(sizeof *f, PC_TYPE_FLOAT);
  int rc = -ENOMEM;
  if (f != NULL) {
    f->d = d;
    *out = &f->h;
    rc = 0;
  }
  return rc;
}

pc_value *pc_value_float(double d) {
  pc_value *v = NULL;
  int rc = pc__float_new(d, &v);
  return rc < 0 ? fail_null(-rc) : v;
}

double pc__float_val(const pc_value *v) { return ((const pfloat *)v)->d; }

/* Big ints: the caller hands over the shortest representation. */
static int big_new(const unsigned char *p, size_t n, pc_value **out) {
  pbig *b = NULL;
  int rc = -ENOMEM;
  if (n <= SIZE_MAX - sizeof *b)
    b = alloc_value(sizeof *b + n, PC_TYPE_INT);
  if (b != NULL) {
    b->len = n;
    memcpy(big_data(b), p, n);
    *out = &b->h;
    rc = 0;
  }
  return rc;
}

int pc__int_from_le(const unsigned char *p, size_t n, pc_value **out) {
  int rc = 0;
  /* Drop redundant sign bytes. */
  while (n > 1 && ((p[n - 1] == 0x00 && (p[n - 2] & 0x80) == 0) ||
                   (p[n - 1] == 0xff && (p[n - 2] & 0x80) != 0)))
    n--;
  if (n == 0) {
    *out = pc__small(0);
  } else if (n <= 8) {
    uint64_t u = (p[n - 1] & 0x80) ? UINT64_MAX : 0;
    for (size_t k = 0; k < n; k++) {
      u &= ~((uint64_t)0xff << (8 * k));
      u |= (uint64_t)p[k] << (8 * k);
    }
    int64_t i = (int64_t)u;
    if (i >= PC__SMALL_MIN && i <= PC__SMALL_MAX)
      *out = pc__small(i);
    else
      rc = big_new(p, n, out);
  } else {
    rc = big_new(p, n, out);
  }
  return rc;
}

const unsigned char *pc__bigint_bytes(const pc_value *v, size_t *n) {
  const pbig *b = (const pbig *)v;
  *n = b->len;
  return big_data(b);
}

/* Writes the shortest two's complement of i into le[0..8] and returns its
 * length. */
static size_t small_to_le(int64_t i, unsigned char le[8]) {
  size_t n = 8;
  for (int k = 0; k < 8; k++)
    le[k] = (unsigned char)((uint64_t)i >> (8 * k));
  while (n > 1 && ((le[n - 1] == 0x00 && (le[n - 2] & 0x80) == 0) ||
                   (le[n - 1] == 0xff && (le[n - 2] & 0x80) != 0)))
    n--;
  return n;
}

bool pc__utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  bool ok = true;
  while (i < n && ok) {
    /* ASCII runs, eight bytes at a time. */
    while (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & UINT64_C(0x8080808080808080))
        break;
      i += 8;
    }
    if (i >= n)
      break;
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c == 0xe0)
        lo = 0xa0; /* no overlong forms; surrogates (0xed 0xa0..) pass */
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c == 0xf0)
        lo = 0x90;
      else if (c == 0xf4)
        hi = 0x8f;
    } else {
      ok = false;
      break;
    }
    if (n - i <= need) {
      ok = false;
      break;
    }
    if (s[i + 1] < lo || s[i + 1] > hi)
      ok = false;
    for (size_t k = 2; k <= need && ok; k++)
      if ((s[i + k] & 0xc0) != 0x80)
        ok = false;
    i += need + 1;
  }
  return ok;
}

static int strbuf_new(pc_type type, const void *p, size_t n, pc_value **out) {
  pstr *s = NULL;
  int rc = -ENOMEM;
  if (n == 0) {
    *out = type == PC_TYPE_STR ? &empty_str.s.h : &empty_bytes.s.h;
    rc = 0;
  } else {
    if (n < SIZE_MAX - sizeof *s)
      s = alloc_value(sizeof *s + n + 1, type);
    if (s != NULL) {
      s->len = n;
      memcpy(str_data(s), p, n);
      str_data(s)[n] = '\0';
      *out = &s->h;
      rc = 0;
    }
  }
  return rc;
}

int pc__str_new(const char *s, size_t n, bool utf8_checked, pc_value **out) {
  int rc = -EINVAL;
  if (utf8_checked || pc__utf8_valid((const unsigned char *)s, n))
    rc = strbuf_new(PC_TYPE_STR, s, n, out);
  return rc;
}

int pc__str_new_latin1(const unsigned char *p, size_t n, pc_value **out) {
  size_t extra = 0;
  int rc = 0;
  for (size_t i = 0; i < n; i++)
    extra += p[i] >> 7;
  if (extra == 0) {
    rc = strbuf_new(PC_TYPE_STR, p, n, out);
  } else {
    pstr *s = NULL;
    if (n < (SIZE_MAX - sizeof *s) / 2)
      s = alloc_value(sizeof *s + n + extra + 1, PC_TYPE_STR);
    if (s == NULL) {
      rc = -ENOMEM;
    } else {
      unsigned char *d = (unsigned char *)str_data(s);
      for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x80) {
          *d++ = p[i];
        } else {
          *d++ = (unsigned char)(0xc0 | (p[i] >> 6));
          *d++ = (unsigned char)(0x80 | (p[i] & 0x3f));
        }
      }
      *d = 0;
      s->len = n + extra;
      *out = &s->h;
    }
  }
  return rc;
}

int pc__bytes_new(const void *p, size_t n, pc_value **out) {
  return strbuf_new(PC_TYPE_BYTES, p, n, out);
}

const char *pc__strbuf(const pc_value *v, size_t *n) {
  const pstr *s = (const pstr *)v;
  *n = s->len;
  return str_data(s);
}

pc_value *pc_value_strn(const char *s, size_t len) {
  pc_value *v = NULL;
  int rc = s == NULL && len > 0 ? -EINVAL : pc__str_new(s, len, false, &v);
  return rc < 0 ? fail_null(-rc) : v;
}

pc_value *pc_value_str(const char *s) {
  return s == NULL ? fail_null(EINVAL) : pc_value_strn(s, strlen(s));
}

pc_value *pc_value_bytes(const void *p, size_t len) {
  pc_value *v = NULL;
  int rc = p == NULL && len > 0 ? -EINVAL : pc__bytes_new(p, len, &v);
  return rc < 0 ? fail_null(-rc) : v;
}

/* ---------------------------------------------------------------- scalar access */
int pc_value_get_bool(const pc_value *v, bool *out) {
  int rc = -EINVAL;
  if (v != NULL && pc__type(v) == PC_TYPE_BOOL) {
    *out = v == &true_v;
    rc = 0;
  }
  return rc;
}

int pc_value_get_int(const pc_value *v, int64_t *out) {
  int rc = -EINVAL;
  if (v == NULL) {
    rc = -EINVAL;
  } else if (pc__is_small(v)) {
    *out = pc__small_val(v);
    rc = 0;
  } else if (v->type == PC_TYPE_BOOL) {
    *out = v == &true_v;
    rc = 0;
  } else if (v->type == PC_TYPE_INT) {
    const pbig *b = (const pbig *)v;
    const unsigned char *p = big_data(b);
    if (b->len > 8) {
      rc = -ERANGE;
    } else {
      uint64_t u = (p[b->len - 1] & 0x80) ? UINT64_MAX : 0;
      for (size_t k = 0; k < b->len; k++) {
        u &= ~((uint64_t)0xff << (8 * k));
        u |= (uint64_t)p[k] << (8 * k);
      }
      *out = (int64_t)u;
      rc = 0;
    }
  }
  return rc;
}

int pc_value_get_float(const pc_value *v, double *out) {
  int rc = -EINVAL;
  if (v != NULL && pc__type(v) == PC_TYPE_FLOAT) {
    *out = ((const pfloat *)v)->d;
    rc = 0;
  }
  return rc;
}

ssize_t pc_value_int_to_bytes(const pc_value *v, void *buf, size_t cap) {
  ssize_t rc = -EINVAL;
  unsigned char le[8];
  const unsigned char *p = NULL;
  size_t n = 0;
  if (v == NULL) {
    rc = -EINVAL;
  } else if (pc__is_small(v)) {
    n = small_to_le(pc__small_val(v), le);
    p = le;
  } else if (v->type == PC_TYPE_BOOL) {
    n = 1;
    le[0] = v == &true_v;
    p = le;
  } else if (v->type == PC_TYPE_INT) {
    p = pc__bigint_bytes(v, &n);
  }
  if (p != NULL) {
    if (buf != NULL && cap >= n)
      memcpy(buf, p, n);
    rc = (ssize_t)n;
  }
  return rc;
}

const char *pc_value_str_data(const pc_value *v, size_t *len) {
  const char *s = NULL;
  if (v != NULL && pc__type(v) == PC_TYPE_STR) {
    s = str_data((const pstr *)v);
    if (len != NULL)
      *len = ((const pstr *)v)->len;
  }
  return s;
}

const void *pc_value_bytes_data(const pc_value *v, size_t *len) {
  const char *s = NULL;
  if (v != NULL && pc__type(v) == PC_TYPE_BYTES) {
    s = str_data((const pstr *)v);
    if (len != NULL)
      *len = ((const pstr *)v)->len;
  }
  return s;
}

/* ---------------------------------------------------------------- sequences */
pc_value *pc__list_new(void) {
  pseq *s = alloc_value(sizeof *s, PC_TYPE_LIST);
  if (s != NULL) {
    s->len = 0;
    s->u.cap = 0;
    s->items = NULL;
    s->h.depth = 1;
  }
  return s != NULL ? &s->h : NULL;
}

pc_value *pc_value_list(void) {
  pc_value *v = pc__list_new();
  return v != NULL ? v : fail_null(ENOMEM);
}

static int seq_reserve(pseq *s, size_t extra) {
  int rc = 0;
  if (extra > s->u.cap - s->len) {
    size_t need = s->len + extra;
    size_t cap = s->u.cap < 4 ? 4 : s->u.cap;
    while (cap < need)
      cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    pc_value **items = NULL;
    if (need >= s->len && cap <= SIZE_MAX / sizeof *items)
      items = realloc(s->items, cap * sizeof *items);
    if (items == NULL) {
      rc = -ENOMEM;
    } else {
      s->items = items;
      s->u.cap = cap;
    }
  }
  return rc;
}

/* Decoder side of an insertion: seals child containers (they may no longer
 * be mutated, which is what rules out cycles) and computes the depth the
 * parent gets. The decoder's global markers are not data: PC_EUNSAFE. */
static int absorb(pc_value *parent, pc_value *const *items, size_t n,
                  unsigned *depth_io) {
  unsigned depth = *depth_io;
  uintptr_t all = 1;
  int rc = 0;
  /* Lists of ints are common: if every item is immediate (low bit set) there
   * is nothing to do, and this reduction vectorizes. */
  for (size_t i = 0; i < n; i++)
    all &= (uintptr_t)items[i];
  if (all & 1u)
    n = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    pc_value *c = items[i];
    if (pc__is_small(c))
      continue;
    parent->flags |= PC__VF_HEAPITEMS;
    if (c->type == PC__TYPE_GLOBAL) {
      rc = PC_EUNSAFE;
    } else if (is_container_type(c->type)) {
      if (c->depth + 1u > depth)
        depth = c->depth + 1u;
      if ((c->flags & PC__VF_IMMORTAL) == 0)
        c->flags |= PC__VF_SEALED;
    }
  }
  if (rc == 0 && depth > PC_VALUE_MAX_DEPTH)
    rc = PC_ELIMIT;
  else if (rc == 0)
    *depth_io = depth;
  return rc;
}

int pc__list_extend_steal(pc_value *list, pc_value *const *items, size_t n) {
  pseq *s = (pseq *)list;
  unsigned depth = list->depth;
  uint8_t flags = list->flags;
  int rc = absorb(list, items, n, &depth);
  if (rc == 0 && n > 0)
    rc = seq_reserve(s, n);
  if (rc == 0 && n > 0) {
    memcpy(s->items + s->len, items, n * sizeof *items);
    s->len += n;
    list->depth = (uint16_t)depth;
  } else {
    list->flags = flags;
  }
  return rc;
}

int pc__tuple_new_steal(pc_value *const *items, size_t n, pc_value **out) {
  pseq *s = NULL;
  int rc = 0;
  if (n == 0) {
    *out = &empty_tuple.h;
  } else {
    if (n < (SIZE_MAX - sizeof *s) / sizeof(pc_value *))
      s = alloc_value(sizeof *s + n * sizeof(pc_value *), PC_TYPE_TUPLE);
    if (s == NULL) {
      rc = -ENOMEM;
    } else {
      unsigned depth = 1;
      s->len = n;
      s->u.cap = n;
      s->items = (pc_value **)(void *)(s + 1);
      rc = absorb(&s->h, items, n, &depth);
      if (rc == 0) {
        s->h.depth = (uint16_t)depth;
        memcpy(s->items, items, n * sizeof *items);
        *out = &s->h;
      } else {
        free(s);
      }
    }
  }
  return rc;
}

pc_value *const *pc__seq_items(const pc_value *v, size_t *n) {
  const pseq *s = (const pseq *)v;
  *n = s->len;
  return s->items;
}

pc_value *pc_value_tuple(size_t n, pc_value *const *items) {
  pc_value *v = NULL;
  int rc = 0;
  if (n > 0 && items == NULL)
    rc = -EINVAL;
  for (size_t i = 0; i < n && rc == 0; i++)
    if (items[i] == NULL)
      rc = -EINVAL;
  if (rc == 0 && n == 0) {
    v = &empty_tuple.h;
  } else if (rc == 0) {
    pseq *s = NULL;
    if (n < (SIZE_MAX - sizeof *s) / sizeof(pc_value *))
      s = alloc_value(sizeof *s + n * sizeof(pc_value *), PC_TYPE_TUPLE);
    if (s == NULL) {
      rc = -ENOMEM;
    } else {
      s->len = n;
      s->u.cap = n;
      s->items = (pc_value **)(void *)(s + 1);
      for (size_t i = 0; i < n; i++) {
        s->items[i] = pc__ref(items[i]);
        if (!pc__is_small(items[i]))
          s->h.flags |= PC__VF_HEAPITEMS;
      }
      v = &s->h;
    }
  }
  return rc < 0 ? fail_null(-rc) : v;
}

pc_value *pc_value_tuple_pack(size_t n, ...) {
  pc_value *stack_items[16] = {NULL};
  pc_value **items = stack_items;
  pc_value *v = NULL;
  va_list ap;
  if (n > 16)
    items = n < SIZE_MAX / sizeof *items ? malloc(n * sizeof *items) : NULL;
  va_start(ap, n);
  for (size_t i = 0; i < n && items != NULL; i++)
    items[i] = va_arg(ap, pc_value *);
  va_end(ap);
  if (items == NULL)
    errno = ENOMEM;
  else
    v = pc_value_tuple(n, items);
  if (items != stack_items)
    free(items);
  return v;
}

static int list_check(const pc_value *list, const pc_value *item) {
  int rc = 0;
  if (list == NULL || item == NULL || pc__type(list) != PC_TYPE_LIST ||
      list == item)
    rc = -EINVAL;
  return rc;
}

int pc_value_list_append(pc_value *list, pc_value *item) {
  int rc = list_check(list, item);
  if (rc == 0)
    rc = seq_reserve((pseq *)list, 1);
  if (rc == 0) {
    pseq *s = (pseq *)list;
    s->items[s->len++] = pc__ref(item);
    if (!pc__is_small(item))
      list->flags |= PC__VF_HEAPITEMS;
  }
  return rc;
}

int pc_value_list_append_steal(pc_value *list, pc_value *item) {
  int rc = pc_value_list_append(list, item);
  pc_value_free(item);
  return rc;
}

int pc_value_list_set(pc_value *list, size_t i, pc_value *item) {
  int rc = list_check(list, item);
  if (rc == 0 && i >= ((pseq *)list)->len)
    rc = -ERANGE;
  if (rc == 0) {
    pseq *s = (pseq *)list;
    pc_value *old = s->items[i];
    s->items[i] = pc__ref(item);
    if (!pc__is_small(item))
      list->flags |= PC__VF_HEAPITEMS;
    pc_value_free(old);
  }
  return rc;
}

int pc_value_list_set_steal(pc_value *list, size_t i, pc_value *item) {
  int rc = pc_value_list_set(list, i, item);
  pc_value_free(item);
  return rc;
}

/* ---------------------------------------------------------------- hashing
 * Hashes must agree with Python equality (pc_value_equal): equal numbers hash
 * alike across bool, int and float. They are seeded per process so that a
 * peer cannot prepare colliding keys in advance. */
static uint64_t hash_seed;
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_init(void) {
  uint64_t s = 0;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
        (uint64_t)(uintptr_t)&hash_seed;
  }
  hash_seed = s | 1u;
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= UINT64_C(0xff51afd7ed558ccd);
  x ^= x >> 33;
  x *= UINT64_C(0xc4ceb9fe1a85ec53);
  x ^= x >> 33;
  return x;
}

static uint64_t seed(void) {
  pthread_once(&hash_once, hash_init);
  return hash_seed;
}

static uint64_t hash_bytes(const unsigned char *p, size_t n, uint64_t salt) {
  uint64_t h = seed() ^ salt ^ ((uint64_t)n * UINT64_C(0x9e3779b97f4a7c15));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ mix64(w)) * UINT64_C(0x100000001b3);
    h = (h << 29) | (h >> 35);
  }
  uint64_t tail = 0;
  for (size_t k = 0; i + k < n; k++)
    tail |= (uint64_t)p[i + k] << (8 * k);
  return mix64(h ^ tail ^ (n & 7));
}

static uint64_t hash_i64(int64_t i) { return mix64((uint64_t)i ^ seed()); }
static uint64_t hash_double_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return mix64(u ^ seed() ^ UINT64_C(0x5bd1e995));
}

/* Byte k of |x| for a two's complement x, streamed from k = 0 upwards
 * (carry starts at 1). */
static unsigned mag_byte(const unsigned char *p, size_t k, bool neg,
                         unsigned *carry) {
  unsigned x = p[k];
  if (neg) {
    x = (unsigned)(uint8_t)~p[k] + *carry;
    *carry = x >> 8;
    x &= 0xffu;
  }
  return x;
}

/* Whether the big int b is exactly a double, and which one. */
static bool big_as_double(const pbig *b, double *out) {
  const unsigned char *p = big_data(b);
  size_t n = b->len, lo = SIZE_MAX, hi = 0;
  bool neg = (p[n - 1] & 0x80) != 0;
  unsigned carry = 1, top = 0, bot = 0;
  bool ok = false;
  for (size_t k = 0; k < n; k++) {
    unsigned x = mag_byte(p, k, neg, &carry);
    if (x != 0) {
      if (lo == SIZE_MAX) {
        lo = k;
        bot = x;
      }
      hi = k;
      top = x;
    }
  }
  if (lo != SIZE_MAX) {
    size_t topbit = hi * 8, botbit = lo * 8;
    while (top >>= 1)
      topbit++;
    while ((bot & 1) == 0) {
      bot >>= 1;
      botbit++;
    }
    /* At most 53 significant bits (so hi - lo <= 7) and below 2^1024. */
    if (topbit - botbit < 53 && topbit < 1024) {
      uint64_t m = 0;
      carry = 1;
      for (size_t k = 0; k <= hi; k++) {
        unsigned x = mag_byte(p, k, neg, &carry);
        if (k >= lo)
          m |= (uint64_t)x << (8 * (k - lo));
      }
      double d = (double)m; /* exact: at most 53 bits */
      for (size_t k = 0; k < lo; k++)
        d *= 256.0; /* exact: powers of two, below 2^1024 */
      *out = neg ? -d : d;
      ok = true;
    }
  }
  return ok;
}

/* Whether d is an integer in int64_t's range, and which. */
static bool float_as_i64(double d, int64_t *out) {
  bool ok = false;
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
    int64_t i = (int64_t)d;
    if ((double)i == d) {
      *out = i;
      ok = true;
    }
  }
  return ok;
}

static uint64_t hash_float(double d) {
  uint64_t h;
  int64_t i;
  if (float_as_i64(d, &i))
    h = hash_i64(i);
  else
    h = hash_double_bits(d);
  return h;
}

static uint64_t hash_big(const pbig *b) {
  double d;
  int64_t i;
  uint64_t h;
  if (pc_value_get_int(&b->h, &i) == 0)
    h = hash_i64(i);
  else if (big_as_double(b, &d))
    h = hash_double_bits(d);
  else
    h = hash_bytes(big_data(b), b->len, UINT64_C(0x1b873593));
  return h;
}

/* Work budgets for hashing and comparing. A value may share one container
 * many times (a pickle's memo makes a 60-level tree of shared tuples in 126
 * bytes: 2^60 nodes to walk), so depth alone does not bound the work. Each
 * top-level call (a container operation hashing a key, pc_value_equal)
 * starts a fresh budget of node visits; running out is PC_ELIMIT. */
#define WALK_BUDGET (1L << 22)
static _Thread_local long hash_budget;
static _Thread_local long equal_budget;

int pc__value_hash(const pc_value *v, uint64_t *out, int depth) {
  int rc = 0;
  uint64_t h = 0;
  if (depth <= 1) {
    hash_budget = WALK_BUDGET;
    equal_budget = WALK_BUDGET; /* the key's lookup compares next */
  }
  if (pc__is_small(v)) {
    h = hash_i64(pc__small_val(v));
  } else {
    switch (v->type) {
    case PC_TYPE_NONE:
      h = mix64(seed() ^ UINT64_C(0x2545f4914f6cdd1d));
      break;
    case PC_TYPE_BOOL:
      h = hash_i64(v == &true_v);
      break;
    case PC_TYPE_INT:
      h = hash_big((const pbig *)v);
      break;
    case PC_TYPE_FLOAT:
      h = hash_float(((const pfloat *)v)->d);
      break;
    case PC_TYPE_STR:
    case PC_TYPE_BYTES: {
      const pstr *s = (const pstr *)v;
      h = hash_bytes((const unsigned char *)str_data(s), s->len,
                     v->type == PC_TYPE_STR ? 0 : UINT64_C(0xcc9e2d51));
      break;
    }
    case PC_TYPE_TUPLE: {
      const pseq *s = (const pseq *)v;
      hash_budget -= (long)s->len + 1;
      if (depth >= PC_VALUE_MAX_DEPTH || hash_budget < 0) {
        rc = PC_ELIMIT;
        break;
      }
      h = UINT64_C(0x27d4eb2f165667c5) ^ s->len;
      for (size_t i = 0; i < s->len && rc == 0; i++) {
        uint64_t hi;
        rc = pc__value_hash(s->items[i], &hi, depth + 1);
        h = mix64(h ^ hi) + UINT64_C(0x9e3779b97f4a7c15);
      }
      break;
    }
    case PC_TYPE_FROZENSET: {
      const pmap *m = (const pmap *)v;
      /* Order-independent: equal frozensets may list elements differently.
       * The stored element hashes are already computed. */
      if (depth >= PC_VALUE_MAX_DEPTH) {
        rc = PC_ELIMIT;
        break;
      }
      h = UINT64_C(0x165667b19e3779f9) ^ m->len;
      for (size_t i = 0; i < m->len; i++)
        h += mix64(m->entries[i].hash ^ UINT64_C(0x85ebca6b));
      h = mix64(h);
      break;
    }
    default: /* list, dict, set: unhashable, as in Python */
      rc = -EINVAL;
      break;
    }
  }
  if (rc == 0)
    *out = h;
  return rc;
}

/* ---------------------------------------------------------------- equality */
static int equal_depth(const pc_value *a, const pc_value *b, int depth);
static int map_find(const pmap *m, const pc_value *key, uint64_t hash,
                    size_t *pos);

static bool is_number(unsigned t) {
  return t == PC_TYPE_INT || t == PC_TYPE_BOOL || t == PC_TYPE_FLOAT;
}

/* Python's numeric ==. Ints are canonical (a big int never holds a value in
 * the immediate range), so equal ints have equal representations. */
static bool number_equal(const pc_value *a, const pc_value *b) {
  unsigned ta = pc__type(a), tb = pc__type(b);
  bool eq = false;
  if (ta == PC_TYPE_FLOAT && tb == PC_TYPE_FLOAT) {
    eq = ((const pfloat *)a)->d == ((const pfloat *)b)->d;
  } else if (ta == PC_TYPE_FLOAT || tb == PC_TYPE_FLOAT) {
    const pc_value *f = ta == PC_TYPE_FLOAT ? a : b;
    const pc_value *i = ta == PC_TYPE_FLOAT ? b : a;
    double d = ((const pfloat *)f)->d, bd;
    int64_t iv, dv;
    if (pc_value_get_int(i, &iv) == 0) {
      eq = float_as_i64(d, &dv) && dv == iv;
    } else if (big_as_double((const pbig *)i, &bd)) {
      eq = bd == d;
    }
  } else if (pc__is_small(a) || pc__is_small(b) || ta == PC_TYPE_BOOL ||
             tb == PC_TYPE_BOOL) {
    int64_t x, y;
    eq = pc_value_get_int(a, &x) == 0 && pc_value_get_int(b, &y) == 0 && x == y;
  } else {
    const pbig *x = (const pbig *)a, *y = (const pbig *)b;
    eq = x->len == y->len && memcmp(big_data(x), big_data(y), x->len) == 0;
  }
  return eq;
}

/* Compares two containers of the same kind (or set with frozenset). */
static int equal_containers(const pc_value *a, const pc_value *b, unsigned ta,
                            int depth) {
  int rc = 0;
  if (is_seq_type(ta)) {
    const pseq *x = (const pseq *)a, *y = (const pseq *)b;
    rc = x->len == y->len;
    for (size_t i = 0; i < x->len && rc == 1; i++)
      rc = equal_depth(x->items[i], y->items[i], depth + 1);
  } else {
    const pmap *x = (const pmap *)a, *y = (const pmap *)b;
    rc = x->len == y->len;
    for (size_t i = 0; i < x->len && rc == 1; i++) {
      size_t pos;
      int found = map_find(y, x->entries[i].key, x->entries[i].hash, &pos);
      if (found <= 0)
        rc = found;
      else if (ta == PC_TYPE_DICT)
        rc = equal_depth(x->entries[i].value, y->entries[pos].value, depth + 1);
    }
  }
  return rc;
}

static int equal_depth(const pc_value *a, const pc_value *b, int depth) {
  int rc = 0;
  if (a == NULL || b == NULL) {
    rc = a == b;
  } else if (a == b) {
    /* Identity first, as Python's containers do; a NaN compared directly
     * is unequal to itself. */
    rc = depth > 0 || pc__type(a) != PC_TYPE_FLOAT ||
         pc__float_val(a) == pc__float_val(a);
  } else {
    unsigned ta = pc__type(a), tb = pc__type(b);
    bool a_set = ta == PC_TYPE_SET || ta == PC_TYPE_FROZENSET;
    bool b_set = tb == PC_TYPE_SET || tb == PC_TYPE_FROZENSET;
    if (is_number(ta) && is_number(tb))
      rc = number_equal(a, b);
    else if (ta != tb && !(a_set && b_set))
      rc = 0;
    else if (ta == PC_TYPE_NONE)
      rc = 1;
    else if (ta == PC_TYPE_STR || ta == PC_TYPE_BYTES)
      rc = ((const pstr *)a)->len == ((const pstr *)b)->len &&
           memcmp(str_data((const pstr *)a), str_data((const pstr *)b),
                  ((const pstr *)a)->len) == 0;
    else if (depth >= PC_VALUE_MAX_DEPTH || --equal_budget < 0)
      rc = PC_ELIMIT;
    else
      rc = equal_containers(a, b, ta, depth);
  }
  return rc;
}

int pc_value_equal(const pc_value *a, const pc_value *b) {
  equal_budget = WALK_BUDGET;
  return equal_depth(a, b, 0);
}

static int identical_depth(const pc_value *a, const pc_value *b, int depth) {
  unsigned t = a != NULL ? pc__type(a) : 0;
  int rc = 0;
  if (a == b) {
    rc = 1;
  } else if (a == NULL || b == NULL || t != pc__type(b) || t == PC_TYPE_BOOL) {
    rc = 0; /* the bool singletons differ: a == b was handled above */
  } else if (t == PC_TYPE_NONE) {
    rc = 1;
  } else if (t == PC_TYPE_INT) {
    rc = number_equal(a, b);
  } else if (t == PC_TYPE_FLOAT) {
    rc = memcmp(&((const pfloat *)a)->d, &((const pfloat *)b)->d,
                sizeof(double)) == 0;
  } else if (t == PC_TYPE_STR || t == PC_TYPE_BYTES) {
    const pstr *x = (const pstr *)a, *y = (const pstr *)b;
    rc = x->len == y->len && memcmp(str_data(x), str_data(y), x->len) == 0;
  } else if (depth >= PC_VALUE_MAX_DEPTH) {
    rc = PC_ELIMIT;
  } else if (is_seq_type(t)) {
    const pseq *x = (const pseq *)a, *y = (const pseq *)b;
    rc = x->len == y->len;
    for (size_t i = 0; i < x->len && rc == 1; i++)
      rc = identical_depth(x->items[i], y->items[i], depth + 1);
  } else {
    const pmap *x = (const pmap *)a, *y = (const pmap *)b;
    rc = x->len == y->len;
    for (size_t i = 0; i < x->len && rc == 1; i++) {
      rc = identical_depth(x->entries[i].key, y->entries[i].key, depth + 1);
      if (rc == 1 && t == PC_TYPE_DICT)
        rc = identical_depth(x->entries[i].value, y->entries[i].value,
                             depth + 1);
    }
  }
  return rc;
}

int pc_value_identical(const pc_value *a, const pc_value *b) {
  return identical_depth(a, b, 0);
}

/* ---------------------------------------------------------------- maps */
pc_value *pc__map_new(pc_type type) {
  pmap *m = alloc_value(sizeof *m, type);
  if (m != NULL) {
    m->len = 0;
    m->u.cap = MAP_INLINE;
    m->entries = m->inl;
    m->index = NULL;
    m->index_mask = 0;
    m->h.depth = 1;
  }
  return m != NULL ? &m->h : NULL;
}

pc_value *pc_value_dict(void) {
  pc_value *v = pc__map_new(PC_TYPE_DICT);
  return v != NULL ? v : fail_null(ENOMEM);
}
pc_value *pc_value_set(void) {
  pc_value *v = pc__map_new(PC_TYPE_SET);
  return v != NULL ? v : fail_null(ENOMEM);
}
pc_value *pc_value_frozenset(void) {
  pc_value *v = pc__map_new(PC_TYPE_FROZENSET);
  return v != NULL ? v : fail_null(ENOMEM);
}

const pc__entry *pc__map_entries(const pc_value *v, size_t *n) {
  const pmap *m = (const pmap *)v;
  *n = m->len;
  return m->entries;
}

static void index_insert(uint32_t *index, size_t mask, uint64_t hash,
                         uint32_t slot_value) {
  size_t i = (size_t)hash & mask;
  while (index[i] != 0)
    i = (i + 1) & mask;
  index[i] = slot_value;
}

/* Rebuilds the index for at least `want` entries (or drops it for small
 * maps). */
static int index_rebuild(pmap *m, size_t want) {
  int rc = 0;
  if (want <= MAP_LINEAR) {
    free(m->index);
    m->index = NULL;
    m->index_mask = 0;
  } else {
    size_t size = 16;
    while (size < want * 2 && size <= SIZE_MAX / 4)
      size *= 2;
    uint32_t *index = NULL;
    if (want < UINT32_MAX && size <= SIZE_MAX / sizeof *index)
      index = calloc(size, sizeof *index);
    if (index == NULL) {
      rc = -ENOMEM;
    } else {
      for (size_t i = 0; i < m->len; i++)
        index_insert(index, size - 1, m->entries[i].hash, (uint32_t)(i + 1));
      free(m->index);
      m->index = index;
      m->index_mask = size - 1;
    }
  }
  return rc;
}

/* 1 and *pos when found, 0 when not, or a negative error from comparing
 * keys (PC_ELIMIT). */
static int map_find(const pmap *m, const pc_value *key, uint64_t hash,
                    size_t *pos) {
  int rc = 0;
  if (m->index == NULL) {
    for (size_t i = 0; i < m->len && rc == 0; i++) {
      const pc__entry *e = &m->entries[i];
      if (e->hash == hash) {
        rc = e->key == key ? 1 : equal_depth(e->key, key, 1);
        if (rc == 1)
          *pos = i;
      }
    }
  } else {
    size_t i = (size_t)hash & m->index_mask;
    while (rc == 0 && m->index[i] != 0) {
      const pc__entry *e = &m->entries[m->index[i] - 1];
      if (e->hash == hash) {
        rc = e->key == key ? 1 : equal_depth(e->key, key, 1);
        if (rc == 1)
          *pos = m->index[i] - 1;
      }
      i = (i + 1) & m->index_mask;
    }
  }
  return rc;
}

static int map_reserve(pmap *m, size_t extra) {
  int rc = 0;
  if (extra > m->u.cap - m->len) {
    size_t need = m->len + extra;
    size_t cap = m->u.cap * 2;
    while (cap < need)
      cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    pc__entry *e = NULL;
    if (need >= m->len && cap <= SIZE_MAX / sizeof *e && need < UINT32_MAX)
      e = m->entries == m->inl ? malloc(cap * sizeof *e)
                               : realloc(m->entries, cap * sizeof *e);
    if (e == NULL) {
      rc = -ENOMEM;
    } else {
      if (m->entries == m->inl)
        memcpy(e, m->inl, m->len * sizeof *e);
      m->entries = e;
      m->u.cap = cap;
    }
  }
  if (rc == 0 && m->len + extra > MAP_LINEAR &&
      (m->index == NULL || (m->len + extra) * 2 > m->index_mask + 1))
    rc = index_rebuild(m, m->len + extra);
  return rc;
}

/* Inserts or replaces; takes over key and value only on success (0).
 * Returns 1 when the key was already there (then key is NOT taken over and
 * value replaced the old one, which is released; for sets nothing changes
 * and item is not taken over either). */
static int map_put(pmap *m, pc_value *key, pc_value *value, uint64_t hash) {
  size_t pos = 0;
  int rc = map_find(m, key, hash, &pos);
  if (rc == 1) {
    if (value != NULL) {
      pc_value *old = m->entries[pos].value;
      m->entries[pos].value = value;
      pc_value_free(old);
    }
  } else if (rc == 0) {
    rc = map_reserve(m, 1);
    if (rc == 0) {
      pc__entry *e = &m->entries[m->len];
      e->key = key;
      e->value = value;
      e->hash = hash;
      if (m->index != NULL)
        index_insert(m->index, m->index_mask, hash, (uint32_t)(m->len + 1));
      m->len++;
    }
  }
  return rc;
}

static void note_heap(pc_value *container, const pc_value *item) {
  if (!pc__is_small(item))
    container->flags |= PC__VF_HEAPITEMS;
}

int pc__dict_set_steal(pc_value *dict, pc_value *key, pc_value *value) {
  pmap *m = (pmap *)dict;
  uint64_t hash;
  unsigned depth = dict->depth;
  pc_value *both[2] = {key, value};
  uint8_t flags = dict->flags;
  int rc = pc__value_hash(key, &hash, 1);
  if (rc == 0)
    rc = absorb(dict, both, 2, &depth);
  if (rc == 0) {
    rc = map_put(m, key, value, hash);
    if (rc == 1) {
      pc_value_free(key); /* the first key stays, as in Python */
      rc = 0;
    }
  }
  if (rc == 0)
    dict->depth = (uint16_t)depth;
  else
    dict->flags = flags;
  return rc;
}

int pc__set_add_steal(pc_value *set, pc_value *item) {
  pmap *m = (pmap *)set;
  uint64_t hash;
  unsigned depth = set->depth;
  uint8_t flags = set->flags;
  int rc = pc__value_hash(item, &hash, 1);
  if (rc == 0)
    rc = absorb(set, &item, 1, &depth);
  if (rc == 0) {
    rc = map_put(m, item, NULL, hash);
    if (rc == 1) {
      pc_value_free(item);
      rc = 0;
    }
  }
  if (rc == 0)
    set->depth = (uint16_t)depth;
  else
    set->flags = flags;
  return rc;
}

int pc_value_dict_set(pc_value *dict, pc_value *key, pc_value *value) {
  uint64_t hash;
  int rc = 0;
  if (dict == NULL || key == NULL || value == NULL ||
      pc__type(dict) != PC_TYPE_DICT || value == dict)
    rc = -EINVAL;
  if (rc == 0)
    rc = pc__value_hash(key, &hash, 1);
  if (rc == 0) {
    pc__ref(value);
    rc = map_put((pmap *)dict, key, value, hash);
    if (rc == 0) {
      pc__ref(key);
      note_heap(dict, key);
      note_heap(dict, value);
    } else if (rc == 1) {
      note_heap(dict, value);
      rc = 0;
    } else {
      pc_value_free(value);
    }
  }
  return rc;
}

int pc_value_dict_set_steal(pc_value *dict, pc_value *key, pc_value *value) {
  int rc = pc_value_dict_set(dict, key, value);
  pc_value_free(key);
  pc_value_free(value);
  return rc;
}

int pc_value_dict_set_str(pc_value *dict, const char *key, pc_value *value) {
  pc_value *k = key != NULL ? pc_value_str(key) : NULL;
  int rc = k == NULL ? (key != NULL && errno == ENOMEM ? -ENOMEM : -EINVAL)
                     : pc_value_dict_set(dict, k, value);
  pc_value_free(k);
  return rc;
}

int pc_value_dict_set_str_steal(pc_value *dict, const char *key,
                                pc_value *value) {
  int rc = pc_value_dict_set_str(dict, key, value);
  pc_value_free(value);
  return rc;
}

static int lookup(const pc_value *map, const pc_value *key, size_t *pos) {
  uint64_t hash;
  int rc = pc__value_hash(key, &hash, 1);
  if (rc == 0)
    rc = map_find((const pmap *)map, key, hash, pos);
  return rc;
}

pc_value *pc_value_dict_get(const pc_value *dict, const pc_value *key) {
  size_t pos;
  pc_value *v = NULL;
  if (dict != NULL && key != NULL && pc__type(dict) == PC_TYPE_DICT &&
      lookup(dict, key, &pos) == 1)
    v = ((const pmap *)dict)->entries[pos].value;
  return v;
}

pc_value *pc_value_dict_get_str(const pc_value *dict, const char *key) {
  pc_value *v = NULL;
  if (dict != NULL && key != NULL && pc__type(dict) == PC_TYPE_DICT) {
    /* Probe with the key's hash directly: no temporary str. */
    const pmap *m = (const pmap *)dict;
    size_t n = strlen(key);
    uint64_t hash = hash_bytes((const unsigned char *)key, n, 0);
    size_t count = m->index != NULL ? m->index_mask + 1 : m->len;
    size_t i = m->index != NULL ? (size_t)hash & m->index_mask : 0;
    for (size_t step = 0; step < count && v == NULL; step++) {
      const pc__entry *e;
      if (m->index != NULL) {
        if (m->index[i] == 0)
          break;
        e = &m->entries[m->index[i] - 1];
        i = (i + 1) & m->index_mask;
      } else {
        e = &m->entries[step];
      }
      if (e->hash == hash && pc__type(e->key) == PC_TYPE_STR &&
          ((const pstr *)e->key)->len == n &&
          memcmp(str_data((const pstr *)e->key), key, n) == 0)
        v = e->value;
    }
  }
  return v;
}

int pc_value_dict_item(const pc_value *dict, size_t i, pc_value **key,
                       pc_value **value) {
  int rc = 0;
  if (dict == NULL || pc__type(dict) != PC_TYPE_DICT)
    rc = -EINVAL;
  else if (i >= ((const pmap *)dict)->len)
    rc = -ERANGE;
  if (rc == 0) {
    const pc__entry *e = &((const pmap *)dict)->entries[i];
    if (key != NULL)
      *key = e->key;
    if (value != NULL)
      *value = e->value;
  }
  return rc;
}

int pc_value_dict_del(pc_value *dict, const pc_value *key) {
  size_t pos = 0;
  int rc = 0;
  if (dict == NULL || key == NULL || pc__type(dict) != PC_TYPE_DICT)
    rc = -EINVAL;
  if (rc == 0) {
    rc = lookup(dict, key, &pos);
    if (rc == 0)
      rc = -ENOENT;
  }
  if (rc == 1) {
    pmap *m = (pmap *)dict;
    pc__entry gone = m->entries[pos];
    memmove(&m->entries[pos], &m->entries[pos + 1],
            (m->len - pos - 1) * sizeof *m->entries);
    m->len--;
    /* Entry numbers moved: rebuild the index (O(n), deletion is rare in
     * message data). Shrinking never needs memory; a failed rebuild of a
     * large map keeps the old size, which is enough. */
    if (m->index != NULL) {
      memset(m->index, 0, (m->index_mask + 1) * sizeof *m->index);
      for (size_t i = 0; i < m->len; i++)
        index_insert(m->index, m->index_mask, m->entries[i].hash,
                     (uint32_t)(i + 1));
    }
    pc_value_free(gone.key);
    pc_value_free(gone.value);
    rc = 0;
  }
  return rc;
}

int pc_value_set_add(pc_value *set, pc_value *item) {
  uint64_t hash;
  int rc = 0;
  if (set == NULL || item == NULL || set == item ||
      (pc__type(set) != PC_TYPE_SET && pc__type(set) != PC_TYPE_FROZENSET))
    rc = -EINVAL;
  if (rc == 0)
    rc = pc__value_hash(item, &hash, 1);
  if (rc == 0) {
    rc = map_put((pmap *)set, item, NULL, hash);
    if (rc == 0) {
      pc__ref(item);
      note_heap(set, item);
    } else if (rc == 1) {
      rc = 0;
    }
  }
  return rc;
}

int pc_value_set_add_steal(pc_value *set, pc_value *item) {
  int rc = pc_value_set_add(set, item);
  pc_value_free(item);
  return rc;
}

int pc_value_contains(const pc_value *container, const pc_value *item) {
  size_t pos;
  int rc = -EINVAL;
  if (container != NULL && item != NULL && is_map_type(pc__type(container)))
    rc = lookup(container, item, &pos);
  return rc;
}

/* ---------------------------------------------------------------- generic */
size_t pc_value_len(const pc_value *v) {
  size_t n = 0;
  switch (v == NULL ? (unsigned)PC_TYPE_NONE : pc__type(v)) {
  case PC_TYPE_STR: {
    const pstr *s = (const pstr *)v;
    const unsigned char *p = (const unsigned char *)str_data(s);
    for (size_t i = 0; i < s->len; i++)
      n += (p[i] & 0xc0) != 0x80;
    break;
  }
  case PC_TYPE_BYTES:
    n = ((const pstr *)v)->len;
    break;
  case PC_TYPE_LIST:
  case PC_TYPE_TUPLE:
    n = ((const pseq *)v)->len;
    break;
  case PC_TYPE_DICT:
  case PC_TYPE_SET:
  case PC_TYPE_FROZENSET:
    n = ((const pmap *)v)->len;
    break;
  default:
    break;
  }
  return n;
}

pc_value *pc_value_item(const pc_value *v, size_t i) {
  pc_value *item = NULL;
  unsigned t = v == NULL ? (unsigned)PC_TYPE_NONE : pc__type(v);
  if (is_seq_type(t) && i < ((const pseq *)v)->len)
    item = ((const pseq *)v)->items[i];
  else if (is_map_type(t) && i < ((const pmap *)v)->len)
    item = ((const pmap *)v)->entries[i].key;
  return item;
}
