/* SPDX-License-Identifier: MIT */
/*
 * libpipeconn: Python's multiprocessing.Pipe for C.
 *
 * This header is the whole public API and its manual. It gathers the topic
 * headers under pipeconn/:
 *   version.h     version macros and pc_version()
 *   errors.h      return codes, pc_strerror(), pc_errname()
 *   conn.h        the Connection: pc_pipe, pc_send_bytes, pc_recv_bytes, ...
 *   serializer.h  pluggable serializers, pc_send / pc_recv
 *   value.h       pc_value, the objects Python programs exchange, and pickle
 *   queue.h       pc_queue, a multi-process queue
 */
#ifndef PIPECONN_H
#define PIPECONN_H

#include "pipeconn/version.h"
#include "pipeconn/errors.h"
#include "pipeconn/conn.h"
#include "pipeconn/serializer.h"
#include "pipeconn/value.h"
#include "pipeconn/queue.h"

#endif
