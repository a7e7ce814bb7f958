/* SPDX-License-Identifier: MIT */
/*
 * Replay driver: runs a fuzz target's LLVMFuzzerTestOneInput over every file
 * given on the command line, or found in the directories given, in name
 * order -- so a plain build (gcc, no libFuzzer) runs each committed corpus
 * as an ordinary test (zstd's tests/fuzz/regression_driver.c does the same).
 *
 *   fuzz_frame_replay [-v] DIR_OR_FILE...
 *
 * The inputs run in a child process, one after the other; when a check
 * fails (abort) or an input hangs (SIGALRM after 20 s), the child dies, the
 * driver names that input and goes on with the next one in a new child, so
 * every failing input is named. The child exits normally at the end, so a
 * sanitizer build checks for leaks then; if that check fails, the inputs of
 * that child run again one per process to name the leaking ones.
 *
 * Exits 0 when every input passed, 1 when one failed, an argument could not
 * be read, or no input was found at all (an empty corpus is a mistake).
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_common.h"

#define INPUT_SECONDS 20

static bool verbose;
static char **paths;
static size_t npaths, cap_paths;

static int add_path(const char *p) {
  if (npaths == cap_paths) {
    size_t cap = cap_paths ? cap_paths * 2 : 256;
    char **q = realloc(paths, cap * sizeof *q);
    if (q == NULL)
      return 1;
    paths = q;
    cap_paths = cap;
  }
  paths[npaths] = strdup(p);
  return paths[npaths++] == NULL;
}

/* Reads path into a block of exactly its size (so ASan sees reads past the
 * input) and runs the target on it. */
static int run_input(const char *path) {
  FILE *f = fopen(path, "rb");
  long size;
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "cannot read %s\n", path);
    if (f != NULL)
      fclose(f);
    return 2;
  }
  unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
  if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "cannot read %s\n", path);
    free(data);
    fclose(f);
    return 2;
  }
  fclose(f);
  if (verbose)
    fprintf(stderr, "running %s\n", path);
  LLVMFuzzerTestOneInput(data, (size_t)size);
  free(data);
  return 0;
}

/* Runs inputs [from, to) in one child. Returns the child's wait status and
 * sets *reached to the index of the last input it started. */
static int run_child(size_t from, size_t to, size_t *reached) {
  int p[2], status = 0;
  if (pipe(p) != 0) {
    perror("pipe");
    exit(1);
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(1);
  }
  if (pid == 0) {
    close(p[0]);
    int rc = 0;
    for (size_t i = from; i < to && rc == 0; i++) {
      ssize_t k = write(p[1], &i, sizeof i);
      (void)k;
      alarm(INPUT_SECONDS);
      rc = run_input(paths[i]);
    }
    close(p[1]);
    exit(rc); /* exit, not _exit: sanitizers check for leaks at exit */
  }
  close(p[1]);
  size_t i, last = from;
  while (read(p[0], &i, sizeof i) == (ssize_t)sizeof i)
    last = i;
  close(p[0]);
  while (waitpid(pid, &status, 0) < 0) {
  }
  *reached = last;
  return status;
}

static bool ok(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void report(const char *path, int status) {
  if (WIFSIGNALED(status))
    fprintf(stderr, "FAILED %s (%s)\n", path,
            WTERMSIG(status) == SIGALRM ? "hang" : strsignal(WTERMSIG(status)));
  else
    fprintf(stderr, "FAILED %s (exit %d)\n", path, WEXITSTATUS(status));
}

/* Runs [from, to) one per process and reports those that fail. */
static size_t run_each(size_t from, size_t to) {
  size_t failed = 0, reached;
  for (size_t i = from; i < to; i++) {
    int status = run_child(i, i + 1, &reached);
    if (!ok(status)) {
      report(paths[i], status);
      failed++;
    }
  }
  return failed;
}

/* Runs [from, to) in as few processes as possible; returns the failures. */
static size_t run_range(size_t from, size_t to) {
  size_t failed = 0;
  while (from < to) {
    size_t reached;
    int status = run_child(from, to, &reached);
    if (ok(status))
      break;
    if (!WIFEXITED(status) || reached + 1 < to) {
      /* Died inside input `reached`: name it, and give the inputs before
       * it the leak check at exit they missed. */
      report(paths[reached], status);
      failed++;
      size_t dummy;
      if (reached > from && !ok(run_child(from, reached, &dummy)))
        failed += run_each(from, reached);
      from = reached + 1;
      continue;
    }
    /* All ran, the exit failed (a leak report): find the inputs. */
    failed += run_each(from, to);
    break;
  }
  return failed;
}

static int skip_dots(const struct dirent *e) { return e->d_name[0] != '.'; }

static int collect(const char *path) {
  int rc = 0;
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "cannot stat %s\n", path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode))
    return add_path(path);
  struct dirent **names = NULL;
  int n = scandir(path, &names, skip_dots, alphasort);
  if (n < 0) {
    fprintf(stderr, "cannot list %s\n", path);
    return 1;
  }
  for (int i = 0; i < n; i++) {
    size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
    char *full = malloc(len);
    if (full == NULL) {
      rc = 1;
    } else {
      snprintf(full, len, "%s/%s", path, names[i]->d_name);
      if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
        rc |= add_path(full);
      free(full);
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  int rc = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0)
      verbose = true;
    else
      rc |= collect(argv[i]);
  }
  size_t failed = run_range(0, npaths);
  printf("%s: %zu inputs, %zu failed\n", argc > 0 ? argv[0] : "replay", npaths,
         failed);
  for (size_t i = 0; i < npaths; i++)
    free(paths[i]);
  free(paths);
  return rc != 0 || failed > 0 || npaths == 0 ? 1 : 0;
}
