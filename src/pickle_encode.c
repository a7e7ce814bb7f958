/* SPDX-License-Identifier: MIT */
/* pc_pickle_dumps: pc_value to pickle, protocols 2 to 5.
 *
 * The output follows CPython's C pickler (Modules/_pickle.c) decision for
 * decision, so that Python reads it back to an equal object and, for
 * values that came from Python, the bytes are identical to pickle.dumps:
 *  - ints: BININT1/BININT2/BININT for 32-bit values, else LONG1/LONG4 with
 *    the shortest two's complement;
 *  - every str, bytes, list, tuple (non-empty), dict, set and frozenset is
 *    memoized; a value met again is fetched with BINGET/LONG_BINGET;
 *  - lists, dicts and sets are filled in batches of 1000 (a dict or set
 *    whose size is a multiple of 1000 gets a final empty batch, as in
 *    CPython);
 *  - protocol 4+: frames of at least 64 KiB are cut at the start of a value
 *    once they reach that size; a str or bytes of 64 KiB or more is written
 *    outside any frame; frames under 4 bytes are not framed;
 *  - protocols 2-3 have no opcodes for sets (and 2 none for bytes): they
 *    use GLOBAL + REDUCE exactly as CPython does (set(list),
 *    _codecs.encode(str, 'latin1'), bytes()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FRAME_TARGET 65536u
#define FRAME_HEADER 9u
#define FRAME_MIN 4u
#define BATCH 1000u

/* Memo keys for the objects protocol 2-3 output refers to that are not
 * values: the globals, the interned 'latin1', and CPython's cached
 * one-character Latin-1 strings. Their addresses are the keys. */
static const char k_set, k_frozenset, k_bytes, k_encode, k_latin1;
static const char k_latin1_char[256];

typedef struct memo_slot {
  const void *key;
  uint32_t idx;
} memo_slot;

#define MEMO_TABLE_INLINE 64

typedef struct enc {
  pc_buffer *out;
  int proto;
  bool framing;  /* protocol 4+ */
  bool in_frame; /* a frame header is reserved at frame_start */
  size_t frame_start;
  uint32_t memo_next; /* index the next memoized object gets */
  memo_slot *tab;     /* pointer -> memo index, open addressing */
  size_t tab_mask, tab_count;
  memo_slot tab_inline[MEMO_TABLE_INLINE];
} enc;

/* ---------------------------------------------------------------- output */

/* Makes room for n bytes (plus a frame header if a frame must start) and
 * returns where to write; finish with wend(). */
static int wbegin(enc *e, size_t n, unsigned char **p) {
  pc_buffer *b = e->out;
  int rc = 0;
  if (b->cap - b->len < n + FRAME_HEADER)
    rc = pc_buffer_reserve(b, n + FRAME_HEADER);
  if (rc == 0) {
    if (e->framing && !e->in_frame) {
      e->frame_start = b->len;
      b->len += FRAME_HEADER;
      e->in_frame = true;
    }
    *p = b->data + b->len;
  }
  return rc;
}

static void wend(enc *e, unsigned char *p) {
  e->out->len = (size_t)(p - e->out->data);
}

static int wbytes(enc *e, const void *s, size_t n) {
  unsigned char *p = NULL;
  int rc = wbegin(e, n, &p);
  if (rc == 0) {
    memcpy(p, s, n);
    wend(e, p + n);
  }
  return rc;
}

static int wop(enc *e, unsigned char op) { return wbytes(e, &op, 1); }

static unsigned char *put_le(unsigned char *p, uint64_t v, int n) {
  for (int k = 0; k < n; k++)
    *p++ = (unsigned char)(v >> (8 * k));
  return p;
}

static void commit_frame(enc *e) {
  if (e->in_frame) {
    pc_buffer *b = e->out;
    size_t len = b->len - e->frame_start - FRAME_HEADER;
    unsigned char *q = b->data + e->frame_start;
    if (len >= FRAME_MIN) {
      q[0] = 0x95; /* FRAME */
      put_le(q + 1, len, 8);
    } else {
      memmove(q, q + FRAME_HEADER, len);
      b->len -= FRAME_HEADER;
    }
    e->in_frame = false;
  }
}

/* CPython commits a frame at the start of saving a value once it holds
 * FRAME_TARGET bytes. */
