/* Opening beneath a directory descriptor (beneath.c), added to the addon's exports by its init. */
#ifndef TELEPORT_BENEATH_H
#define TELEPORT_BENEATH_H
#include <node_api.h>

void teleport_define_beneath(napi_env env, napi_value exports);

#endif
