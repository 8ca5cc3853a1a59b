#include "args.h"

#include <math.h>

static int usage(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return 0;
}

int teleport_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = TELEPORT_MAX_ARGS;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count)
    return usage(env, "too few arguments");
  return 1;
}

int teleport_int(napi_env env, napi_value value, int *out) {
  int32_t number;
  if (napi_get_value_int32(env, value, &number) != napi_ok) return usage(env, "expected a number");
  *out = number;
  return 1;
}

int teleport_double(napi_env env, napi_value value, double *out) {
  if (napi_get_value_double(env, value, out) != napi_ok || !isfinite(*out)) return usage(env, "expected a number");
  return 1;
}

int teleport_string(napi_env env, napi_value value, char *out, size_t size) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok || length >= size - 1)
    return usage(env, "expected a string of reasonable length");
  return 1;
}

napi_value teleport_number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}