static void boundary(enc *e) {
  if (e->in_frame &&
      e->out->len - e->frame_start - FRAME_HEADER >= FRAME_TARGET)
    commit_frame(e);
}

/* An opcode with its length field, then data; data of FRAME_TARGET bytes
 * or more goes outside frames. */
static int wdata(enc *e, const unsigned char *hdr, size_t hlen,
                 const void *data, size_t dlen) {
  bool framing = e->framing;
  int rc;
  if (dlen >= FRAME_TARGET) {
    commit_frame(e);
    e->framing = false;
  }
  rc = wbytes(e, hdr, hlen);
  if (rc == 0)
    rc = wbytes(e, data, dlen);
  e->framing = framing;
  return rc;
}

/* ---------------------------------------------------------------- memo */
static size_t hash_ptr(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 29;
  x *= UINT64_C(0xbf58476d1ce4e5b9);
  x ^= x >> 32;
  return (size_t)x;
}

static const memo_slot *memo_find(const enc *e, const void *key) {
  const memo_slot *found = NULL;
  size_t i = hash_ptr(key) & e->tab_mask;
  while (e->tab[i].key != NULL) {
    if (e->tab[i].key == key) {
      found = &e->tab[i];
      break;
    }
    i = (i + 1) & e->tab_mask;
  }
  return found;
}

static int memo_insert(enc *e, const void *key, uint32_t idx) {
  int rc = 0;
  if (e->tab_count == 0 && e->tab == e->tab_inline)
    memset(e->tab_inline, 0, sizeof e->tab_inline); /* first use */
  if ((e->tab_count + 1) * 2 > e->tab_mask + 1) {
    size_t size = (e->tab_mask + 1) * 2;
    memo_slot *t =
        size <= SIZE_MAX / sizeof *t ? calloc(size, sizeof *t) : NULL;
    if (t == NULL) {
      rc = -ENOMEM;
    } else {
      for (size_t i = 0; i <= e->tab_mask; i++) {
        if (e->tab[i].key != NULL) {
          size_t j = hash_ptr(e->tab[i].key) & (size - 1);
          while (t[j].key != NULL)
            j = (j + 1) & (size - 1);
          t[j] = e->tab[i];
        }
      }
      if (e->tab != e->tab_inline)
        free(e->tab);
      e->tab = t;
      e->tab_mask = size - 1;
    }
  }
  if (rc == 0) {
    size_t i = hash_ptr(key) & e->tab_mask;
    while (e->tab[i].key != NULL)
      i = (i + 1) & e->tab_mask;
    e->tab[i].key = key;
    e->tab[i].idx = idx;
    e->tab_count++;
  }
  return rc;
}

/* Writes the memo store for the object just written. key NULL: an object
 * that cannot be met again (referenced once), which only takes a number. */
static int memoize(enc *e, const void *key) {
  unsigned char buf[5];
  size_t n;
  uint32_t idx = e->memo_next;
  int rc = 0;
  if (e->proto >= 4) {
    buf[0] = 0x94; /* MEMOIZE */
    n = 1;
  } else if (idx < 256) {
    buf[0] = 'q'; /* BINPUT */
    buf[1] = (unsigned char)idx;
    n = 2;
  } else {
    buf[0] = 'r'; /* LONG_BINPUT */
    put_le(buf + 1, idx, 4);
    n = 5;
  }
  if (idx == UINT32_MAX)
    rc = PC_EENCODE; /* more memo entries than LONG_BINPUT can number */
  if (rc == 0 && key != NULL)
    rc = memo_insert(e, key, idx);
  if (rc == 0)
    rc = wbytes(e, buf, n);
  if (rc == 0)
    e->memo_next++;
  return rc;
}

static const void *memo_key(const pc_value *v) {
  return pc__is_unique(v) ? NULL : v;
}

/* If key was memoized, writes a GET for it and returns 1. */
static int memo_get(enc *e, const void *key) {
  const memo_slot *s = e->tab_count > 0 ? memo_find(e, key) : NULL;
  int rc = 0;
  if (s != NULL) {
    unsigned char buf[5];
    if (s->idx < 256) {
      buf[0] = 'h'; /* BINGET */
      buf[1] = (unsigned char)s->idx;
      rc = wbytes(e, buf, 2);
    } else {
      buf[0] = 'j'; /* LONG_BINGET */
      put_le(buf + 1, s->idx, 4);
      rc = wbytes(e, buf, 5);
    }
    if (rc == 0)
      rc = 1;
  }
  return rc;
}

