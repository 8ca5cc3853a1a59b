/* This process's UDP sockets, found by their local port (udp.c), added to the addon's exports by its init. */
#ifndef TELEPORT_UDP_H
#define TELEPORT_UDP_H
#include <node_api.h>

void teleport_define_udp(napi_env env, napi_value exports);

#endif
