/* SPDX-License-Identifier: MIT */
/* The wire format helpers (src/frame.c), against bytes Python produces. */
#include "helpers.h"

#include "../src/internal.h"

static void test_small_header_is_4_byte_big_endian(void **state) {
  (void)state;
  unsigned char h[PC__HDR_LARGE];
  assert_int_equal(pc__frame_header(h, 0), 4);
  assert_memory_equal(h, "\0\0\0\0", 4);
  assert_int_equal(pc__frame_header(h, 0x01020304), 4);
  assert_memory_equal(h, "\x01\x02\x03\x04", 4);
  assert_int_equal(pc__frame_header(h, 0x7fffffff), 4);
  assert_memory_equal(h, "\x7f\xff\xff\xff", 4);
}

static void test_large_header_is_minus_one_then_8_bytes(void **state) {
  (void)state;
  unsigned char h[PC__HDR_LARGE];
  assert_int_equal(pc__frame_header(h, 0x80000000u), 12);
  assert_memory_equal(h, "\xff\xff\xff\xff\0\0\0\0\x80\0\0\0", 12);
  assert_int_equal(pc__frame_header(h, 0x0102030405060708ull), 12);
  assert_memory_equal(h, "\xff\xff\xff\xff\x01\x02\x03\x04\x05\x06\x07\x08",
                      12);
}

static void test_parse_needs_whole_header(void **state) {
  (void)state;
  uint64_t len = 99;
  assert_int_equal(pc__frame_parse((const unsigned char *)"\0\0\0", 3, &len),
                   0);
  assert_int_equal(len, 99);
  assert_int_equal(
      pc__frame_parse((const unsigned char *)"\xff\xff\xff\xff\0\0\0\0\0\0\0",
                      11, &len),
      0);
  assert_int_equal(
      pc__frame_parse((const unsigned char *)"\0\0\x01\0", 4, &len), 4);
  assert_int_equal(len, 256);
}

static void test_parse_accepts_minus_one_form_for_any_length(void **state) {
  (void)state;
  uint64_t len = 0;
  assert_int_equal(
      pc__frame_parse(
          (const unsigned char *)"\xff\xff\xff\xff\0\0\0\0\0\0\0\x05", 12,
          &len),
      12);
  assert_int_equal(len, 5);
  assert_int_equal(
      pc__frame_parse((const unsigned char
                           *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
                      12, &len),
      12);
  assert_true(len == UINT64_MAX);
}

static void test_parse_rejects_other_negative_headers(void **state) {
  (void)state;
  uint64_t len = 7;
  assert_rc(PC_EPROTO,
            pc__frame_parse((const unsigned char *)"\x80\0\0\0", 4, &len));
  assert_rc(PC_EPROTO, pc__frame_parse(
                           (const unsigned char *)"\xff\xff\xff\xfe", 4, &len));
  assert_int_equal(len, 7);
}

static void test_round_trip_of_every_boundary(void **state) {
  (void)state;
  const uint64_t lens[] = {0,           1,          16383,      16384,
                           16385,       0x7ffffffe, 0x7fffffff, 0x80000000u,
                           0xffffffffu, 1ull << 62};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    unsigned char h[PC__HDR_LARGE];
    uint64_t got = 0;
    size_t n = pc__frame_header(h, lens[i]);
    assert_int_equal(pc__frame_parse(h, n, &got), (int)n);
    assert_true(got == lens[i]);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_header_is_4_byte_big_endian),
      cmocka_unit_test(test_large_header_is_minus_one_then_8_bytes),
      cmocka_unit_test(test_parse_needs_whole_header),
      cmocka_unit_test(test_parse_accepts_minus_one_form_for_any_length),
      cmocka_unit_test(test_parse_rejects_other_negative_headers),
      cmocka_unit_test(test_round_trip_of_every_boundary),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