/* ---------------------------------------------------------------- scalars */
static int save_small(enc *e, int64_t i) {
  unsigned char *p = NULL;
  int rc = wbegin(e, 10, &p);
  if (rc == 0) {
    if (i >= 0 && i < 256) {
      *p++ = 'K';
      *p++ = (unsigned char)i;
    } else if (i >= 0 && i < 65536) {
      *p++ = 'M';
      p = put_le(p, (uint64_t)i, 2);
    } else if (i >= INT32_MIN && i <= INT32_MAX) {
      *p++ = 'J';
      p = put_le(p, (uint64_t)i, 4);
    } else {
      /* LONG1 with the shortest two's complement. */
      unsigned char le[8];
      size_t n = 8;
      put_le(le, (uint64_t)i, 8);
      while (n > 1 && ((le[n - 1] == 0 && (le[n - 2] & 0x80) == 0) ||
                       (le[n - 1] == 0xff && (le[n - 2] & 0x80) != 0)))
        n--;
      *p++ = 0x8a;
      *p++ = (unsigned char)n;
      memcpy(p, le, n);
      p += n;
    }
    wend(e, p);
  }
  return rc;
}

static int save_big(enc *e, const pc_value *v) {
  size_t n;
  const unsigned char *data = pc__bigint_bytes(v, &n);
  unsigned char hdr[5];
  size_t hlen = 0;
  int rc = 0;
  if (n < 256) {
    hdr[0] = 0x8a; /* LONG1 */
    hdr[1] = (unsigned char)n;
    hlen = 2;
  } else if (n <= INT32_MAX) {
    hdr[0] = 0x8b; /* LONG4 */
    put_le(hdr + 1, n, 4);
    hlen = 5;
  } else {
    rc = PC_EENCODE; /* CPython's limit too */
  }
  if (rc == 0)
    rc = wdata(e, hdr, hlen, data, n);
  return rc;
}

static int save_float(enc *e, double d) {
  unsigned char *p = NULL;
  uint64_t bits;
  int rc = wbegin(e, 9, &p);
  memcpy(&bits, &d, sizeof bits);
  if (rc == 0) {
    *p++ = 'G';
    for (int k = 7; k >= 0; k--)
      *p++ = (unsigned char)(bits >> (8 * k));
    wend(e, p);
  }
  return rc;
}

/* A str's or bytes' opcode and payload (no memo). */
static int save_text(enc *e, bool is_str, const void *data, size_t n) {
  unsigned char hdr[9];
  size_t hlen;
  int rc = 0;
  if (n < 256 && (e->proto >= 4 || !is_str)) {
    hdr[0] = is_str ? 0x8c : 'C'; /* SHORT_BINUNICODE / SHORT_BINBYTES */
    hdr[1] = (unsigned char)n;
    hlen = 2;
  } else if (n <= UINT32_MAX) {
    hdr[0] = is_str ? 'X' : 'B'; /* BINUNICODE / BINBYTES */
    put_le(hdr + 1, n, 4);
    hlen = 5;
  } else if (e->proto >= 4) {
    hdr[0] = is_str ? 0x8d : 0x8e; /* BINUNICODE8 / BINBYTES8 */
    put_le(hdr + 1, n, 8);
    hlen = 9;
  } else {
    rc = PC_EENCODE; /* over 4 GiB needs protocol 4 */
  }
  if (rc == 0)
    rc = wdata(e, hdr, hlen, data, n);
  return rc;
}

/* A global (protocol 2-3) by its memo key: GLOBAL module\nname\n, or a GET
 * if already written. */
static int save_global(enc *e, const char *key) {
  const char *mod = e->proto < 3 ? "__builtin__" : "builtins";
  const char *name = key == &k_set         ? "set"
                     : key == &k_frozenset ? "frozenset"
                                           : "bytes";
  char line[40];
  size_t n;
  int rc;
  if (key == &k_encode) {
    mod = "_codecs";
    name = "encode";
  }
  boundary(e);
  rc = memo_get(e, key);
  if (rc == 0) {
    n = (size_t)snprintf(line, sizeof line, "c%s\n%s\n", mod, name);
    rc = wbytes(e, line, n);
    if (rc == 0)
      rc = memoize(e, key);
  } else if (rc == 1) {
    rc = 0;
  }
  return rc;
}

