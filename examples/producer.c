/* SPDX-License-Identifier: MIT */
/*
 * producer: starts a consumer PROGRAM (fork + exec), hands it the read end
 * of a pipe, and streams messages to it. The consumer can be the C program
 * examples/consumer.c or the Python script examples/consumer.py: both read
 * the same pickled messages from the inherited descriptor and print the
 * same lines, which shows that C and Python processes interoperate.
 *
 * Python equivalent of the pair (with the consumer exec'd, not forked):
 *
 *     r, w = os.pipe()
 *     consumer = subprocess.Popen([..., '--fd', str(r)], pass_fds=[r])
 *     os.close(r)
 *     conn = Connection(w, readable=False)
 *     for i in range(count):
 *         conn.send((i, f'item {i}', i * i))
 *     conn.close()
 *     consumer.wait()
 *
 * Run:    ./build/examples/producer                 (C consumer next to it)
 *         ./build/examples/producer --consumer ./build/examples/consumer
 *         ./build/examples/producer --consumer "python3 examples/consumer.py"
 *         options: --count N (default 10000 messages)
 * Prints: producer: streaming 10000 messages
 *         consumer: received (0, 'item 0', 0)
 *         consumer: received (1, 'item 1', 1)
 *         consumer: received (2, 'item 2', 4)
 *         consumer: end of stream after 10000 messages, sum of squares 333283335000
 *         producer: consumer exited with status 0
 * The consumer command given with --consumer is run by /bin/sh with
 * " --fd N" appended (N: the descriptor number it inherits).
 * Shows:  handing a pipe end across exec: pc_pipe makes close-on-exec
 *         descriptors, and the child clears the flag on the one end the
 *         consumer needs just before exec, so the write end does not leak
 *         into the consumer (which would then never see end of stream).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

/* The `consumer` program in the producer's own directory. */
static char *default_consumer(const char *argv0) {
  const char *slash = strrchr(argv0, '/');
  size_t dir = slash != NULL ? (size_t)(slash - argv0) + 1 : 0;
  char *path = malloc(dir + sizeof "consumer");
  if (path != NULL) {
    memcpy(path, argv0, dir);
    memcpy(path + dir, "consumer", sizeof "consumer");
  }
  return path;
}

/* In the child: make fd (and only fd) survive exec, then run the consumer.
 * Never returns. */
static void exec_consumer(int fd, const char *program, const char *command) {
  char fdtext[16];
  snprintf(fdtext, sizeof fdtext, "%d", fd);
  /* Only this process's descriptor table changes: the parent's copy stays
   * close-on-exec. */
  if (fcntl(fd, F_SETFD, 0) < 0) {
    perror("fcntl");
    _exit(127);
  }
  if (command == NULL) {
    execl(program, program, "--fd", fdtext, (char *)NULL);
    fprintf(stderr, "producer: cannot run %s: %s\n", program, strerror(errno));
  } else {
    size_t n = strlen(command) + sizeof " --fd " + strlen(fdtext) + 5;
    char *line = malloc(n);
    if (line != NULL) {
      snprintf(line, n, "exec %s --fd %s", command, fdtext);
      execl("/bin/sh", "sh", "-c", line, (char *)NULL);
    }
    fprintf(stderr, "producer: cannot run /bin/sh: %s\n", strerror(errno));
  }
  _exit(127);
}

/* The message number i: (i, 'item i', i * i). */
static int send_item(pc_conn *conn, int64_t i) {
  char text[32];
  snprintf(text, sizeof text, "item %lld", (long long)i);
  pc_value *s = pc_value_str(text);
  /* The tuple takes its own references (it borrows), so ours is released
   * right after; small ints are not allocated at all. */
  pc_value *t = s != NULL ? pc_value_tuple_pack(3, pc_value_int(i), s,
                                                pc_value_int(i * i))
                          : NULL;
  pc_value_free(s);
  int rc = t != NULL ? pc_send(conn, t) : -ENOMEM;
  pc_value_free(t);
  return rc;
}

int main(int argc, char **argv) {
  const char *command = NULL;
  long count = 10000;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--consumer") == 0 && i + 1 < argc)
      command = argv[++i];
    else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
      count = strtol(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: %s [--consumer COMMAND] [--count N]\n", argv[0]);
      return 2;
    }
  }
  if (count < 0 || count > 3000000L) {
    fprintf(stderr, "producer: --count must be between 0 and 3000000\n");
    return 2;
  }
  char *program = command == NULL ? default_consumer(argv[0]) : NULL;
  if (command == NULL && program == NULL)
    return 1;

  pc_conn *reader, *writer;
  int rc = pc_pipe(&reader, &writer, PC_SIMPLEX); /* both close-on-exec */
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    free(program);
    return 1;
  }
  printf("producer: streaming %ld messages\n", count);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0)
    exec_consumer(pc_fileno(reader), program, command);
  free(program);
  pc_close(reader); /* the consumer has its own copy */
  if (pid < 0) {
    perror("fork");
    pc_close(writer);
    return 1;
  }

  int failed = 0;
  for (long i = 0; i < count; i++) {
    rc = send_item(writer, i);
    if (rc != 0) {
      /* -EPIPE when the consumer stopped reading: no SIGPIPE kills us. */
      fprintf(stderr, "producer: message %ld: %s\n", i, pc_strerror(rc));
      failed = 1;
      break;
    }
  }
  if (pc_close(writer) != 0) /* end of stream for the consumer */
    failed = 1;

  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("waitpid");
      return 1;
    }
  }
  if (WIFEXITED(status))
    printf("producer: consumer exited with status %d\n", WEXITSTATUS(status));
  else
    printf("producer: consumer killed by signal %d\n", WTERMSIG(status));
  return failed || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}
