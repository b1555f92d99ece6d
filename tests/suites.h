/* The suites' test tables and fixtures; the suites are listed in suites.def. */
#ifndef CPOOL_SUITES_H
#define CPOOL_SUITES_H

#include <CUnit/CUnit.h>

/* Every suite's test table, from the one list (suites.def). */
#define SUITE(name, init, cleanup, tests, labels, timeout)                     \
  extern CU_TestInfo tests[];
#include "suites.def"
#undef SUITE

/* Suites that share one test server start it in init, stop it in cleanup. */
int config_init(void);
int config_cleanup(void);
int abi_init(void);
int abi_cleanup(void);
int checkout_init(void);
int checkout_cleanup(void);
int close_init(void);
int close_cleanup(void);
int fastpath_init(void);
int fastpath_cleanup(void);
int turns_init(void);
int turns_cleanup(void);
int fork_init(void);
int fork_cleanup(void);
int metrics_init(void);
int metrics_cleanup(void);

#endif
