/* SPDX-License-Identifier: MIT */
#include "internal.h"

const char *pc_version(void) { return PC_VERSION_STRING; }

unsigned pc_version_number(void) { return PC_VERSION_NUMBER; }
