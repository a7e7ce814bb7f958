/* SPDX-License-Identifier: MIT */
/*
 * Process-shared synchronisation: shared anonymous mappings, a robust
 * process-shared mutex with a CLOCK_MONOTONIC deadline, and futex wait/wake
 * with a deadline. Everything lives in memory that fork() shares, so the
 * objects work between a parent and every child forked after they were made.
 *
 * Why futexes and not pthread condition variables: glibc's process-shared
 * condvars keep internal state that a waiter killed inside
 * pthread_cond_wait leaves inconsistent (they are not robust), and the
 * mutex they re-acquire would report EOWNERDEAD inside the condvar code.
 * A futex word is one integer: a waiter that dies leaves nothing behind.
 */
#include <limits.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* ------------------------------------------------------------ mappings */

size_t pc__page_size(void) {
  long p = sysconf(_SC_PAGESIZE);
  return p > 0 ? (size_t)p : 4096u;
}

int pc__shm_map(size_t len, void **out) {
  int rc = 0;
  void *p;
  if (out == NULL || len == 0) {
    rc = -EINVAL;
    goto out;
  }
  /* MAP_NORESERVE: the pages are only allocated when first touched, so a
   * large capacity costs address space, not memory. */
  p = mmap(NULL, len, PROT_READ | PROT_WRITE,
           MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    rc = pc__errno_neg();
    goto out;
  }
  *out = p;
out:
  return rc;
}

void pc__shm_unmap(void *p, size_t len) {
  if (p != NULL && len > 0)
    (void)munmap(p, len);
}

void pc__shm_discard(void *p, size_t len) {
  size_t page = pc__page_size();
  uintptr_t start = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
  uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)(page - 1);
  /* MADV_REMOVE frees the backing pages of a shared (shmem) mapping in every
   * process; they read as zero afterwards. Only whole pages inside the range
   * are released. A failure only means the memory stays allocated. */
  if (end > start)
    (void)madvise((void *)start, (size_t)(end - start), MADV_REMOVE);
}

/* ------------------------------------------------------------ robust mutex */

int pc__pmutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t a;
  int rc = pthread_mutexattr_init(&a);
  if (rc != 0)
    goto out;
  rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  if (rc == 0)
    rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  if (rc == 0)
    rc = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
out:
  return -rc;
}

void pc__pmutex_destroy(pthread_mutex_t *m) { (void)pthread_mutex_destroy(m); }

/* How many times a contended lock is retried with trylock before sleeping in
 * the kernel. glibc does not spin for robust mutexes; critical sections here
 * are a few hundred nanoseconds, so a short spin avoids most futex sleeps
 * (and the wake-up system call the owner then has to make). */
#define PMUTEX_SPIN 1000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield" ::: "memory");
#else
  atomic_signal_fence(memory_order_seq_cst);
#endif
}

void pc__cpu_relax(void) { cpu_relax(); }

/* A waiter never sleeps on the mutex for longer than this before trying
 * again. Works around a lost wake-up in robust mutexes: the unlocker wakes
 * one sleeper; if that sleeper is killed before it takes the lock while
 * another process has taken it through the fast path (which does not keep
 * the "waiters" bit), the kernel's rescue for a dying waiter does not fire
 * (it only does when the lock word is 0) and the other sleepers would sleep
 * forever on a free lock. Seen with SIGKILLs under load; with the slice they
 * notice within 100 ms. */
#define PMUTEX_SLICE_NS ((int64_t)100000000)

#if defined(__SANITIZE_THREAD__)
#define PC__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PC__TSAN 1
#endif
#endif

#ifdef PC__TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Sleeps on m until the CLOCK_MONOTONIC time *at. Robust mutexes support
 * clocklock since glibc 2.30; it retries EINTR itself. ThreadSanitizer
 * (gcc 12, clang 14) does not intercept pthread_mutex_clocklock, so it would
 * miss every lock taken that way and report false races: under TSan the
 * slice is waited with pthread_mutex_timedlock on CLOCK_REALTIME instead (a
 * slice is at most 100 ms, so a clock step can only stretch one slice). */
static int slice_lock(pthread_mutex_t *m, const struct timespec *at) {
#ifdef PC__TSAN
  struct timespec mono, real;
  int64_t left;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  left = ((int64_t)at->tv_sec - mono.tv_sec) * 1000000000 +
         (at->tv_nsec - mono.tv_nsec);
  left = left < 0 ? 0 : left;
  left += (int64_t)real.tv_sec * 1000000000 + real.tv_nsec;
  real.tv_sec = (time_t)(left / 1000000000);
  real.tv_nsec = (long)(left % 1000000000);
  int rc = pthread_mutex_timedlock(m, &real);
  /* Its timedlock interceptor records a plain success only: tell it about
   * a lock taken over from a dead owner too, or the unlock that follows is
   * reported as an error. */
  if (rc == EOWNERDEAD) {
    __tsan_mutex_pre_lock(m, __tsan_mutex_try_lock);
    __tsan_mutex_post_lock(m, __tsan_mutex_try_lock, 0);
  }
  return rc;
#else
  return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, at);
#endif
}

int pc__pmutex_lock(pthread_mutex_t *m, const pc__deadline *d) {
  int rc = pthread_mutex_trylock(m);
  for (int i = 0; rc == EBUSY && i < PMUTEX_SPIN; i++) {
    cpu_relax();
    rc = pthread_mutex_trylock(m);
  }
  if (rc == EBUSY && d != NULL && d->nonblock) {
    rc = EAGAIN;
  } else if (rc == EBUSY) {
    bool last = false;
    do {
      pc__deadline slice = {pc__now_ns() + PMUTEX_SLICE_NS, false, false, 0};
      struct timespec ts;
      if (d != NULL && !d->forever && d->at_ns <= slice.at_ns) {
        slice.at_ns = d->at_ns;
        last = true;
      }
      ts = pc__deadline_abstime(&slice);
      rc = slice_lock(m, &ts);
    } while (rc == ETIMEDOUT && !last);
  }
  rc = rc == EOWNERDEAD ? PC__LOCK_OWNERDEAD : -rc;
  return rc;
}

int pc__pmutex_consistent(pthread_mutex_t *m) {
  return -pthread_mutex_consistent(m);
}

void pc__pmutex_unlock(pthread_mutex_t *m) { (void)pthread_mutex_unlock(m); }

/* ------------------------------------------------------------ futex */

int pc__futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   const pc__deadline *d) {
  int rc = 0;
  struct timespec ts;
  const struct timespec *tsp = NULL;
  long r;
  if (d != NULL && !d->forever) {
    if (pc__deadline_expired(d)) {
      rc = pc__deadline_code(d);
      goto out;
    }
    ts = pc__deadline_abstime(d);
    tsp = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute deadline, on CLOCK_MONOTONIC unless
   * FUTEX_CLOCK_REALTIME is given, so EINTR and spurious wake-ups never
   * extend the wait. Not _PRIVATE: the word is shared between processes. */
  r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp, NULL,
              FUTEX_BITSET_MATCH_ANY);
  if (r < 0) {
    int e = errno;
    if (e == ETIMEDOUT)
      rc = pc__deadline_code(d);
    else if (e == EAGAIN || e == EINTR)
      rc = 0; /* the word changed, or a signal: the caller re-checks */
    else
      rc = -e;
  }
out:
  return rc;
}

int pc__futex_wake(_Atomic uint32_t *word, int n) {
  long r = syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
  return r < 0 ? pc__errno_neg() : (int)r;
}
