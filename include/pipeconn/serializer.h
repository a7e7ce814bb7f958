/* SPDX-License-Identifier: MIT */
#ifndef PIPECONN_SERIALIZER_H
#define PIPECONN_SERIALIZER_H

#include <stddef.h>

#include "conn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Growable byte buffer                                                      */
/* ------------------------------------------------------------------------ */
/*
 * A serializer writes its encoding into a pc_buffer. The fields are public so
 * that an encoder can write in place: reserve room, write at data + len,
 * then advance len. Start from PC_BUFFER_INIT (all zero).
 */
typedef struct pc_buffer {
  unsigned char *data; /* malloc'd storage, NULL while cap == 0 */
  size_t len;          /* bytes written */
  size_t cap;          /* bytes allocated */
} pc_buffer;

#define PC_BUFFER_INIT                                                         \
  { NULL, 0, 0 }

/* pc_buffer_reserve makes room for at least `extra` more bytes after len.
 * Returns 0 or -ENOMEM (the buffer is unchanged). */
PC_API int pc_buffer_reserve(pc_buffer *b, size_t extra);

/* pc_buffer_append appends n bytes. Returns 0 or -ENOMEM (unchanged). */
PC_API int pc_buffer_append(pc_buffer *b, const void *p, size_t n);

/* pc_buffer_release frees the storage and resets b to PC_BUFFER_INIT.
 * NULL is accepted. */
PC_API void pc_buffer_release(pc_buffer *b);

/* ------------------------------------------------------------------------ */
/* Serializers                                                               */
/* ------------------------------------------------------------------------ */
/*
 * A serializer turns objects into message payloads and back. It is a const
 * table of functions; `ctx` is the user data given with it. The library
 * never looks inside objects: they are `void *` to it.
 *
 * encode: append the encoding of obj to out and return 0, or return a
 *   negative code (PC_EENCODE when obj cannot be represented, -ENOMEM, ...).
 *   On failure nothing is sent; whatever encode appended is discarded.
 * decode: build a new object from data[0..len) into *obj and return 0, or
 *   return a negative code (PC_EPROTO, PC_EUNSAFE, PC_ELIMIT, -ENOMEM, ...)
 *   leaving *obj untouched. data is only valid during the call.
 * release: free an object returned by decode (obj may be NULL).
 */
typedef struct pc_serializer {
  const char *name;
  int (*encode)(void *ctx, const void *obj, pc_buffer *out);
  int (*decode)(void *ctx, const void *data, size_t len, void **obj);
  void (*release)(void *ctx, void *obj);
} pc_serializer;

/* pc_conn_set_serializer makes pc_send/pc_recv on c use s with ctx (both
 * must outlive c). s == NULL restores the default: the pickle codec over
 * pc_value (pc_pickle_serializer() with ctx NULL: protocol 4).
 * Returns 0, -EINVAL (s lacks a function), PC_ECLOSED. */
PC_API int pc_conn_set_serializer(pc_conn *c, const pc_serializer *s,
                                  void *ctx);

/* pc_send encodes obj with the connection's serializer and sends it as one
 * message. Python: send(obj). If encoding fails nothing is written and the
 * encoder's code is returned (PC_EENCODE, ...). Otherwise as pc_send_bytes.
 * With the default serializer obj is a `const pc_value *`. */
PC_API int pc_send(pc_conn *c, const void *obj);

/* pc_recv receives one message and decodes it with the connection's
 * serializer into *obj (a new object: release it with the serializer's
 * release, pc_value_free for the default). Python: recv().
 * A decoding failure consumes exactly that message and returns the
 * decoder's code (PC_EPROTO, PC_EUNSAFE, PC_ELIMIT, -ENOMEM); the connection
 * stays usable and the next pc_recv reads the next message.
 * Otherwise as pc_recv_bytes (no maximum length). */
PC_API int pc_recv(pc_conn *c, void **obj);

#ifdef __cplusplus
}
#endif
#endif
