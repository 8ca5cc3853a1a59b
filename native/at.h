/* The client's directory-relative calls (at.c), added to the addon's exports by its init. */
#ifndef TELEPORT_AT_H
#define TELEPORT_AT_H
#include <node_api.h>

void teleport_define_at(napi_env env, napi_value exports);

#endif
