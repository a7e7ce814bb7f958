/* SPDX-License-Identifier: MIT */
/*
 * producer_consumer: one producer sends the numbers 0..9 to one consumer
 * over a one-way pipe -- the C version of
 *
 *     from multiprocessing import Pipe, Process
 *
 *     def producer(conn):
 *         for i in range(10):
 *             conn.send(i)
 *         conn.close()
 *
 *     def consumer(conn, writer):
 *         writer.close()   # a forked child inherits the write end too
 *         while True:
 *             try:
 *                 item = conn.recv()
 *             except EOFError:
 *                 break
 *             print(item)
 *
 *     if __name__ == "__main__":
 *         reader, writer = Pipe(duplex=False)
 *         p = Process(target=producer, args=(writer,))
 *         c = Process(target=consumer, args=(reader, writer))
 *         p.start(); c.start()
 *         reader.close(); writer.close()   # or c never sees end of stream
 *         p.join(); c.join()
 *
 * Run:    ./build/examples/producer_consumer
 * Prints: 0 to 9, one per line (printed by the consumer process).
 * Shows:  a simplex pc_pipe (PC_SIMPLEX: first end reads, second writes),
 *         pc_send of int values, and end of stream (PC_EOF) as the consumer's
 *         stop signal once every copy of the write end is closed -- instead
 *         of a sentinel value or terminate().
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

static int producer(pc_conn *conn) {
  for (int i = 0; i < 10; i++) {
    int rc = pc_send(conn, pc_value_int(i)); /* small ints never allocate */
    if (rc != 0) {
      fprintf(stderr, "producer: %s\n", pc_strerror(rc));
      return 1;
    }
  }
  return 0;
}

static int consumer(pc_conn *conn) {
  for (;;) {
    pc_value *item = NULL;
    int rc = pc_recv(conn, (void **)&item);
    if (rc == PC_EOF)
      return 0; /* Python: EOFError */
    if (rc != 0) {
      fprintf(stderr, "consumer: %s\n", pc_strerror(rc));
      return 1;
    }
    char *text = pc_value_repr(item); /* print(item) of an int */
    pc_value_free(item);
    if (text == NULL)
      return 1;
    printf("%s\n", text);
    fflush(stdout);
    free(text);
  }
}

/* Process(target=fn, args=(use,)).start(): the child closes `drop` (a
 * reader holding a copy of the write end would never see end of stream). */
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

static int join(pid_t pid) {
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return 1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(void) {
  pc_conn *reader, *writer;
  int rc = pc_pipe(&reader, &writer, PC_SIMPLEX);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    return 1;
  }
  pid_t p = start(producer, writer, reader);
  pid_t c = start(consumer, reader, writer);
  pc_close(reader);
  pc_close(writer);
  int failed = join(p);
  failed |= join(c);
  return failed;
}
