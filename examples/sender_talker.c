/* SPDX-License-Identifier: MIT */
/*
 * sender_talker: objects both ways between a parent and its children -- the
 * C version of this classic (Programming Python's multi2.py):
 *
 *     from multiprocessing import Pipe, Process
 *
 *     def sender(pipe):
 *         pipe.send(['spam'] + [42, 'eggs'])
 *         pipe.close()
 *
 *     def talker(pipe):
 *         pipe.send(dict(name='bob', spam=42))
 *         reply = pipe.recv()
 *         print('talker got:', reply)
 *
 *     if __name__ == '__main__':
 *         (parentEnd, childEnd) = Pipe()
 *         Process(target=sender, args=(childEnd,)).start()
 *         print('parent got:', parentEnd.recv())
 *         parentEnd.close()
 *
 *         (parentEnd, childEnd) = Pipe()
 *         child = Process(target=talker, args=(childEnd,))
 *         child.start()
 *         print('parent got:', parentEnd.recv())
 *         parentEnd.send({x * 2 for x in 'spam'})
 *         child.join()
 *         print('parent exit')
 *
 * Run:    ./build/examples/sender_talker
 * Prints: parent got: ['spam', 42, 'eggs']
 *         parent got: {'name': 'bob', 'spam': 42}
 *         talker got: {'ss', 'pp', 'aa', 'mm'}
 *         parent exit
 * A set prints its elements in the order they arrived, which is the order
 * the parent added them ('ss', 'pp', 'aa', 'mm'); Python's own order for
 * this set changes from run to run (string hashing is randomised).
 * Shows:  building pc_value lists, dicts and sets, pc_send/pc_recv of them,
 *         and printing them with pc_value_repr exactly as Python prints them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pipeconn.h>

/* print(prefix, v): a str prints as its text, anything else as repr(v). */
static int print_value(const char *prefix, const pc_value *v) {
  size_t len;
  char *repr = NULL;
  const char *text = pc_value_str_data(v, &len);
  if (text == NULL) {
    repr = pc_value_repr(v);
    if (repr == NULL)
      return -ENOMEM;
    text = repr;
    len = strlen(repr);
  }
  printf("%s ", prefix);
  fwrite(text, 1, len, stdout);
  putchar('\n');
  fflush(stdout); /* parent and child share stdout: keep the order */
  free(repr);
  return 0;
}

/* Sends v and releases it (the caller's reference is stolen, as with the
 * library's _steal functions), so `send_steal(c, build())` never leaks. */
static int send_steal(pc_conn *c, pc_value *v) {
  int rc = v != NULL ? pc_send(c, v) : -ENOMEM;
  pc_value_free(v);
  if (rc != 0)
    fprintf(stderr, "send: %s\n", pc_strerror(rc));
  return rc;
}

static int recv_and_print(pc_conn *c, const char *prefix) {
  pc_value *v = NULL;
  int rc = pc_recv(c, (void **)&v);
  if (rc == 0)
    rc = print_value(prefix, v);
  else
    fprintf(stderr, "recv: %s\n", pc_strerror(rc));
  pc_value_free(v);
  return rc;
}

/* ['spam'] + [42, 'eggs'] */
static pc_value *spam_list(void) {
  pc_value *l = pc_value_list();
  if (l == NULL || pc_value_list_append_steal(l, pc_value_str("spam")) != 0 ||
      pc_value_list_append_steal(l, pc_value_int(42)) != 0 ||
      pc_value_list_append_steal(l, pc_value_str("eggs")) != 0) {
    pc_value_free(l);
    return NULL;
  }
  return l;
}

/* dict(name='bob', spam=42) */
static pc_value *bob_dict(void) {
  pc_value *d = pc_value_dict();
  if (d == NULL ||
      pc_value_dict_set_str_steal(d, "name", pc_value_str("bob")) != 0 ||
      pc_value_dict_set_str_steal(d, "spam", pc_value_int(42)) != 0) {
    pc_value_free(d);
    return NULL;
  }
  return d;
}

/* {x * 2 for x in 'spam'} */
static pc_value *doubled_letters(void) {
  pc_value *s = pc_value_set();
  for (const char *x = "spam"; s != NULL && *x != '\0'; x++) {
    char twice[3] = {x[0], x[0], '\0'};
    if (pc_value_set_add_steal(s, pc_value_str(twice)) != 0) {
      pc_value_free(s);
      s = NULL;
    }
  }
  return s;
}

static int sender(pc_conn *pipe) { return send_steal(pipe, spam_list()) != 0; }

static int talker(pc_conn *pipe) {
  if (send_steal(pipe, bob_dict()) != 0)
    return 1;
  return recv_and_print(pipe, "talker got:") != 0;
}

/* Process(target=fn, args=(child_end,)).start() */
static pid_t start(int (*fn)(pc_conn *), pc_conn *child_end,
                   pc_conn *parent_end) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    pc_close(parent_end);
    int code = fn(child_end);
    _exit(pc_close(child_end) == 0 ? code : 1);
  }
  if (pid < 0)
    perror("fork");
  pc_close(child_end); /* the parent keeps only its own end */
  return pid;
}

static int join(pid_t pid) {
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) < 0)
    return 1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(void) {
  pc_conn *parent_end, *child_end;
  int failed = 0;

  int rc = pc_pipe(&parent_end, &child_end, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    return 1;
  }
  pid_t s = start(sender, child_end, parent_end);
  failed |= recv_and_print(parent_end, "parent got:") != 0;
  pc_close(parent_end);
  failed |= join(s);

  rc = pc_pipe(&parent_end, &child_end, 0);
  if (rc != 0) {
    fprintf(stderr, "pc_pipe: %s\n", pc_strerror(rc));
    return 1;
  }
  pid_t t = start(talker, child_end, parent_end);
  failed |= recv_and_print(parent_end, "parent got:") != 0;
  failed |= send_steal(parent_end, doubled_letters()) != 0;
  pc_close(parent_end); /* also unblocks the talker if the send failed */
  failed |= join(t);
  printf("parent exit\n");
  return failed;
}
