{
  "variables": {
    "has_fuse3": "<!(pkg-config --exists fuse3 2>/dev/null && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "teleport_io",
      "sources": ["native/teleport_io.c", "native/args.c", "native/at.c", "native/beneath.c", "native/metadata.c", "native/cdc.c", "native/udp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS != 'linux'", {"type": "none", "sources!": ["native/teleport_io.c", "native/args.c", "native/at.c", "native/beneath.c", "native/metadata.c", "native/cdc.c", "native/udp.c"]}]]
    },
    {
      "target_name": "teleport_fuse",
      "type": "none",
      "conditions": [["OS == 'linux' and has_fuse3 == 1", {
        "type": "loadable_module",
        "product_extension": "node",
        "sources": ["native/fuse/teleport_fuse.c"],
        "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "<!@(pkg-config --cflags fuse3 2>/dev/null)"],
        "libraries": ["<!@(pkg-config --libs fuse3 2>/dev/null)"]
      }]]
    }
  ]
}
