/* SPDX-License-Identifier: MIT */
/*
 * queue_action: a child puts an item into a queue and exits; the parent
 * joins the child FIRST and gets the item afterwards -- the C version of
 *
 *     from multiprocessing import Process, Queue
 *
 *     def action(q):
 *         q.put('python')       # --big: 'python' + 'x' * (10 MiB - 6)
 *
 *     if __name__ == '__main__':
 *         q = Queue()
 *         p = Process(target=action, args=(q,))
 *         p.start()
 *         p.join()
 *         item = q.get()
 *         print(item)           # --big: print(item[:6], len(item))
 *
 * With a 10 MiB item this Python program deadlocks: the child's feeder
 * thread cannot flush the item into the full pipe, so the child does not
 * exit, and the parent does not read before the child exits (the docs'
 * "joining processes that use queues"). pc_queue has no feeder thread: a put
 * copies the item into the queue's shared memory and returns, so the child
 * exits at once and join-then-get works at any size.
 *
 * --pipe is the same program over a Pipe (the child sends, the parent joins,
 * then receives). A pipe holds only what the kernel buffers (64 KiB on
 * Linux), so with --pipe --big the child's send cannot finish before
 * somebody reads -- in C as in Python. There the parent receives first and
 * joins afterwards, the only order that works; use a queue when the sender
 * must be able to exit before the receiver reads.
 *
 * Run:    ./build/examples/queue_action [--pipe] [--big]
 * Prints: "python"; with --big "python 10485760" (the item's first six
 *         characters and its length). Exits with 1 if the item is wrong.
 * Shows:  pc_queue_put/pc_queue_get of a str, waitpid before get never
 *         deadlocks, and the difference between a queue and a pipe.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

#define BIG_LEN ((size_t)10 << 20)

/* 'python', or with big 'python' + 'x' * (10 MiB - 6). */
static pc_value *make_item(bool big) {
  if (!big)
    return pc_value_str("python");
  char *text = malloc(BIG_LEN);
  if (text == NULL)
    return NULL;
  memcpy(text, "python", 6);
  memset(text + 6, 'x', BIG_LEN - 6);
  pc_value *v = pc_value_strn(text, BIG_LEN);
  free(text);
  return v;
}

/* print(item), or print(item[:6], len(item)) for the big item, after
 * checking that it is exactly what make_item built. */
static int print_item(const pc_value *item, bool big) {
  size_t len;
  const char *text = pc_value_str_data(item, &len);
  if (text == NULL || len < 6 || memcmp(text, "python", 6) != 0 ||
      len != (big ? BIG_LEN : 6)) {
    fprintf(stderr, "got the wrong item\n");
    return 1;
  }
  for (size_t i = 6; i < len; i++)
    if (text[i] != 'x') {
      fprintf(stderr, "got a corrupt item\n");
      return 1;
    }
  if (big)
    printf("%.6s %zu\n", text, len); /* ASCII: bytes are characters */
  else
    printf("%s\n", text);
  fflush(stdout);
  return 0;
}

static int join(pid_t pid) {
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return 1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int queue_variant(bool big) {
  pc_queue *q;
  int rc = pc_queue_new(&q, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_queue_new: %s\n", pc_strerror(rc));
    return 1;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) { /* action(q) */
    pc_value *item = make_item(big);
    rc = item != NULL ? pc_queue_put(q, item, -1) : -ENOMEM;
    pc_value_free(item);
    if (rc != 0)
      fprintf(stderr, "put: %s\n", pc_strerror(rc));
    _exit(rc != 0);
  }
  if (pid < 0)
    perror("fork");

  int failed = join(pid); /* join first: returns as soon as put returned */
  pc_value *item = NULL;
  /* A bounded get: if the child failed, there is nothing to wait for. */
  rc = pc_queue_get(q, (void **)&item, failed ? 0 : -1);
  if (rc == 0)
    failed |= print_item(item, big);
  else {
    fprintf(stderr, "get: %s\n", pc_strerror(rc));
    failed = 1;
  }
  pc_value_free(item);
  pc_queue_free(q);
  return failed;
}

static int pipe_variant(bool big) {
  pc_conn *parent_end, *child_end;
  int rc = pc_pipe(&parent_end, &child_end, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    return 1;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) { /* action(conn) */
    pc_close(parent_end);
    pc_value *item = make_item(big);
    rc = item != NULL ? pc_send(child_end, item) : -ENOMEM;
    pc_value_free(item);
    if (rc != 0)
      fprintf(stderr, "send: %s\n", pc_strerror(rc));
    _exit(pc_close(child_end) != 0 || rc != 0);
  }
  if (pid < 0)
    perror("fork");
  pc_close(child_end);

  /* 'python' fits in the pipe's buffer, so the child exits without
   * anybody reading and joining first works; 10 MiB does not fit, so the
   * parent must receive first. */
  int failed = big ? 0 : join(pid);
  pc_value *item = NULL;
  rc = pc_recv(parent_end, (void **)&item);
  if (rc == 0)
    failed |= print_item(item, big);
  else {
    fprintf(stderr, "recv: %s\n", pc_strerror(rc));
    failed = 1;
  }
  pc_value_free(item);
  pc_close(parent_end);
  if (big)
    failed |= join(pid);
  return failed;
}

int main(int argc, char **argv) {
  bool pipe = false, big = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--pipe") == 0)
      pipe = true;
    else if (strcmp(argv[i], "--big") == 0)
      big = true;
    else {
      fprintf(stderr, "usage: %s [--pipe] [--big]\n", argv[0]);
      return 2;
    }
  }
  return pipe ? pipe_variant(big) : queue_variant(big);
}
