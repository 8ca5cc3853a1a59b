/* Content-defined chunking's cut-point scan (cdc.c), added to the addon's exports by its init. */
#ifndef TELEPORT_CDC_H
#define TELEPORT_CDC_H
#include <node_api.h>

void teleport_define_cdc(napi_env env, napi_value exports);

#endif
