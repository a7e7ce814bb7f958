/* SPDX-License-Identifier: MIT */
#include "helpers.h"

#include <errno.h>
#include <string.h>

static const int lib_codes[] = {
#define XX(name, n, text) PC_##name,
    PC_ERROR_MAP(XX)
#undef XX
};

static void test_library_codes_are_outside_errno_range(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof lib_codes / sizeof lib_codes[0]; i++) {
    assert_true(lib_codes[i] < -4095);
    for (size_t j = 0; j < i; j++)
      assert_int_not_equal(lib_codes[i], lib_codes[j]);
  }
}

static void test_strerror_describes_every_library_code(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *name;
    const char *word;
  } expect[] = {
      {PC_EOF, "PC_EOF", "end of stream"},
      {PC_ETRUNCATED, "PC_ETRUNCATED", "middle of a message"},
      {PC_ETOOBIG, "PC_ETOOBIG", "longer"},
      {PC_ETOOSHORT, "PC_ETOOSHORT", "too short"},
      {PC_ECLOSED, "PC_ECLOSED", "closed"},
      {PC_EREADONLY, "PC_EREADONLY", "read-only"},
      {PC_EWRITEONLY, "PC_EWRITEONLY", "write-only"},
      {PC_EPROTO, "PC_EPROTO", "protocol"},
      {PC_EUNSAFE, "PC_EUNSAFE", "opcode"},
      {PC_EENCODE, "PC_EENCODE", "cannot be represented"},
      {PC_ELIMIT, "PC_ELIMIT", "limit"},
      {PC_EFULL, "PC_EFULL", "full"},
      {PC_EEMPTY, "PC_EEMPTY", "empty"},
      {PC_EPEERDIED, "PC_EPEERDIED", "died"},
      {PC_ETASKDONE, "PC_ETASKDONE", "task_done"},
  };
  assert_int_equal(sizeof expect / sizeof expect[0],
                   sizeof lib_codes / sizeof lib_codes[0]);
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    assert_non_null(strstr(pc_strerror(expect[i].code), expect[i].word));
    assert_string_equal(pc_errname(expect[i].code), expect[i].name);
  }
}

static void test_strerror_describes_errno_values(void **state) {
  (void)state;
  assert_string_equal(pc_strerror(-EPIPE), "Broken pipe");
  assert_string_equal(pc_errname(-EPIPE), "EPIPE");
  assert_string_equal(pc_errname(-ETIMEDOUT), "ETIMEDOUT");
  assert_string_equal(pc_errname(-EAGAIN), "EAGAIN");
  assert_string_equal(pc_errname(-EMFILE), "EMFILE");
  assert_string_equal(pc_strerror(-ENOMEM), "Cannot allocate memory");
  assert_string_equal(pc_strerror(0), "success");
  assert_string_equal(pc_errname(0), "0");
}

static void test_strerror_never_returns_null_for_unknown_codes(void **state) {
  (void)state;
  const int odd[] = {
      1, 12345, -4000, -29999, PC__ERROR_BASE - 999, -2147483647 - 1};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    assert_string_equal(pc_strerror(odd[i]), "unknown error");
    assert_string_equal(pc_errname(odd[i]), "UNKNOWN");
  }
}

static void test_version_matches_header(void **state) {
  (void)state;
  assert_string_equal(pc_version(), PC_VERSION_STRING);
  assert_int_equal(pc_version_number(), PC_VERSION_NUMBER);
  assert_int_equal(PC_VERSION_NUMBER >> 16, PC_VERSION_MAJOR);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_library_codes_are_outside_errno_range),
      cmocka_unit_test(test_strerror_describes_every_library_code),
      cmocka_unit_test(test_strerror_describes_errno_values),
      cmocka_unit_test(test_strerror_never_returns_null_for_unknown_codes),
      cmocka_unit_test(test_version_matches_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
