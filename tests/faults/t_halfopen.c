#include "fault.h"
const fault_test fault_halfopen_tests[] = {{NULL, NULL}};
