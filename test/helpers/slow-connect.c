/*
 * LD_PRELOAD shim for tests: every connect() waits SLOW_CONNECT_MS first, as a TCP handshake
 * over a long path takes a round trip. The shaped-path relay delays data in user space, but
 * the kernel answers its handshakes at once; with this the pull's first round trip is as long
 * as the path it then sees. Built by test/helpers/shaped-path.ts with the system's cc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

int connect(int fd, const struct sockaddr *address, socklen_t length) {
  static int (*real_connect)(int, const struct sockaddr *, socklen_t);
  if (real_connect == NULL) real_connect = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
  const char *ms = getenv("SLOW_CONNECT_MS");
  if (ms != NULL) {
    long wait = atol(ms);
    struct timespec pause = {wait / 1000, (wait % 1000) * 1000000L};
    nanosleep(&pause, NULL);
  }
  return real_connect(fd, address, length);
}
