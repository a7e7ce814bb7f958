/* SPDX-License-Identifier: MIT */
/*
 * Replay driver: runs a fuzz target's LLVMFuzzerTestOneInput over every file
 * given on the command line, or found in the directories given, in name
 * order -- so a plain build (gcc, no libFuzzer) runs each committed corpus
 * as an ordinary test (zstd's tests/fuzz/regression_driver.c does the same).
 *
 *   fuzz_frame_replay [-v] DIR_OR_FILE...
 *
 * Each input runs in a child process: a failing check aborts the child only,
 * so every input is tried and every failing one is named; the child exits
 * normally otherwise, so a sanitizer build also checks it for leaks; an
 * input that runs longer than 60 s counts as a hang (SIGALRM).
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

#define INPUT_SECONDS 60

static bool verbose;
static size_t ran, failed;

/* Reads path into a block of exactly its size (so ASan sees reads past the
 * input) and runs the target on it; in the child process. */
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
  LLVMFuzzerTestOneInput(data, (size_t)size);
  free(data);
  return 0;
}

static int run_file(const char *path) {
  int status = 0;
  if (verbose)
    fprintf(stderr, "running %s\n", path);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    alarm(INPUT_SECONDS);
    exit(run_input(path)); /* exit, not _exit: sanitizers check at exit */
  }
  while (waitpid(pid, &status, 0) < 0) {
  }
  ran++;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  failed++;
  if (WIFSIGNALED(status))
    fprintf(stderr, "FAILED %s (%s)\n", path,
            WTERMSIG(status) == SIGALRM ? "hang" : strsignal(WTERMSIG(status)));
  else
    fprintf(stderr, "FAILED %s (exit %d)\n", path, WEXITSTATUS(status));
  return 1;
}

static int skip_dots(const struct dirent *e) { return e->d_name[0] != '.'; }

static int run_path(const char *path) {
  int rc = 0;
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "cannot stat %s\n", path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode))
    return run_file(path);
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
        rc |= run_file(full);
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
      rc |= run_path(argv[i]);
  }
  printf("%s: %zu inputs ran, %zu failed\n", argc > 0 ? argv[0] : "replay", ran,
         failed);
  return rc != 0 || ran == 0 ? 1 : 0;
}
