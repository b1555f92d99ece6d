/*
 * The runner: every suite is listed once, in suites.def (which CTest reads
 * too, for its one test per suite).
 *
 *   cpool-tests              run every suite
 *   cpool-tests SUITE [TEST] run one suite (CTest runs each on its own), or
 *                            one test of it
 *   cpool-tests --list       print the suites and their tests
 *
 * Exits 0 only when every assertion passed and every suite could run.
 */
#include "suites.h"
#include "testutil.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static CU_SuiteInfo suites[] = {
#define SUITE(name, init, cleanup, tests, labels, timeout)                     \
  {#name, init, cleanup, NULL, NULL, tests},
#include "suites.def"
#undef SUITE
    CU_SUITE_INFO_NULL,
};

static void list(void) {
  for (CU_SuiteInfo *s = suites; s->pName; s++) {
    printf("%s\n", s->pName);
    for (CU_TestInfo *t = s->pTests; t->pName; t++)
      printf("  %s\n", t->pName);
  }
}

/* A 1024-slot pool and its test server need over 2048 descriptors. */
static void raise_fd_limit(void) {
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static CU_ErrorCode run(const char *suite, const char *test) {
  CU_pSuite s;
  CU_pTest t;

  if (!suite)
    return CU_basic_run_tests();
  s = CU_get_suite(suite);
  if (!s) {
    fprintf(stderr, "cpool-tests: no suite '%s' (try --list)\n", suite);
    return CUE_NOSUITE;
  }
  if (!test)
    return CU_basic_run_suite(s);
  t = CU_get_test(s, test);
  if (!t) {
    fprintf(stderr, "cpool-tests: no test '%s' in '%s'\n", test, suite);
    return CUE_NOTEST;
  }
  return CU_basic_run_test(s, t);
}

int main(int argc, char **argv) {
  const char *suite = argc > 1 ? argv[1] : NULL;
  const char *test = argc > 2 ? argv[2] : NULL;
  unsigned failures;
  CU_ErrorCode rc;
  int64_t t0;

  if (suite && strcmp(suite, "--list") == 0) {
    list();
    return 0;
  }
  raise_fd_limit();
  /* Unbuffered output keeps FIGURE lines in order with CUnit's own. */
  setvbuf(stdout, NULL, _IONBF, 0);
  if (CU_initialize_registry() != CUE_SUCCESS ||
      CU_register_suites(suites) != CUE_SUCCESS) {
    fprintf(stderr, "cpool-tests: %s\n", CU_get_error_msg());
    return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  t0 = tu_now_ms();
  rc = run(suite, test);
  printf("\nFIGURE: suite %s: %lld ms wall time\n", suite ? suite : "all",
         (long long)(tu_now_ms() - t0));
  failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
             CU_get_number_of_suites_failed();
  if (rc == CUE_SUCCESS && CU_get_number_of_tests_run() == 0) {
    fprintf(stderr, "cpool-tests: no test ran\n");
    failures++;
  }
  CU_cleanup_registry();
  return rc != CUE_SUCCESS || failures ? 1 : 0;
}
