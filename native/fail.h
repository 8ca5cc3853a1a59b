/* What every file of the addon shares: an errno thrown as a JS Error named after it. */
#ifndef TELEPORT_FAIL_H
#define TELEPORT_FAIL_H
#include <node_api.h>

/* Throws an Error whose code is errno's name and returns NULL, for `return teleport_fail(...)`. */
napi_value teleport_fail(napi_env env, int err, const char *what);

#endif
