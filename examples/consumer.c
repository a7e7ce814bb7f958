/* SPDX-License-Identifier: MIT */
/*
 * consumer: reads the messages examples/producer streams to it over an
 * inherited pipe end, until end of stream. examples/consumer.py does the
 * same job in Python. The Python version of this program is:
 *
 *     conn = Connection(fd, writable=False)
 *     count = total = 0
 *     while True:
 *         try:
 *             item = conn.recv()
 *         except EOFError:
 *             break
 *         # check item == (count, f'item {count}', count * count)
 *         if count < 3:
 *             print('consumer: received', item)
 *         count += 1
 *         total += item[2]
 *     print(f'consumer: end of stream after {count} messages, '
 *           f'sum of squares {total}')
 *
 * Run:    started by the producer: ./build/examples/producer
 *         (by hand: ./build/examples/consumer --fd N, where descriptor N
 *         is the read end of a pipe carrying the producer's messages)
 * Prints: the first three messages and the totals, e.g.
 *         consumer: received (0, 'item 0', 0)
 *         ...
 *         consumer: end of stream after 10000 messages, sum of squares 333283335000
 *         Exits with 1 on a message out of sequence.
 * Shows:  pc_conn_from_fd on a descriptor inherited across exec, pc_recv
 *         until PC_EOF, reading a tuple with pc_value_item.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pipeconn.h>

/* Whether item is (i, 'item i', i * i). */
static int is_expected(const pc_value *item, int64_t i) {
  char text[32];
  int64_t first, third;
  size_t len;
  snprintf(text, sizeof text, "item %" PRId64, i);
  const char *second = pc_value_str_data(pc_value_item(item, 1), &len);
  return pc_value_type(item) == PC_TYPE_TUPLE && pc_value_len(item) == 3 &&
         pc_value_get_int(pc_value_item(item, 0), &first) == 0 && first == i &&
         second != NULL && len == strlen(text) &&
         memcmp(second, text, len) == 0 &&
         pc_value_get_int(pc_value_item(item, 2), &third) == 0 &&
         third == i * i;
}

int main(int argc, char **argv) {
  char *end = NULL;
  long fd = argc == 3 && strcmp(argv[1], "--fd") == 0
                ? strtol(argv[2], &end, 10)
                : -1;
  if (fd < 0 || fd > 1 << 20 || end == NULL || *end != '\0') {
    fprintf(stderr, "usage: %s --fd N (N: an inherited pipe read end)\n",
            argv[0]);
    return 2;
  }
  pc_conn *conn;
  int rc = pc_conn_from_fd((int)fd, PC_READABLE, &conn);
  if (rc != 0) {
    fprintf(stderr, "consumer: descriptor %ld: %s\n", fd, pc_strerror(rc));
    return 1;
  }

  int64_t count = 0, total = 0;
  int failed = 0;
  for (;;) {
    pc_value *item = NULL;
    rc = pc_recv(conn, (void **)&item);
    if (rc == PC_EOF)
      break; /* Python: EOFError */
    if (rc != 0) {
      fprintf(stderr, "consumer: %s\n", pc_strerror(rc));
      failed = 1;
      break;
    }
    char *repr = pc_value_repr(item);
    if (repr == NULL || !is_expected(item, count)) {
      fprintf(stderr, "consumer: unexpected message %" PRId64 ": %s\n", count,
              repr != NULL ? repr : "?");
      failed = 1;
    } else if (count < 3) {
      printf("consumer: received %s\n", repr);
    }
    free(repr);
    pc_value_free(item);
    if (failed)
      break;
    total += count * count;
    count++;
  }
  if (!failed)
    printf("consumer: end of stream after %" PRId64
           " messages, sum of squares %" PRId64 "\n",
           count, total);
  pc_close(conn);
  return failed;
}
