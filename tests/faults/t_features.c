#include "fault.h"
const fault_test fault_features_tests[] = {{NULL, NULL}};
