/*
 * cpool-fault-tests: the fault suites, registered from one table
 * (suites.def, which CTest reads too, for its one test per suite).
 *
 *   cpool-fault-tests                  every suite
 *   cpool-fault-tests SUITE [TEST...]  one suite, or some of its tests
 *   cpool-fault-tests --list           the suite names
 *
 * Exit status: 0 all passed, 1 a failure, 77 (CTest's SKIP_RETURN_CODE)
 * when nothing failed but a test was skipped ("SKIPPED: ..." on stdout).
 */
#include "fault.h"

#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const fault_suite suites[] = {
#define SUITE(name, init, cleanup, tests, labels, timeout) {#name, tests},
#include "suites.def"
#undef SUITE
};
#define NSUITES (sizeof suites / sizeof suites[0])

static int wanted(const char *name, int argc, char **argv) {
  if (argc == 0)
    return 1;
  for (int i = 0; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return 1;
  return 0;
}

static int add_suite(const fault_suite *s, int ntests, char **tests) {
  CU_pSuite cs = CU_add_suite(s->name, NULL, NULL);
  int added = 0;

  if (cs == NULL)
    return -1;
  for (const fault_test *t = s->tests; t->name != NULL; t++) {
    if (!wanted(t->name, ntests, tests))
      continue;
    if (CU_add_test(cs, t->name, t->fn) == NULL)
      return -1;
    added++;
  }
  return added;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < NSUITES; i++) {
      printf("%s:", suites[i].name);
      for (const fault_test *t = suites[i].tests; t->name != NULL; t++)
        printf(" %s", t->name);
      printf("\n");
    }
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (CU_initialize_registry() != CUE_SUCCESS)
    return 1;

  int added = 0;
  for (size_t i = 0; i < NSUITES; i++) {
    if (argc > 1 && strcmp(argv[1], suites[i].name) != 0)
      continue;
    int n = add_suite(&suites[i], argc > 2 ? argc - 2 : 0, argv + 2);
    if (n < 0) {
      CU_cleanup_registry();
      return 1;
    }
    added += n;
  }
  if (added == 0) {
    fprintf(stderr, "cpool-fault-tests: no such suite or test (try --list)\n");
    CU_cleanup_registry();
    return 2;
  }

  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures() +
                    CU_get_number_of_suites_failed() +
                    CU_get_number_of_tests_failed();
  CU_cleanup_registry();
  if (failed > 0)
    return 1;
  if (fh_skipped() > 0) {
    printf("\n%d test(s) SKIPPED (see the SKIPPED lines above)\n",
           fh_skipped());
    return 77;
  }
  return 0;
}
