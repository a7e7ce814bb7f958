/* SPDX-License-Identifier: MIT */
/* The wire format: Python's multiprocessing.connection framing. */
#include "internal.h"

void pc__put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

void pc__put_be64(unsigned char *p, uint64_t v) {
  pc__put_be32(p, (uint32_t)(v >> 32));
  pc__put_be32(p + 4, (uint32_t)v);
}

uint32_t pc__get_be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

uint64_t pc__get_be64(const unsigned char *p) {
  return ((uint64_t)pc__get_be32(p) << 32) | pc__get_be32(p + 4);
}

size_t pc__frame_header(unsigned char hdr[PC__HDR_LARGE], uint64_t len) {
  size_t n;
  if (len <= PC_SMALL_FRAME_MAX) {
    pc__put_be32(hdr, (uint32_t)len);
    n = PC__HDR_SMALL;
  } else {
    /* Python (3.8+) announces a large payload with -1, then 8 bytes. */
    pc__put_be32(hdr, UINT32_MAX);
    pc__put_be64(hdr + PC__HDR_SMALL, len);
    n = PC__HDR_LARGE;
  }
  return n;
}

int pc__frame_parse(const unsigned char *p, size_t avail, uint64_t *len) {
  int rc = 0;
  if (avail >= PC__HDR_SMALL) {
    uint32_t h = pc__get_be32(p);
    if (h == UINT32_MAX) {
      if (avail >= PC__HDR_LARGE) {
        *len = pc__get_be64(p + PC__HDR_SMALL);
        rc = (int)PC__HDR_LARGE;
      }
    } else if (h > PC_SMALL_FRAME_MAX) {
      /* Python yields an empty message here and loses sync; a negative
       * length can only come from a broken or hostile peer. */
      rc = PC_EPROTO;
    } else {
      *len = h;
      rc = (int)PC__HDR_SMALL;
    }
  }
  return rc;
}
