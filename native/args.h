/* What the addon's folder-relative and metadata calls share: reading their JS arguments. */
#ifndef TELEPORT_ARGS_H
#define TELEPORT_ARGS_H
#include <node_api.h>
#include <stddef.h>

/* The most arguments any of these calls takes. */
#define TELEPORT_MAX_ARGS 4

/* Each of these returns false with a TypeError thrown, for `if (!...) return NULL;`. */

/* The call's arguments into argv[TELEPORT_MAX_ARGS]; false if fewer than `count`. */
int teleport_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv);
int teleport_int(napi_env env, napi_value value, int *out);
/* A finite number. */
int teleport_double(napi_env env, napi_value value, double *out);
/* A string that fits `size` bytes with its NUL, never cut short. */
int teleport_string(napi_env env, napi_value value, char *out, size_t size);

napi_value teleport_number(napi_env env, double value);

#endif
