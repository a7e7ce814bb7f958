/* SPDX-License-Identifier: MIT */
/*
 * queue_urls: two writers and a reader around a queue, and the same job
 * over a pipe -- the C version of these two classic tutorial programs
 * (without their random sleeps):
 *
 *     # Queue variant
 *     def proc_write(q, urls):
 *         print('Process(%s) is writing...' % os.getpid())
 *         for url in urls:
 *             q.put(url)
 *             print('Put %s to queue...' % url)
 *
 *     def proc_read(q):
 *         print('Process(%s) is reading...' % os.getpid())
 *         while True:
 *             url = q.get(True)
 *             print('Get %s from queue.' % url)
 *
 *     q = Queue()
 *     writer1 = Process(target=proc_write, args=(q, ['url_1', 'url_2', 'url_3']))
 *     writer2 = Process(target=proc_write, args=(q, ['url_4', 'url_5', 'url_6']))
 *     reader = Process(target=proc_read, args=(q,))
 *     writer1.start(); writer2.start(); reader.start()
 *     writer1.join(); writer2.join()
 *     reader.terminate()
 *
 *     # Pipe variant
 *     def proc_send(pipe, urls):
 *         for url in urls:
 *             print('Process(%s) send: %s' % (os.getpid(), url))
 *             pipe.send(url)
 *
 *     def proc_recv(pipe):
 *         while True:
 *             print('Process(%s) rev: %s' % (os.getpid(), pipe.recv()))
 *
 *     pipe = Pipe()
 *     p1 = Process(target=proc_send,
 *                  args=(pipe[0], ['url_' + str(i) for i in range(10)]))
 *     p2 = Process(target=proc_recv, args=(pipe[1],))
 *     p1.start(); p2.start(); p1.join(); p2.join()
 *
 * The Python reader loops forever: the queue version kills it with
 * terminate() (which may kill it before it printed every url), and the pipe
 * version never ends. Here the reader stops at the end of the stream: the
 * parent closes the queue once both writers are done (pc_queue_close; the
 * reader still gets every item put before), and the pipe reader gets
 * PC_EOF once the sender has closed its end.
 *
 * Run:    ./build/examples/queue_urls          (Queue variant)
 *         ./build/examples/queue_urls --pipe   (Pipe variant)
 * Prints: Queue: "Process(<pid>) is writing..." twice, "Process(<pid>) is
 *         reading...", "Put url_N to queue..." and "Get url_N from queue."
 *         for N = 1..6. Processes interleave freely, but each writer's urls
 *         are got in the order it put them.
 *         Pipe: "Process(<pid>) send: url_N" and "Process(<pid>) rev: url_N"
 *         for N = 0..9 ("rev" as in the original).
 * Shows:  pc_queue shared by processes forked after pc_queue_new, with
 *         pc_queue_close as the end-of-stream signal; a duplex pc_pipe read
 *         until PC_EOF.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

/* Process(target=...).start() for a function of one pointer argument. */
static pid_t start(int (*fn)(void *), void *arg) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0)
    _exit(fn(arg));
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

/* ----------------------------------------------------------- Queue variant */

typedef struct writer_job {
  pc_queue *q;
  int first, last; /* url_first .. url_last */
} writer_job;

static int proc_write(void *p) {
  writer_job *job = p;
  printf("Process(%d) is writing...\n", (int)getpid());
  fflush(stdout);
  for (int n = job->first; n <= job->last; n++) {
    char url[16];
    snprintf(url, sizeof url, "url_%d", n);
    pc_value *v = pc_value_str(url);
    int rc = v != NULL ? pc_queue_put(job->q, v, -1) : -ENOMEM;
    pc_value_free(v);
    if (rc != 0) {
      fprintf(stderr, "put: %s\n", pc_strerror(rc));
      return 1;
    }
    printf("Put %s to queue...\n", url);
    fflush(stdout);
  }
  return 0;
}