/* Protocol 2: bytes as _codecs.encode(text, 'latin1'), or bytes() when
 * empty. obj_key is the bytes value's own memo key. */
static int save_bytes_reduce(enc *e, const pc_value *v) {
  size_t n;
  const unsigned char *s = (const unsigned char *)pc__strbuf(v, &n);
  pc_value *text = NULL;
  int rc;
  if (n == 0) {
    rc = save_global(e, &k_bytes);
    if (rc == 0)
      rc = wop(e, ')'); /* EMPTY_TUPLE */
  } else {
    rc = save_global(e, &k_encode);
    /* The Latin-1 text: CPython's one-character strings are cached
     * objects, so they are memoized under a fixed key. */
    if (rc == 0) {
      boundary(e);
      const void *key = n == 1 ? &k_latin1_char[s[0]] : NULL;
      rc = key != NULL ? memo_get(e, key) : 0;
      if (rc == 0) {
        rc = pc__str_new_latin1(s, n, &text);
        if (rc == 0) {
          size_t tn;
          const char *t = pc__strbuf(text, &tn);
          rc = save_text(e, true, t, tn);
        }
        if (rc == 0)
          rc = memoize(e, key);
      } else if (rc == 1) {
        rc = 0;
      }
    }
    if (rc == 0) {
      boundary(e);
      rc = memo_get(e, &k_latin1);
      if (rc == 0) {
        rc = save_text(e, true, "latin1", 6);
        if (rc == 0)
          rc = memoize(e, &k_latin1);
      } else if (rc == 1) {
        rc = 0;
      }
    }
    if (rc == 0)
      rc = wop(e, 0x86); /* TUPLE2 */
    if (rc == 0)
      rc = memoize(e, NULL);
  }
  if (rc == 0)
    rc = wop(e, 'R'); /* REDUCE */
  pc_value_free(text);
  return rc;
}

/* Writes the run of immediate ints starting at items[*i] (up to end), as
 * save_small would one by one, without a call per item: a list of ints is
 * the common case. Frames are still cut exactly where CPython cuts them. */
static int save_small_run(enc *e, pc_value *const *items, size_t *i,
                          size_t end) {
  int rc = 0;
  bool more = true;
  while (more && rc == 0) {
    size_t chunk = end - *i < 256 ? end - *i : 256, k = 0;
    unsigned char *p = NULL;
    rc = wbegin(e, chunk * 10, &p);
    if (rc < 0)
      break;
    const unsigned char *frame =
        e->in_frame ? e->out->data + e->frame_start + FRAME_HEADER : NULL;
    for (; k < chunk; k++) {
      const pc_value *it = items[*i + k];
      if (!pc__is_small(it) ||
          (frame != NULL && (size_t)(p - frame) >= FRAME_TARGET))
        break;
      int64_t x = pc__small_val(it);
      if ((uint64_t)x < 256) {
        p[0] = 'K';
        p[1] = (unsigned char)x;
        p += 2;
      } else if ((uint64_t)x < 65536) {
        p[0] = 'M';
        p[1] = (unsigned char)x;
        p[2] = (unsigned char)(x >> 8);
        p += 3;
      } else if (x >= INT32_MIN && x <= INT32_MAX) {
        p[0] = 'J';
        p = put_le(p + 1, (uint64_t)x, 4);
      } else {
        wend(e, p);
        rc = save_small(e, x);
        if (rc < 0)
          break;
        p = e->out->data + e->out->len;
      }
    }
    if (rc == 0)
      wend(e, p);
    *i += k;
    if (*i == end || !pc__is_small(items[*i]))
      more = false;
    else if (k < chunk)
      commit_frame(e); /* the frame is full: CPython cuts it here */
  }
  return rc;
}

/* ---------------------------------------------------------------- containers */
static int save(enc *e, const pc_value *v, int depth);
static int save_new(enc *e, const pc_value *v, unsigned t, int depth);

