/* The suites' test tables and fixtures, listed in one table in test_main.c. */
#ifndef CPOOL_SUITES_H
#define CPOOL_SUITES_H

#include <CUnit/CUnit.h>

extern CU_TestInfo harness_tests[];
extern CU_TestInfo errors_tests[];
extern CU_TestInfo config_tests[];
extern CU_TestInfo backoff_tests[];
extern CU_TestInfo policy_tests[];
extern CU_TestInfo checkout_tests[];
extern CU_TestInfo reconnect_tests[];
extern CU_TestInfo close_tests[];
extern CU_TestInfo redis_tests[];
extern CU_TestInfo fastpath_tests[];
extern CU_TestInfo turns_tests[];

/* Suites that share one test server start it in init, stop it in cleanup. */
int config_init(void);
int config_cleanup(void);
int checkout_init(void);
int checkout_cleanup(void);
int close_init(void);
int close_cleanup(void);
int fastpath_init(void);
int fastpath_cleanup(void);
int turns_init(void);
int turns_cleanup(void);

#endif