static int proc_read(void *p) {
  pc_queue *q = p;
  printf("Process(%d) is reading...\n", (int)getpid());
  fflush(stdout);
  for (;;) {
    pc_value *url = NULL;
    int rc = pc_queue_get(q, (void **)&url, -1);
    if (rc == PC_ECLOSED)
      return 0; /* closed and empty: every url was got */
    if (rc != 0) {
      fprintf(stderr, "get: %s\n", pc_strerror(rc));
      return 1;
    }
    const char *text = pc_value_str_data(url, NULL);
    if (text == NULL) {
      pc_value_free(url);
      return 1;
    }
    printf("Get %s from queue.\n", text);
    fflush(stdout);
    pc_value_free(url);
  }
}

static int queue_variant(void) {
  pc_queue *q;
  int rc = pc_queue_new(&q, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_queue_new: %s\n", pc_strerror(rc));
    return 1;
  }
  writer_job job1 = {q, 1, 3}, job2 = {q, 4, 6};
  pid_t writer1 = start(proc_write, &job1);
  pid_t writer2 = start(proc_write, &job2);
  pid_t reader = start(proc_read, q);
  int failed = join(writer1);
  failed |= join(writer2);
  /* Instead of reader.terminate(): no more puts; the reader drains the
   * queue and then gets PC_ECLOSED. */
  rc = pc_queue_close(q);
  failed |= rc != 0;
  failed |= join(reader);
  pc_queue_free(q);
  return failed;
}

/* ------------------------------------------------------------ Pipe variant */

typedef struct pipe_job {
  pc_conn *use, *drop;
} pipe_job;

static int proc_send(void *p) {
  pipe_job *job = p;
  int code = 0;
  pc_close(job->drop);
  for (int i = 0; i < 10 && code == 0; i++) {
    char url[16];
    snprintf(url, sizeof url, "url_%d", i);
    printf("Process(%d) send: %s\n", (int)getpid(), url);
    fflush(stdout);
    pc_value *v = pc_value_str(url);
    int rc = v != NULL ? pc_send(job->use, v) : -ENOMEM;
    pc_value_free(v);
    if (rc != 0) {
      fprintf(stderr, "send: %s\n", pc_strerror(rc));
      code = 1;
    }
  }
  /* Closing is what ends the receiver's loop. */
  return pc_close(job->use) == 0 ? code : 1;
}

static int proc_recv(void *p) {
  pipe_job *job = p;
  int code = 0;
  pc_close(job->drop); /* or this process would keep the stream open */
  for (;;) {
    pc_value *url = NULL;
    int rc = pc_recv(job->use, (void **)&url);
    if (rc == PC_EOF)
      break;
    const char *text = rc == 0 ? pc_value_str_data(url, NULL) : NULL;
    if (text == NULL) {
      fprintf(stderr, "recv: %s\n", rc != 0 ? pc_strerror(rc) : "not a str");
      pc_value_free(url);
      code = 1;
      break;
    }
    printf("Process(%d) rev: %s\n", (int)getpid(), text);
    fflush(stdout);
    pc_value_free(url);
  }
  pc_close(job->use);
  return code;
}

static int pipe_variant(void) {
  pc_conn *end0, *end1;
  int rc = pc_pipe(&end0, &end1, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    return 1;
  }
  pipe_job send_job = {end0, end1}, recv_job = {end1, end0};
  pid_t p1 = start(proc_send, &send_job);
  pid_t p2 = start(proc_recv, &recv_job);
  pc_close(end0);
  pc_close(end1);
  int failed = join(p1);
  failed |= join(p2);
  return failed;
}

int main(int argc, char **argv) {
  if (argc == 1)
    return queue_variant();
  if (argc == 2 && strcmp(argv[1], "--pipe") == 0)
    return pipe_variant();
  fprintf(stderr, "usage: %s [--pipe]\n", argv[0]);
  return 2;
}
