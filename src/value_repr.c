/* SPDX-License-Identifier: MIT */
/* pc_value_repr: Python's repr() of a value, and float text in both
 * directions (shared with the protocol 0 pickle decoder). */
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---------------------------------------------------------------- floats
 * printf and strtod follow the thread's LC_NUMERIC, which an application
 * may have set to a locale with a decimal comma. Float text here is always
 * Python's, so the conversions run under the "C" locale, switched for the
 * calling thread only (uselocale). */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void) {
  c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* Switches the calling thread to the C locale; returns what to restore, or
 * (locale_t)0 when the C locale is not available (then the thread's locale
 * is used, which is right unless the application changed LC_NUMERIC). */
static locale_t enter_c_locale(void) {
  pthread_once(&c_locale_once, c_locale_init);
  return c_locale != (locale_t)0 ? uselocale(c_locale) : (locale_t)0;
}

static void leave_c_locale(locale_t old) {
  if (old != (locale_t)0)
    uselocale(old);
}

/* Shortest decimal digits that read back as d (d finite and > 0), the way
 * Python's repr chooses them: the fewest significant digits, correctly
 * rounded. Writes the digits (no dot, no trailing zeros) and returns the
 * decimal point position: d = 0.DIGITS * 10^decpt. */
static int shortest_digits(double d, char digits[20]) {
  char buf[40];
  int prec, exp10 = 0;
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  /* A power of two has a narrower gap below it than above, so the nearest
   * p-digit decimal may miss while the next one up reads back. */
  bool pow2 = (bits & UINT64_C(0x000fffffffffffff)) == 0;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (strtod(buf, NULL) == d)
      break;
    if (pow2 && prec < 17) {
      /* Next p-digit decimal above: increment the mantissa's last digit. */
      char up[40];
      char *e = strchr(buf, 'e');
      size_t mlen = (size_t)(e - buf);
      memcpy(up, buf, sizeof buf);
      size_t k = mlen;
      bool carry = true;
      while (carry && k-- > 0) {
        if (up[k] == '.')
          continue;
        if (up[k] == '9') {
          up[k] = '0';
        } else {
          up[k]++;
          carry = false;
        }
      }
      if (!carry && strtod(up, NULL) == d) {
        memcpy(buf, up, sizeof buf);
        break;
      }
    }
  }
  /* buf: D[.DDD]e[+-]XX */
  size_t n = 0;
  const char *p = buf;
  for (; *p != 'e'; p++)
    if (*p >= '0' && *p <= '9')
      digits[n++] = *p;
  exp10 = atoi(p + 1);
  while (n > 1 && digits[n - 1] == '0')
    n--;
  digits[n] = '\0';
  return exp10 + 1;
}

/* Python's repr(float) into out[0..32). Returns the length. */
static size_t float_repr(double d, char out[32]) {
  size_t n = 0;
  uint64_t bits;
  char digits[20];
  int decpt, nd;
  memcpy(&bits, &d, sizeof bits);
  if (d != d) {
    memcpy(out, "nan", 4);
    n = 3;
    goto out;
  }
  if (bits >> 63) {
    out[n++] = '-';
    d = -d;
  }
  if (d > 1.7976931348623157e308) {
    memcpy(out + n, "inf", 4);
    n += 3;
    goto out;
  }
  if (d == 0) {
    digits[0] = '0';
    digits[1] = '\0';
    decpt = 1;
  } else {
    locale_t old = enter_c_locale();
    decpt = shortest_digits(d, digits);
    leave_c_locale(old);
  }
  nd = (int)strlen(digits);
  if (decpt <= -4 || decpt > 16) {
    /* 1e+16, 1.5e-05: exponent with a sign and at least two digits. */
    int e = decpt - 1;
    out[n++] = digits[0];
    if (nd > 1) {
      out[n++] = '.';
      memcpy(out + n, digits + 1, (size_t)(nd - 1));
      n += (size_t)(nd - 1);
    }
    n += (size_t)snprintf(out + n, 32 - n, "e%c%02d", e < 0 ? '-' : '+',
                          e < 0 ? -e : e);
  } else if (decpt <= 0) {
    out[n++] = '0';
    out[n++] = '.';
    for (int i = 0; i < -decpt; i++)
      out[n++] = '0';
    memcpy(out + n, digits, (size_t)nd);
    n += (size_t)nd;
  } else if (decpt >= nd) {
    memcpy(out + n, digits, (size_t)nd);
    n += (size_t)nd;
    for (int i = nd; i < decpt; i++)
      out[n++] = '0';
    out[n++] = '.';
    out[n++] = '0';
  } else {
    memcpy(out + n, digits, (size_t)decpt);
    n += (size_t)decpt;
    out[n++] = '.';
    memcpy(out + n, digits + decpt, (size_t)(nd - decpt));
    n += (size_t)(nd - decpt);
  }
  out[n] = '\0';
out:
  return n;
}

