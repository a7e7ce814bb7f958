/* SPDX-License-Identifier: MIT */
/* pc_wait: multiprocessing.connection.wait() over connections and plain
 * descriptors. */
#include <poll.h>
#include <stdlib.h>

#include "internal.h"

int pc_wait_items(pc_wait_item *items, size_t n, int timeout_ms) {
  int rc = 0;
  struct pollfd small[16], *p = small;
  pc__deadline d;
  int64_t spin_until = 0;

  if ((n > 0 && items == NULL) || timeout_ms < -1)
    return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    items[i].ready = false;
    if (items[i].conn != NULL
            ? !pc_readable(items[i].conn) || pc_closed(items[i].conn)
            : items[i].fd < 0)
      return -EINVAL;
  }
  if (n > sizeof small / sizeof small[0]) {
    p = calloc(n, sizeof *p);
    if (p == NULL)
      return -ENOMEM;
  }
  d = pc__deadline_from_ms(timeout_ms);
  /* Spin as the most eager of the connections would (pc_set_spin); plain
   * descriptors and PC_SHARED ends, as in their receives, never do. */
  for (size_t i = 0; i < n; i++) {
    pc_conn *c = items[i].conn;
    int us = c != NULL && c->sh_rx == NULL ? atomic_load(&c->spin_us) : 0;
    if (us * 1000 > d.spin_ns)
      d.spin_ns = us * 1000;
  }
  for (;;) {
    /* A connection may already hold a whole message it read ahead, which
     * poll(2) cannot see: ask each one first (without blocking). Every ready
     * entry is reported, so none starves. */
    int ready = 0;
    for (size_t i = 0; i < n; i++) {
      if (items[i].conn != NULL) {
        int r = pc_poll(items[i].conn, 0);
        if (r < 0) {
          rc = r;
          goto out;
        }
        items[i].ready = r > 0;
        p[i].fd = pc_fileno(items[i].conn);
      } else {
        p[i].fd = items[i].fd;
      }
      p[i].events = POLLIN;
      p[i].revents = 0;
    }
    int r = poll(p, (nfds_t)n, 0);
    for (size_t i = 0; r > 0 && i < n; i++)
      if (items[i].conn == NULL && p[i].revents != 0)
        items[i].ready = true;
    for (size_t i = 0; i < n; i++)
      ready += items[i].ready;
    if (ready > 0) {
      rc = ready;
      break;
    }
    if (pc__deadline_expired(&d)) {
      rc = 0;
      break;
    }
    if (d.spin_ns > 0 && pc__spin_round(&d, -1, &spin_until))
      continue;
    /* Nothing whole yet: sleep until some descriptor has bytes. A connection
     * with only part of a message wakes us; we then poll it again. */
    r = poll(p, (nfds_t)n, pc__deadline_poll_ms(&d));
    if (r < 0 && errno != EINTR) {
      rc = pc__errno_neg();
      break;
    }
  }
out:
  if (p != small)
    free(p);
  return rc;
}

int pc_wait(pc_conn **conns, size_t n, int timeout_ms, pc_conn **ready,
            size_t *nready) {
  int rc;
  pc_wait_item small[16], *items = small;
  if ((n > 0 && (conns == NULL || ready == NULL)) || nready == NULL)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (conns[i] == NULL)
      return -EINVAL;
  if (n > sizeof small / sizeof small[0]) {
    items = calloc(n, sizeof *items);
    if (items == NULL)
      return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    items[i].conn = conns[i];
    items[i].fd = -1;
  }
  rc = pc_wait_items(items, n, timeout_ms);
  if (rc >= 0) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
      if (items[i].ready)
        ready[k++] = conns[i];
    *nready = k;
  }
  if (items != small)
    free(items);
  return rc;
}
