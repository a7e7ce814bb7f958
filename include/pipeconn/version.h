/* SPDX-License-Identifier: MIT */
#ifndef PIPECONN_VERSION_H
#define PIPECONN_VERSION_H

/* PC_API marks the symbols the shared library exports; everything else is hidden. */
#if defined(PIPECONN_BUILDING) && defined(__GNUC__)
#define PC_API __attribute__((visibility("default")))
#else
#define PC_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

#define PC_VERSION_MAJOR 0
#define PC_VERSION_MINOR 1
#define PC_VERSION_PATCH 0
/* PC_VERSION_NUMBER is 0xMMmmpp, comparable with < and >. */
#define PC_VERSION_NUMBER                                                      \
  ((PC_VERSION_MAJOR << 16) | (PC_VERSION_MINOR << 8) | PC_VERSION_PATCH)
#define PC_VERSION_STRING "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

/* pc_version returns the library's version as "MAJOR.MINOR.PATCH" (a static
 * string). Compare it with PC_VERSION_STRING to detect a header/library
 * mismatch at run time. */
PC_API const char *pc_version(void);

/* pc_version_number returns PC_VERSION_NUMBER of the library that is loaded. */
PC_API unsigned pc_version_number(void);

#ifdef __cplusplus
}
#endif
#endif
