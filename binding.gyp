{
  "targets": [
    {
      "target_name": "teleport_io",
      "sources": ["native/teleport_io.c", "native/args.c", "native/at.c", "native/beneath.c", "native/metadata.c", "native/cdc.c", "native/udp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS != 'linux'", {"type": "none", "sources!": ["native/teleport_io.c", "native/args.c", "native/at.c", "native/beneath.c", "native/metadata.c", "native/cdc.c", "native/udp.c"]}]]
    }
  ]
}
