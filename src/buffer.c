/* SPDX-License-Identifier: MIT */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t pc__grow_size(size_t have, size_t need) {
  size_t n = have < 64 ? 64 : have;
  while (n < need) {
    if (n > SIZE_MAX / 2) {
      n = need;
      break;
    }
    n *= 2;
  }
  return n;
}

int pc_buffer_reserve(pc_buffer *b, size_t extra) {
  int rc = 0;
  if (b == NULL) {
    rc = -EINVAL;
  } else if (extra > SIZE_MAX - b->len) {
    rc = -ENOMEM;
  } else if (b->len + extra > b->cap) {
    size_t cap = pc__grow_size(b->cap, b->len + extra);
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL) {
      rc = -ENOMEM;
    } else {
      b->data = p;
      b->cap = cap;
    }
  }
  return rc;
}

int pc_buffer_append(pc_buffer *b, const void *p, size_t n) {
  int rc = pc_buffer_reserve(b, n);
  if (rc == 0 && n > 0) {
    memcpy(b->data + b->len, p, n);
    b->len += n;
  }
  return rc;
}

void pc_buffer_release(pc_buffer *b) {
  if (b != NULL) {
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
  }
}
