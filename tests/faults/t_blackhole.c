#include "fault.h"
const fault_test fault_blackhole_netns_tests[] = {{NULL, NULL}};
const fault_test fault_blackhole_backlog_tests[] = {{NULL, NULL}};
