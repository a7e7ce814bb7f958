/* SPDX-License-Identifier: MIT */
/*
 * hello_child: a child sends a greeting with non-ASCII text and the parent
 * prints it -- the C version of
 *
 *     from multiprocessing import Pipe, Process
 *
 *     def f(conn):
 *         conn.send("Hello 妹妹")
 *         conn.close()
 *
 *     if __name__ == "__main__":
 *         parent_conn, child_conn = Pipe()
 *         p = Process(target=f, args=(child_conn,))
 *         p.start()
 *         print(parent_conn.recv())
 *         p.join()
 *
 * Run:    ./build/examples/hello_child
 * Prints: Hello 妹妹
 * Shows:  str values are UTF-8 in C and travel as Python str (pickled as
 *         UTF-8), so a Python peer would receive the very same string.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

static int child(pc_conn *conn) {
  pc_value *greeting = pc_value_str(u8"Hello 妹妹");
  int rc = greeting != NULL ? pc_send(conn, greeting) : -ENOMEM;
  pc_value_free(greeting);
  if (rc != 0)
    fprintf(stderr, "child: %s\n", pc_strerror(rc));
  return rc != 0;
}

int main(void) {
  pc_conn *parent_conn, *child_conn;
  int rc = pc_pipe(&parent_conn, &child_conn, 0);
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
    pc_close(parent_conn);
    int code = child(child_conn);
    _exit(pc_close(child_conn) == 0 ? code : 1);
  }
  pc_close(child_conn);

  pc_value *msg = NULL;
  size_t len = 0;
  rc = pc_recv(parent_conn, (void **)&msg);
  const char *text = rc == 0 ? pc_value_str_data(msg, &len) : NULL;
  bool printed = text != NULL;
  if (printed) {
    fwrite(text, 1, len, stdout); /* print(str): the text itself */
    putchar('\n');
  } else {
    fprintf(stderr, "parent: %s\n",
            rc != 0 ? pc_strerror(rc) : "expected a str");
  }
  pc_value_free(msg);
  pc_close(parent_conn);

  int status;
  int failed = !printed;
  if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    failed = 1;
  return failed;
}
