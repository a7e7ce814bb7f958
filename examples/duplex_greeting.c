/* SPDX-License-Identifier: MIT */
/*
 * duplex_greeting: two processes greet each other over one duplex pipe --
 * the C version of
 *
 *     from multiprocessing import Pipe, Process
 *
 *     def left(conn):
 *         conn.send("I am left")
 *         print(conn.recv())
 *
 *     def right(conn):
 *         print(conn.recv())
 *         conn.send("I am right")
 *
 *     if __name__ == "__main__":
 *         a, b = Pipe()
 *         procs = [Process(target=left, args=(a,)),
 *                  Process(target=right, args=(b,))]
 *         for p in procs: p.start()
 *         for p in procs: p.join()
 *
 * Run:    ./build/examples/duplex_greeting
 * Prints: "I am left" (printed by the right process, which received it),
 *         then "I am right" (printed by the left process), as Python does.
 * Shows:  a duplex pc_pipe (both ends send and receive), pc_send/pc_recv of
 *         str values, and each process closing the end it does not use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

/* Python's print(v): a str prints as its text, anything else as repr(v). */
static int print_value(const pc_value *v) {
  size_t len;
  char *repr = NULL;
  const char *text = pc_value_str_data(v, &len);
  if (text == NULL) {
    repr = pc_value_repr(v);
    if (repr == NULL)
      return 1;
    text = repr;
    len = strlen(repr);
  }
  fwrite(text, 1, len, stdout);
  putchar('\n');
  fflush(stdout); /* both processes share stdout: keep the order */
  free(repr);
  return 0;
}

static int send_str(pc_conn *c, const char *text) {
  pc_value *v = pc_value_str(text);
  int rc = v != NULL ? pc_send(c, v) : -ENOMEM;
  pc_value_free(v);
  if (rc != 0)
    fprintf(stderr, "send: %s\n", pc_strerror(rc));
  return rc != 0;
}

static int recv_and_print(pc_conn *c) {
  pc_value *v = NULL;
  int rc = pc_recv(c, (void **)&v);
  if (rc != 0) {
    fprintf(stderr, "recv: %s\n", pc_strerror(rc));
    return 1;
  }
  rc = print_value(v);
  pc_value_free(v);
  return rc;
}

static int left(pc_conn *conn) {
  if (send_str(conn, "I am left") != 0)
    return 1;
  return recv_and_print(conn);
}

static int right(pc_conn *conn) {
  if (recv_and_print(conn) != 0)
    return 1;
  return send_str(conn, "I am right");
}

/* Process(target=fn, args=(use,)).start(): the child closes `drop`, the
 * end it does not use, runs fn and exits with its result. */
static pid_t start(int (*fn)(pc_conn *), pc_conn *use, pc_conn *drop) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    pc_close(drop);
    int code = fn(use);
    _exit(pc_close(use) == 0 ? code : 1);
  }
  if (pid < 0)
    perror("fork");
  return pid;
}

/* p.join(): 0 when the child exited cleanly. */
static int join(pid_t pid) {
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return 1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(void) {
  pc_conn *a, *b;
  int rc = pc_pipe(&a, &b, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    return 1;
  }
  pid_t l = start(left, a, b);
  pid_t r = start(right, b, a);
  /* The parent uses neither end. */
  pc_close(a);
  pc_close(b);
  int failed = join(l);
  failed |= join(r);
  return failed;
}
