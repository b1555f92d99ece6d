/* Error codes, their names and texts, the version, state and event names. */
#include "suites.h"
#include "testutil.h"

#include <limits.h>
#include <string.h>

/* The header's own table, so a code added there is checked here too. */
static const struct {
  int code;
  const char *name;
  const char *text;
} codes[] = {
#define XX(name, value, text) {CPOOL_##name, "CPOOL_" #name, text},
    CPOOL_ERRNO_MAP(XX)
#undef XX
};
#define NCODES ((int)(sizeof codes / sizeof codes[0]))

/* Codes are never renumbered: these values are part of the ABI. */
static void test_values_stable(void) {
  static const struct {
    int code, value;
  } fixed[] = {
      {CPOOL_OK, 0},           {CPOOL_EINVAL, -1},      {CPOOL_ENOMEM, -2},
      {CPOOL_ECHECKEDOUT, -3}, {CPOOL_ETIMEDOUT, -4},   {CPOOL_ECLOSED, -5},
      {CPOOL_ESHUTDOWN, -6},   {CPOOL_ESYS, -7},        {CPOOL_ERESOLVE, -8},
      {CPOOL_ECONNECT, -9},    {CPOOL_EHANDSHAKE, -10}, {CPOOL_EOVERLOAD, -11},
      {CPOOL_EBUSY, -12},      {CPOOL_EFORKED, -13},
  };
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    TU_ASSERT_EQ(fixed[i].code, fixed[i].value);
}

static void test_every_code_named(void) {
  for (int i = 0; i < NCODES; i++) {
    const char *text = cpool_strerror(codes[i].code);
    const char *name = cpool_err_name(codes[i].code);

    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(name);
    CU_ASSERT_STRING_EQUAL(text, codes[i].text);
    CU_ASSERT_STRING_EQUAL(name, codes[i].name);
    CU_ASSERT_STRING_NOT_EQUAL(text, "unknown error");
  }
}

static void test_codes_distinct_and_negative(void) {
  for (int i = 0; i < NCODES; i++) {
    if (codes[i].code != CPOOL_OK)
      TU_ASSERT_INT(codes[i].code, <, 0);
    for (int j = i + 1; j < NCODES; j++) {
      CU_ASSERT_NOT_EQUAL(codes[i].code, codes[j].code);
      CU_ASSERT_STRING_NOT_EQUAL(codes[i].text, codes[j].text);
    }
  }
}

static void test_unknown_codes(void) {
  static const int unknown[] = {1, 42, -14, -1000, INT_MIN, INT_MAX};

  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *text = cpool_strerror(unknown[i]);
    const char *name = cpool_err_name(unknown[i]);

    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(name);
    CU_ASSERT_STRING_EQUAL(text, "unknown error");
    CU_ASSERT(name[0] != '\0');
  }
}

static void test_version(void) {
  char want[32];

  snprintf(want, sizeof want, "%d.%d.%d", CPOOL_VERSION_MAJOR,
           CPOOL_VERSION_MINOR, CPOOL_VERSION_PATCH);
  TU_ASSERT_EQ(cpool_version(), CPOOL_VERSION_HEX);
  CU_ASSERT_PTR_NOT_NULL_FATAL(cpool_version_string());
  CU_ASSERT_STRING_EQUAL(cpool_version_string(), want);
  TU_ASSERT_EQ(CPOOL_VERSION_HEX, (CPOOL_VERSION_MAJOR << 16) |
                                      (CPOOL_VERSION_MINOR << 8) |
                                      CPOOL_VERSION_PATCH);
}

/* Names of a contiguous enum: non-NULL, non-empty, distinct; and the
 * fallback for values outside it. */
static void check_names(const char *(*fn)(int), int first, int last) {
  for (int i = first; i <= last; i++) {
    const char *a = fn(i);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT(a[0] != '\0');
    for (int j = i + 1; j <= last; j++) {
      const char *b = fn(j);
      CU_ASSERT_PTR_NOT_NULL_FATAL(b);
      CU_ASSERT_STRING_NOT_EQUAL(a, b);
    }
  }
  CU_ASSERT_PTR_NOT_NULL(fn(first - 1));
  CU_ASSERT_PTR_NOT_NULL(fn(last + 1));
  CU_ASSERT_PTR_NOT_NULL(fn(INT_MAX));
  CU_ASSERT_PTR_NOT_NULL(fn(INT_MIN));
}

static void test_state_names(void) {
  check_names(cpool_state_name, CPOOL_SLOT_CONNECTING, CPOOL_SLOT_CHECKING);
  CU_ASSERT_STRING_EQUAL(cpool_state_name(CPOOL_SLOT_IDLE), "idle");
}

static void test_event_names(void) {
  check_names(cpool_event_name, CPOOL_EVENT_CONNECTED, CPOOL_EVENT_RECYCLED);
  CU_ASSERT_STRING_EQUAL(cpool_event_name(CPOOL_EVENT_CONNECTED), "connected");
}

CU_TestInfo errors_tests[] = {
    {"values_stable", test_values_stable},
    {"every_code_named", test_every_code_named},
    {"codes_distinct_and_negative", test_codes_distinct_and_negative},
    {"unknown_codes", test_unknown_codes},
    {"version", test_version},
    {"state_names", test_state_names},
    {"event_names", test_event_names},
    CU_TEST_INFO_NULL,
};
