/* SPDX-License-Identifier: MIT */
/*
 * bench_objects: objects per second with pc_send/pc_recv and the default
 * pickle codec, parent to forked child over a duplex pc_pipe():
 *
 *   bench_objects dict COUNT [buffered]   {'name': 'bob', 'spam': 42}
 *   bench_objects list COUNT [buffered]   list(range(1000))
 *
 * With `buffered` the parent's end has a 64 KiB send buffer
 * (pc_set_buffered): pc_send appends to it and a write happens only when it
 * is full (and before the final receive), the stdio way to stream objects.
 *
 * The parent builds the object once and sends it COUNT times with pc_send
 * (encoding it each time); the child receives each with pc_recv (decoding it
 * into a new pc_value), checks it and releases it, then acknowledges. The
 * time runs from the child's ready message to its acknowledgement. Prints
 * one JSON line:
 *   {"impl": "pipeconn", "object": "dict", "count": N, "seconds": S,
 *    "objects_per_s": R}
 * bench/objects_python.py runs the same workload with Python's
 * multiprocessing.Pipe and compares the two (--compare).
 *
 * Honesty: the child checks the length and a sample item of every object,
 * and every item of every 64th object and of the last.
 */
#include "bench_common.h"
#include "pipeconn.h"

static bool failed(const char *what, long rc) {
  bool bad = rc < 0;
  if (bad)
    fprintf(stderr, "%s: %s (%s)\n", what, pc_errname((int)rc),
            pc_strerror((int)rc));
  return bad;
}

static pc_value *make_dict(void) {
  pc_value *d = pc_value_dict();
  if (d != NULL &&
      (pc_value_dict_set_str_steal(d, "name", pc_value_str("bob")) != 0 ||
       pc_value_dict_set_str_steal(d, "spam", pc_value_int(42)) != 0)) {
    pc_value_free(d);
    d = NULL;
  }
  return d;
}

static pc_value *make_list(void) {
  pc_value *l = pc_value_list();
  for (int i = 0; i < 1000 && l != NULL; i++) {
    if (pc_value_list_append_steal(l, pc_value_int(i)) != 0) {
      pc_value_free(l);
      l = NULL;
    }
  }
  return l;
}

static bool int_is(const pc_value *v, int64_t want) {
  int64_t got;
  return v != NULL && pc_value_get_int(v, &got) == 0 && got == want;
}

/* Checks a received object; `full` checks every item. */
static bool check(const pc_value *v, bool is_dict, bool full) {
  bool ok;
  if (is_dict) {
    size_t len = 0;
    const char *name =
        pc_value_str_data(pc_value_dict_get_str(v, "name"), &len);
    ok = pc_value_len(v) == 2 && int_is(pc_value_dict_get_str(v, "spam"), 42) &&
         name != NULL && len == 3 && memcmp(name, "bob", 3) == 0;
  } else {
    ok = pc_value_type(v) == PC_TYPE_LIST && pc_value_len(v) == 1000 &&
         int_is(pc_value_item(v, 999), 999);
    for (size_t i = 0; full && ok && i < 1000; i++)
      ok = int_is(pc_value_item(v, i), (int64_t)i);
  }
  return ok;
}

static int child(pc_conn *c, bool is_dict, long count) {
  int code = 1;
  if (failed("pc_send_bytes", pc_send_bytes(c, "r", 1)))
    goto out;
  for (long i = 0; i < count; i++) {
    void *obj = NULL;
    if (failed("pc_recv", pc_recv(c, &obj)))
      goto out;
    bool ok = check(obj, is_dict, i % BENCH_SAMPLE == 0 || i == count - 1);
    pc_value_free(obj);
    if (!ok) {
      fprintf(stderr, "object %ld is wrong\n", i);
      goto out;
    }
  }
  if (failed("pc_send_bytes", pc_send_bytes(c, "a", 1)))
    goto out;
  code = 0;
out:
  return code;
}

static int parent(pc_conn *c, const pc_value *obj, long count,
                  double *seconds) {
  unsigned char ack[1];
  int rc = -1;
  double t0;
  if (failed("pc_recv_bytes_into", pc_recv_bytes_into(c, ack, sizeof ack)))
    goto out;
  t0 = bench_now();
  for (long i = 0; i < count; i++)
    if (failed("pc_send", pc_send(c, obj)))
      goto out;
  if (failed("pc_recv_bytes_into", pc_recv_bytes_into(c, ack, sizeof ack)))
    goto out;
  *seconds = bench_now() - t0;
  rc = 0;
out:
  return rc;
}

int main(int argc, char **argv) {
  int rc = 1;
  pc_conn *mine = NULL, *theirs = NULL;
  pc_value *obj = NULL;
  double seconds = 0;
  long count = 0;
  bool is_dict = false, buffered = false;
  char *end = NULL;
  pid_t pid;
  if (argc == 3 || argc == 4) {
    is_dict = strcmp(argv[1], "dict") == 0;
    count = strtol(argv[2], &end, 10);
    buffered = argc == 4 && strcmp(argv[3], "buffered") == 0;
  }
  if (argc < 3 || argc > 4 || (argc == 4 && !buffered) ||
      (!is_dict && strcmp(argv[1], "list") != 0) || *end != '\0' || count < 1) {
    fprintf(stderr, "usage: %s dict|list COUNT [buffered]\n", argv[0]);
    goto out;
  }
  alarm(BENCH_ALARM_S);
  obj = is_dict ? make_dict() : make_list();
  if (obj == NULL || failed("pc_pipe", pc_pipe(&mine, &theirs, 0)))
    goto out;
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("fork");
    goto out;
  }
  if (pid == 0) {
    int code;
    alarm(BENCH_ALARM_S);
    pc_close(mine);
    code = child(theirs, is_dict, count);
    pc_close(theirs);
    _exit(code);
  }
  pc_close(theirs);
  theirs = NULL;
  if (buffered && failed("pc_set_buffered", pc_set_buffered(mine, 64 * 1024)))
    goto out;
  if (parent(mine, obj, count, &seconds) != 0) {
    pc_close(mine);
    mine = NULL;
    bench_wait_child(pid);
    goto out;
  }
  if (bench_wait_child(pid) != 0)
    goto out;
  printf("{\"impl\": \"%s\", \"object\": \"%s\", \"count\": %ld, "
         "\"seconds\": %.6f, \"objects_per_s\": %.1f}\n",
         buffered ? "pipeconn-buffered" : "pipeconn", argv[1], count, seconds,
         (double)count / seconds);
  rc = 0;
out:
  pc_close(mine);
  pc_value_free(obj);
  return rc;
}
