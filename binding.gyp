{
  "targets": [
    {
      "target_name": "teleport_io",
      "sources": ["native/teleport_io.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS != 'linux'", {"type": "none", "sources!": ["native/teleport_io.c"]}]]
    },
    {
      "target_name": "teleport_beneath",
      "sources": ["native/beneath.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [["OS != 'linux'", {"type": "none", "sources!": ["native/beneath.c"]}]]
    }
  ]
}