/* MARK items APPENDS in batches, or item APPEND for one. */
static int save_items(enc *e, pc_value *const *items, size_t n, int depth) {
  int rc = 0;
  if (n == 1) {
    rc = save(e, items[0], depth);
    if (rc == 0)
      rc = wop(e, 'a'); /* APPEND */
  } else {
    size_t total = 0;
    do {
      size_t end = total + BATCH < n ? total + BATCH : n;
      rc = wop(e, '(');
      while (total < end && rc == 0) {
        if (pc__is_small(items[total]))
          rc = save_small_run(e, items, &total, end);
        else
          rc = save(e, items[total++], depth);
      }
      if (rc == 0)
        rc = wop(e, 'e'); /* APPENDS */
    } while (rc == 0 && total < n);
  }
  return rc;
}

static int save_list(enc *e, const pc_value *v, int depth) {
  size_t n;
  pc_value *const *items = pc__seq_items(v, &n);
  int rc = wop(e, ']'); /* EMPTY_LIST */
  if (rc == 0)
    rc = memoize(e, memo_key(v));
  if (rc == 0 && n > 0)
    rc = save_items(e, items, n, depth);
  return rc;
}

static int save_tuple(enc *e, const pc_value *v, int depth) {
  size_t n;
  pc_value *const *items = pc__seq_items(v, &n);
  int rc = 0;
  if (n == 0) {
    rc = wop(e, ')'); /* EMPTY_TUPLE, never memoized */
  } else {
    if (n > 3)
      rc = wop(e, '(');
    for (size_t i = 0; i < n && rc == 0; i++)
      rc = save(e, items[i], depth);
    if (rc == 0)
      rc = wop(e, n > 3 ? 't' : (unsigned char)(0x85 + n - 1)); /* TUPLEn */
    if (rc == 0)
      rc = memoize(e, memo_key(v));
  }
  return rc;
}

static int save_dict(enc *e, const pc_value *v, int depth) {
  size_t n, i = 0;
  const pc__entry *en = pc__map_entries(v, &n);
  int rc = wop(e, '}'); /* EMPTY_DICT */
  if (rc == 0)
    rc = memoize(e, memo_key(v));
  if (rc == 0 && n == 1) {
    rc = save(e, en[0].key, depth);
    if (rc == 0)
      rc = save(e, en[0].value, depth);
    if (rc == 0)
      rc = wop(e, 's'); /* SETITEM */
  } else if (rc == 0 && n > 1) {
    size_t batch;
    do {
      rc = wop(e, '(');
      for (batch = 0; i < n && batch < BATCH && rc == 0; i++, batch++) {
        rc = save(e, en[i].key, depth);
        if (rc == 0)
          rc = save(e, en[i].value, depth);
      }
      if (rc == 0)
        rc = wop(e, 'u'); /* SETITEMS */
    } while (rc == 0 && batch == BATCH);
  }
  return rc;
}

static int save_set(enc *e, const pc_value *v, int depth) {
  size_t n, i = 0;
  const pc__entry *en = pc__map_entries(v, &n);
  bool frozen = pc__type(v) == PC_TYPE_FROZENSET;
  int rc = 0;
  if (e->proto < 4) {
    /* set(list) / frozenset(list) by REDUCE; the list and the argument
     * tuple are fresh objects to CPython, memoized once each. */
    rc = save_global(e, frozen ? &k_frozenset : &k_set);
    if (rc == 0) {
      boundary(e);
      rc = wop(e, ']');
    }
    if (rc == 0)
      rc = memoize(e, NULL);
    if (rc == 0 && n == 1) {
      rc = save(e, en[0].key, depth);
      if (rc == 0)
        rc = wop(e, 'a');
    } else if (rc == 0 && n > 1) {
      do {
        size_t end = i + BATCH < n ? i + BATCH : n;
        rc = wop(e, '(');
        for (; i < end && rc == 0; i++)
          rc = save(e, en[i].key, depth);
        if (rc == 0)
          rc = wop(e, 'e');
      } while (rc == 0 && i < n);
    }
    if (rc == 0)
      rc = wop(e, 0x85); /* TUPLE1 */
    if (rc == 0)
      rc = memoize(e, NULL);
    if (rc == 0)
      rc = wop(e, 'R');
  } else if (frozen) {
    rc = wop(e, '(');
    for (; i < n && rc == 0; i++)
      rc = save(e, en[i].key, depth);
    if (rc == 0)
      rc = wop(e, 0x91); /* FROZENSET */
  } else {
    rc = wop(e, 0x8f); /* EMPTY_SET */
    if (rc == 0)
      rc = memoize(e, memo_key(v));
    if (rc == 0 && n > 0) {
      size_t batch;
      do {
        rc = wop(e, '(');
        for (batch = 0; i < n && batch < BATCH && rc == 0; i++, batch++)
          rc = save(e, en[i].key, depth);
        if (rc == 0)
          rc = wop(e, 0x90); /* ADDITEMS */
      } while (rc == 0 && batch == BATCH);
    }
  }
  /* A set built by REDUCE, and a frozenset, are memoized after they are
   * complete (the plain set was memoized before its items). */
  if (rc == 0 && (e->proto < 4 || frozen))
    rc = memoize(e, memo_key(v));
  return rc;
}

