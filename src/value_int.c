/* SPDX-License-Identifier: MIT */
/* Ints of any size in decimal: repr() of big ints and the text forms of
 * pickle protocol 0. Big ints are two's complement little-endian bytes
 * (value.c); here they are turned into base-10^9 limbs and back. Both
 * directions are quadratic, as in CPython, and bounded by the callers. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Python's default int_max_str_digits: the longest decimal text int() and
 * repr() accept. The decoder applies the same bound to protocol 0 ints. */
#define MAX_DECIMAL_DIGITS 4300

#define BASE 1000000000u

int pc__int_to_decimal(const pc_value *v, pc_buffer *out) {
  char small[24];
  uint32_t *mag = NULL, *chunks = NULL;
  size_t n = 0, nwords, maxchunks, nchunks = 0;
  const unsigned char *p;
  bool neg;
  int rc = 0;
  if (pc__is_small(v) || pc__type(v) == PC_TYPE_BOOL) {
    int64_t i = 0;
    (void)pc_value_get_int(v, &i);
    uint64_t u = i < 0 ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
    size_t k = sizeof small;
    do {
      small[--k] = (char)('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (i < 0)
      small[--k] = '-';
    rc = pc_buffer_append(out, small + k, sizeof small - k);
    goto out;
  }

  p = pc__bigint_bytes(v, &n);
  neg = (p[n - 1] & 0x80) != 0;
  nwords = (n + 3) / 4;
  mag = calloc(nwords, sizeof *mag);
  /* Each base-10^9 chunk holds at least 29.8 bits. */
  maxchunks = (n * 8) / 29 + 2;
  chunks = calloc(maxchunks, sizeof *chunks);
  if (mag == NULL || chunks == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  unsigned carry = 1;
  for (size_t k = 0; k < n; k++) {
    unsigned x = p[k];
    if (neg) {
      x = (unsigned)(uint8_t)~p[k] + carry;
      carry = x >> 8;
      x &= 0xffu;
    }
    mag[k / 4] |= (uint32_t)x << (8 * (k % 4));
  }
  size_t top = nwords;
  while (top > 0 && mag[top - 1] == 0)
    top--;
  while (top > 0) {
    uint64_t rem = 0;
    for (size_t k = top; k-- > 0;) {
      uint64_t cur = (rem << 32) | mag[k];
      mag[k] = (uint32_t)(cur / BASE);
      rem = cur % BASE;
    }
    chunks[nchunks++] = (uint32_t)rem;
    while (top > 0 && mag[top - 1] == 0)
      top--;
  }
  rc = pc_buffer_reserve(out, nchunks * 9 + 2);
  if (rc < 0)
    goto out;
  {
    char *d = (char *)out->data + out->len;
    char *start = d;
    if (neg)
      *d++ = '-';
    for (size_t k = nchunks; k-- > 0;) {
      char tmp[9];
      uint32_t c = chunks[k];
      for (int j = 8; j >= 0; j--) {
        tmp[j] = (char)('0' + c % 10);
        c /= 10;
      }
      int skip = 0;
      if (k == nchunks - 1)
        while (skip < 8 && tmp[skip] == '0')
          skip++;
      memcpy(d, tmp + skip, (size_t)(9 - skip));
      d += 9 - skip;
    }
    out->len += (size_t)(d - start);
  }
out:
  free(mag);
  free(chunks);
  return rc;
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

int pc__int_from_decimal(const char *s, size_t n, pc_value **out) {
  uint32_t *limbs = NULL; /* base 2^32, little-endian */
  unsigned char *le = NULL;
  size_t nlimbs = 0, digits = 0;
  bool neg = false;
  int rc = 0;

  while (n > 0 && is_space(s[n - 1]))
    n--;
  while (n > 0 && is_space(*s)) {
    s++;
    n--;
  }
  if (n > 0 && (*s == '+' || *s == '-')) {
    neg = *s == '-';
    s++;
    n--;
  }
  /* Validate: digits, single underscores between digits. */
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (s[i] >= '0' && s[i] <= '9')
      digits++;
    else if (s[i] != '_' || i == 0 || i + 1 == n || s[i + 1] == '_')
      rc = -EINVAL;
  }
  if (rc == 0 && digits == 0)
    rc = -EINVAL;
  if (rc == 0 && digits > MAX_DECIMAL_DIGITS)
    rc = PC_ELIMIT;
  if (rc < 0)
    goto out;

  /* 10^9 < 2^30: digits / 9 chunks of < 30 bits each, plus one limb. */
  limbs = calloc(digits / 9 + 2, sizeof *limbs);
  if (limbs == NULL) {
    rc = -ENOMEM;
    goto out;
  }
  {
    uint32_t chunk = 0, mul = 1;
    for (size_t i = 0; i <= n; i++) {
      if (i < n && s[i] == '_')
        continue;
      if (i < n) {
        chunk = chunk * 10 + (uint32_t)(s[i] - '0');
        mul *= 10;
      }
      if (mul == BASE || (i == n && mul > 1)) {
        uint64_t carry = chunk;
        for (size_t k = 0; k < nlimbs; k++) {
          uint64_t cur = (uint64_t)limbs[k] * mul + carry;
          limbs[k] = (uint32_t)cur;
          carry = cur >> 32;
        }
        if (carry != 0)
          limbs[nlimbs++] = (uint32_t)carry;
        chunk = 0;
        mul = 1;
      }
    }
  }
  {
    /* Magnitude bytes plus a zero byte on top, then negate if needed. */
    size_t nbytes = nlimbs * 4 + 1;
    le = malloc(nbytes);
    if (le == NULL) {
      rc = -ENOMEM;
      goto out;
    }
    for (size_t k = 0; k < nlimbs * 4; k++)
      le[k] = (unsigned char)(limbs[k / 4] >> (8 * (k % 4)));
    le[nbytes - 1] = 0;
    if (neg) {
      unsigned carry = 1;
      for (size_t k = 0; k < nbytes; k++) {
        unsigned x = (unsigned)(uint8_t)~le[k] + carry;
        le[k] = (unsigned char)x;
        carry = x >> 8;
      }
    }
    rc = pc__int_from_le(le, nbytes, out);
  }
out:
  free(limbs);
  free(le);
  return rc;
}
