#include "fault.h"
const fault_test fault_redis_tests[] = {{NULL, NULL}};