/* A memoizable value seen for the first time. */
static int save_new(enc *e, const pc_value *v, unsigned t, int depth) {
  int rc = 0;
  switch (t) {
  case PC_TYPE_STR:
  case PC_TYPE_BYTES: {
    size_t n;
    const char *s = pc__strbuf(v, &n);
    if (t == PC_TYPE_BYTES && e->proto < 3)
      rc = save_bytes_reduce(e, v);
    else
      rc = save_text(e, t == PC_TYPE_STR, s, n);
    if (rc == 0)
      rc = memoize(e, memo_key(v));
    break;
  }
  case PC_TYPE_LIST:
    rc = save_list(e, v, depth + 1);
    break;
  case PC_TYPE_TUPLE:
    rc = save_tuple(e, v, depth + 1);
    break;
  case PC_TYPE_DICT:
    rc = save_dict(e, v, depth + 1);
    break;
  case PC_TYPE_SET:
  case PC_TYPE_FROZENSET:
    rc = save_set(e, v, depth + 1);
    break;
  default:
    rc = -EINVAL;
    break;
  }
  return rc;
}

static int save(enc *e, const pc_value *v, int depth) {
  int rc = 0;
  unsigned t = pc__type(v);
  boundary(e);
  if (pc__is_small(v)) {
    rc = save_small(e, pc__small_val(v));
  } else if (t == PC_TYPE_NONE) {
    rc = wop(e, 'N');
  } else if (t == PC_TYPE_BOOL) {
    bool b = false;
    (void)pc_value_get_bool(v, &b);
    rc = wop(e, b ? 0x88 : 0x89); /* NEWTRUE / NEWFALSE */
  } else if (t == PC_TYPE_INT) {
    rc = save_big(e, v);
  } else if (t == PC_TYPE_FLOAT) {
    rc = save_float(e, pc__float_val(v));
  } else {
    /* Everything else is memoized: a second visit is a GET. */
    rc = memo_get(e, v);
    if (rc == 1)
      rc = 0;
    else if (rc == 0 && t >= PC_TYPE_LIST && depth >= PC_VALUE_MAX_DEPTH)
      rc = PC_ELIMIT;
    else if (rc == 0)
      rc = save_new(e, v, t, depth);
  }
  return rc;
}

int pc_pickle_dumps(const pc_value *v, int protocol, pc_buffer *out) {
  enc e;
  size_t start = out != NULL ? out->len : 0;
  unsigned char proto_op[2];
  int rc = 0;
  if (protocol == -1)
    protocol = PC_PICKLE_DEFAULT_PROTOCOL;
  if (v == NULL || out == NULL || protocol < 2 ||
      protocol > PC_PICKLE_HIGHEST_PROTOCOL)
    rc = -EINVAL;
  e.out = out;
  e.proto = protocol;
  e.framing = false;
  e.in_frame = false;
  e.frame_start = 0;
  e.memo_next = 0;
  e.tab = e.tab_inline;
  e.tab_mask = MEMO_TABLE_INLINE - 1;
  e.tab_count = 0; /* the inline table is cleared on first use */

  proto_op[0] = 0x80; /* PROTO */
  proto_op[1] = (unsigned char)protocol;
  if (rc == 0)
    rc = wbytes(&e, proto_op, 2);
  e.framing = protocol >= 4;
  if (rc == 0)
    rc = save(&e, v, 0);
  if (rc == 0)
    rc = wop(&e, '.'); /* STOP */
  if (rc == 0)
    commit_frame(&e);
  if (e.tab != e.tab_inline)
    free(e.tab);
  if (rc < 0 && out != NULL)
    out->len = start;
  return rc;
}