int pc__float_parse(const char *s, size_t n, double *out) {
  char buf[64];
  char *end = NULL;
  int rc = 0;
  /* Python writes repr(): short ASCII. Anything long or odd is refused
   * rather than interpreted. */
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\r'))
    n--;
  if (n == 0 || n >= sizeof buf || memchr(s, '\0', n) != NULL) {
    rc = -EINVAL;
  } else {
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* strtod also reads hexadecimal floats, which float() refuses. */
    if (strchr(buf, 'x') != NULL || strchr(buf, 'X') != NULL) {
      rc = -EINVAL;
    } else {
      locale_t old = enter_c_locale();
      double d = strtod(buf, &end);
      leave_c_locale(old);
      if (end == buf || *end != '\0')
        rc = -EINVAL;
      else
        *out = d;
    }
  }
  return rc;
}

/* ---------------------------------------------------------------- strings */
static const char hexdig[] = "0123456789abcdef";

/* Decodes one code point of valid UTF-8 (surrogates allowed) at p. */
static uint32_t utf8_next(const unsigned char **pp) {
  const unsigned char *p = *pp;
  uint32_t c = p[0];
  if (c < 0x80) {
    *pp = p + 1;
  } else if (c < 0xe0) {
    c = ((c & 0x1f) << 6) | (p[1] & 0x3fu);
    *pp = p + 2;
  } else if (c < 0xf0) {
    c = ((c & 0x0f) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
    *pp = p + 3;
  } else {
    c = ((c & 0x07) << 18) | ((p[1] & 0x3fu) << 12) | ((p[2] & 0x3fu) << 6) |
        (p[3] & 0x3fu);
    *pp = p + 4;
  }
  return c;
}

static int repr_str(const pc_value *v, pc_buffer *out) {
  size_t n;
  const unsigned char *p = (const unsigned char *)pc__strbuf(v, &n);
  const unsigned char *end = p + n;
  bool squote = memchr(p, '\'', n) != NULL;
  bool dquote = memchr(p, '"', n) != NULL;
  char quote = squote && !dquote ? '"' : '\'';
  char *d, *start;
  /* Worst case: every code point becomes \Uxxxxxxxx (10 bytes). */
  int rc =
      n > (SIZE_MAX - 2) / 10 ? -ENOMEM : pc_buffer_reserve(out, n * 10 + 2);
  if (rc < 0)
    goto out;
  d = (char *)out->data + out->len;
  start = d;
  *d++ = quote;
  while (p < end) {
    const unsigned char *cp_start = p;
    uint32_t c = utf8_next(&p);
    if (c == (uint32_t)quote || c == '\\') {
      *d++ = '\\';
      *d++ = (char)c;
    } else if (c == '\t') {
      *d++ = '\\';
      *d++ = 't';
    } else if (c == '\n') {
      *d++ = '\\';
      *d++ = 'n';
    } else if (c == '\r') {
      *d++ = '\\';
      *d++ = 'r';
    } else if (pc__unicode_printable(c)) {
      memcpy(d, cp_start, (size_t)(p - cp_start));
      d += p - cp_start;
    } else if (c <= 0xff) {
      *d++ = '\\';
      *d++ = 'x';
      *d++ = hexdig[c >> 4];
      *d++ = hexdig[c & 15];
    } else if (c <= 0xffff) {
      *d++ = '\\';
      *d++ = 'u';
      for (int s = 12; s >= 0; s -= 4)
        *d++ = hexdig[(c >> s) & 15];
    } else {
      *d++ = '\\';
      *d++ = 'U';
      for (int s = 28; s >= 0; s -= 4)
        *d++ = hexdig[(c >> s) & 15];
    }
  }
  *d++ = quote;
  out->len += (size_t)(d - start);
out:
  return rc;
}

static int repr_bytes(const pc_value *v, pc_buffer *out) {
  size_t n;
  const unsigned char *p = (const unsigned char *)pc__strbuf(v, &n);
  bool squote = memchr(p, '\'', n) != NULL;
  bool dquote = memchr(p, '"', n) != NULL;
  char quote = squote && !dquote ? '"' : '\'';
  char *d, *start;
  int rc = n > (SIZE_MAX - 3) / 4 ? -ENOMEM : pc_buffer_reserve(out, n * 4 + 3);
  if (rc < 0)
    goto out;
  d = (char *)out->data + out->len;
  start = d;
  *d++ = 'b';
  *d++ = quote;
  for (size_t i = 0; i < n; i++) {
    unsigned c = p[i];
    if (c == (unsigned)quote || c == '\\') {
      *d++ = '\\';
      *d++ = (char)c;
    } else if (c == '\t') {
      *d++ = '\\';
      *d++ = 't';
    } else if (c == '\n') {
      *d++ = '\\';
      *d++ = 'n';
    } else if (c == '\r') {
      *d++ = '\\';
      *d++ = 'r';
    } else if (c < 0x20 || c >= 0x7f) {
      *d++ = '\\';
      *d++ = 'x';
      *d++ = hexdig[c >> 4];
      *d++ = hexdig[c & 15];
    } else {
      *d++ = (char)c;
    }
  }
  *d++ = quote;
  out->len += (size_t)(d - start);
out:
  return rc;
}

/* ---------------------------------------------------------------- values */
static int append_str(pc_buffer *out, const char *s) {
  return pc_buffer_append(out, s, strlen(s));
}

static int repr_depth(const pc_value *v, pc_buffer *out, int depth) {
  int rc = 0;
  unsigned t = pc__type(v);
  if (t >= PC_TYPE_LIST && depth >= PC_VALUE_MAX_DEPTH)
    t = 0xffu; /* too deep */
  switch (t) {
  case PC_TYPE_NONE:
    rc = append_str(out, "None");
    break;
  case PC_TYPE_BOOL: {
    bool b = false;
    (void)pc_value_get_bool(v, &b);
    rc = append_str(out, b ? "True" : "False");
    break;
  }
  case PC_TYPE_INT:
    rc = pc__int_to_decimal(v, out);
    break;
  case PC_TYPE_FLOAT: {
    char buf[32];
    size_t n = float_repr(pc__float_val(v), buf);
    rc = pc_buffer_append(out, buf, n);
    break;
  }
  case PC_TYPE_STR:
    rc = repr_str(v, out);
    break;
  case PC_TYPE_BYTES:
    rc = repr_bytes(v, out);
    break;
  case PC_TYPE_LIST:
  case PC_TYPE_TUPLE: {
    size_t n;
    pc_value *const *items = pc__seq_items(v, &n);
    rc = append_str(out, t == PC_TYPE_LIST ? "[" : "(");
    for (size_t i = 0; i < n && rc == 0; i++) {
      if (i > 0)
        rc = append_str(out, ", ");
      if (rc == 0)
        rc = repr_depth(items[i], out, depth + 1);
    }
    if (rc == 0 && t == PC_TYPE_TUPLE && n == 1)
      rc = append_str(out, ",");
    if (rc == 0)
      rc = append_str(out, t == PC_TYPE_LIST ? "]" : ")");
    break;
  }
  case PC_TYPE_DICT:
  case PC_TYPE_SET:
  case PC_TYPE_FROZENSET: {
    size_t n;
    const pc__entry *e = pc__map_entries(v, &n);
    if (n == 0) {
      rc = append_str(out, t == PC_TYPE_DICT  ? "{}"
                           : t == PC_TYPE_SET ? "set()"
                                              : "frozenset()");
      break;
    }
    rc = append_str(out, t == PC_TYPE_FROZENSET ? "frozenset({" : "{");
    for (size_t i = 0; i < n && rc == 0; i++) {
      if (i > 0)
        rc = append_str(out, ", ");
      if (rc == 0)
        rc = repr_depth(e[i].key, out, depth + 1);
      if (rc == 0 && t == PC_TYPE_DICT) {
        rc = append_str(out, ": ");
        if (rc == 0)
          rc = repr_depth(e[i].value, out, depth + 1);
      }
    }
    if (rc == 0)
      rc = append_str(out, t == PC_TYPE_FROZENSET ? "})" : "}");
    break;
  }
  case 0xffu:
    rc = PC_ELIMIT;
    break;
  default:
    rc = -EINVAL;
    break;
  }
  return rc;
}

int pc_value_repr_append(const pc_value *v, pc_buffer *out) {
  int rc = -EINVAL;
  if (v != NULL && out != NULL) {
    size_t len = out->len;
    rc = repr_depth(v, out, 0);
    if (rc < 0)
      out->len = len;
  }
  return rc;
}

char *pc_value_repr(const pc_value *v) {
  pc_buffer b = PC_BUFFER_INIT;
  char *s = NULL;
  int rc = pc_value_repr_append(v, &b);
  if (rc == 0)
    rc = pc_buffer_append(&b, "", 1);
  if (rc == 0) {
    s = (char *)b.data;
    b.data = NULL;
  }
  pc_buffer_release(&b);
  return s;
}
