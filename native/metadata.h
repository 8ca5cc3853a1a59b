/* A file's metadata through descriptors (metadata.c), added to the addon's exports by its init. */
#ifndef TELEPORT_METADATA_H
#define TELEPORT_METADATA_H
#include <node_api.h>

void teleport_define_metadata(napi_env env, napi_value exports);

#endif
