#include "fault.h"
const fault_test fault_peer_tests[] = {{NULL, NULL}};
