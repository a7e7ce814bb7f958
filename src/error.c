/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "internal.h"

const char *pc_strerror(int err) {
  const char *s = "unknown error";
  switch (err) {
#define PC__ERR_TEXT(name, n, text)                                            \
  case PC_##name:                                                              \
    s = text;                                                                  \
    break;
    PC_ERROR_MAP(PC__ERR_TEXT)
#undef PC__ERR_TEXT
  case 0:
    s = "success";
    break;
  default:
    /* strerrordesc_np returns a constant string (or NULL for unknown
     * values), unlike strerror, which may format into a shared buffer. */
    if (err < 0 && err > -4096) {
      const char *d = strerrordesc_np(-err);
      if (d != NULL)
        s = d;
    }
    break;
  }
  return s;
}

const char *pc_errname(int err) {
  const char *s = "UNKNOWN";
  switch (err) {
#define PC__ERR_NAME(name, n, text)                                            \
  case PC_##name:                                                              \
    s = "PC_" #name;                                                           \
    break;
    PC_ERROR_MAP(PC__ERR_NAME)
#undef PC__ERR_NAME
  case 0:
    s = "0";
    break;
  default:
    if (err < 0 && err > -4096) {
      const char *d = strerrorname_np(-err);
      if (d != NULL)
        s = d;
    }
    break;
  }
  return s;
}
