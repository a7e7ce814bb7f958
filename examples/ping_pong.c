/* SPDX-License-Identifier: MIT */
/*
 * ping_pong: a parent and a forked child exchange messages over a duplex
 * pipe -- the C version of
 *
 *     a, b = multiprocessing.Pipe()
 *     # child: while (m := b.recv_bytes()) != b"bye": b.send_bytes(m.upper())
 *
 * Run:    ./build/examples/ping_pong
 * Prints: three "parent got: ..." lines with the child's upper-cased
 *         replies, then "child saw end of stream" and "done".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

static int child(pc_conn *c) {
  for (;;) {
    void *msg;
    size_t len;
    int rc = pc_recv_bytes(c, &msg, &len, PC_NOLIMIT);
    if (rc == PC_EOF) {
      printf("child saw end of stream\n");
      fflush(stdout);
      return 0;
    }
    if (rc != 0) {
      fprintf(stderr, "child: %s\n", pc_strerror(rc));
      return 1;
    }
    for (size_t i = 0; i < len; i++)
      ((char *)msg)[i] = (char)toupper(((unsigned char *)msg)[i]);
    rc = pc_send_bytes(c, msg, len);
    free(msg);
    if (rc != 0) {
      fprintf(stderr, "child: %s\n", pc_strerror(rc));
      return 1;
    }
  }
}

int main(void) {
  pc_conn *parent_end, *child_end;
  int rc = pc_pipe(&parent_end, &child_end, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    return 1;
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    pc_close(parent_end); /* each process keeps only its own end */
    int code = child(child_end);
    pc_close(child_end);
    _exit(code);
  }
  pc_close(child_end);

  const char *words[] = {"ping", "hello, child", "multiprocessing in C"};
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
    char reply[64];
    rc = pc_send_bytes(parent_end, words[i], strlen(words[i]));
    ssize_t n =
        rc == 0 ? pc_recv_bytes_into(parent_end, reply, sizeof reply) : rc;
    if (n < 0) {
      fprintf(stderr, "parent: %s\n", pc_strerror((int)n));
      return 1;
    }
    printf("parent got: %.*s\n", (int)n, reply);
    fflush(stdout);
  }
  pc_close(parent_end); /* the child's receive now reports PC_EOF */
  int status;
  waitpid(pid, &status, 0);
  printf("done\n");
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
