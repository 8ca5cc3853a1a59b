/*
 * teleport's Linux I/O primitives, as a small N-API addon: the system calls Node's fs and net
 * modules do not expose. Every function is synchronous and does one system call (or a loop of
 * one, for short counts); policy, fallbacks and buffering live in src/platform/ in TypeScript.
 *
 * Errors are thrown as Error objects whose `code` is the errno name ("EXDEV", "EOPNOTSUPP", ...),
 * like Node's own, so callers can tell "not supported here" from a real failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* not netinet/tcp.h: its tcp_info lacks the newer fields */
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_ARGS 5

/* Throws an Error whose code is errno's name and returns NULL, for `return fail(...)`. */
static napi_value fail(napi_env env, int err, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  const char *name = strerrorname_np(err);
  napi_throw_error(env, name != NULL ? name : "EIO", message);
  return NULL;
}

static napi_value usage(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* Reads `count` integer arguments into `out`; false (with a TypeError thrown) if one is not. */
static int int_args(napi_env env, napi_callback_info info, size_t count, int64_t *out) {
  napi_value argv[MAX_ARGS];
  size_t argc = MAX_ARGS;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
    usage(env, "too few arguments");
    return 0;
  }
  for (size_t i = 0; i < count; i++) {
    if (napi_get_value_int64(env, argv[i], &out[i]) != napi_ok) {
      usage(env, "expected a number");
      return 0;
    }
  }
  return 1;
}

static napi_value number(napi_env env, int64_t value) {
  napi_value result;
  napi_create_int64(env, value, &result);
  return result;
}

/* copyFileRange(fdIn, offsetIn, fdOut, offsetOut, length): bytes copied, fewer only at EOF. */
static napi_value copy_file_range_js(napi_env env, napi_callback_info info) {
  int64_t a[5];
  if (!int_args(env, info, 5, a)) return NULL;
  loff_t in = a[1], out = a[3];
  int64_t left = a[4], done = 0;
  while (left > 0) {
    ssize_t n = copy_file_range((int)a[0], &in, (int)a[2], &out, (size_t)left, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(env, errno, "copy_file_range");
    }
    if (n == 0) break;
    done += n;
    left -= n;
  }
  return number(env, done);
}

/* cloneRange(fdSrc, offsetSrc, fdDst, offsetDst, length): shares the extents (FICLONERANGE). */
static napi_value clone_range_js(napi_env env, napi_callback_info info) {
  int64_t a[5];
  if (!int_args(env, info, 5, a)) return NULL;
  struct file_clone_range range = {
      .src_fd = a[0], .src_offset = (uint64_t)a[1], .dest_offset = (uint64_t)a[3], .src_length = (uint64_t)a[4]};
  if (ioctl((int)a[2], FICLONERANGE, &range) < 0) return fail(env, errno, "FICLONERANGE");
  return NULL;
}

/* preallocate(fd, offset, length): reserves the blocks (fallocate, keeping the file's size). */
static napi_value preallocate_js(napi_env env, napi_callback_info info) {
  int64_t a[3];
  if (!int_args(env, info, 3, a)) return NULL;
  if (fallocate((int)a[0], FALLOC_FL_KEEP_SIZE, a[1], a[2]) < 0) return fail(env, errno, "fallocate");
  return NULL;
}

/* punchHole(fd, offset, length): deallocates the range, which then reads as zeros. */
static napi_value punch_hole_js(napi_env env, napi_callback_info info) {
  int64_t a[3];
  if (!int_args(env, info, 3, a)) return NULL;
  if (fallocate((int)a[0], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a[1], a[2]) < 0)
    return fail(env, errno, "fallocate(PUNCH_HOLE)");
  return NULL;
}

/* seek(fd, offset, whence): lseek with SEEK_DATA (3) or SEEK_HOLE (4); -1 past the last data. */
static napi_value seek_js(napi_env env, napi_callback_info info) {
  int64_t a[3];
  if (!int_args(env, info, 3, a)) return NULL;
  if (a[2] != SEEK_DATA && a[2] != SEEK_HOLE) return usage(env, "whence must be SEEK_DATA or SEEK_HOLE");
  off_t at = lseek((int)a[0], a[1], (int)a[2]);
  if (at < 0) {
    if (errno == ENXIO) return number(env, -1);
    return fail(env, errno, "lseek");
  }
  return number(env, at);
}

/* fadvise(fd, offset, length, advice). */
static napi_value fadvise_js(napi_env env, napi_callback_info info) {
  int64_t a[4];
  if (!int_args(env, info, 4, a)) return NULL;
  int err = posix_fadvise((int)a[0], a[1], a[2], (int)a[3]);
  if (err != 0) return fail(env, err, "posix_fadvise");
  return NULL;
}

/* sendFile(socketFd, fileFd, offset, length): bytes sent, or -1 when the socket is full (EAGAIN). */
static napi_value sendfile_js(napi_env env, napi_callback_info info) {
  int64_t a[4];
  if (!int_args(env, info, 4, a)) return NULL;
  off_t offset = a[2];
  for (;;) {
    ssize_t n = sendfile((int)a[0], (int)a[1], &offset, (size_t)a[3]);
    if (n >= 0) return number(env, n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return number(env, -1);
    return fail(env, errno, "sendfile");
  }
}

/* setTcpCongestion(fd, name): sets the socket's congestion control (TCP_CONGESTION). */
static napi_value set_tcp_congestion_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  int64_t fd;
  char name[32];
  size_t length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int64(env, argv[0], &fd) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], name, sizeof name, &length) != napi_ok)
    return usage(env, "expected (fd, name)");
  if (setsockopt((int)fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)length) < 0)
    return fail(env, errno, "TCP_CONGESTION");
  return NULL;
}

/* tcpCongestion(fd): the socket's congestion control. */
static napi_value tcp_congestion_js(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (!int_args(env, info, 1, &fd)) return NULL;
  char name[32] = {0};
  socklen_t length = sizeof name - 1;
  if (getsockopt((int)fd, IPPROTO_TCP, TCP_CONGESTION, name, &length) < 0) return fail(env, errno, "TCP_CONGESTION");
  napi_value result;
  napi_create_string_utf8(env, name, strnlen(name, sizeof name), &result);
  return result;
}

/* setTcpNotSentLowat(fd, bytes): unsent bytes the kernel holds before the socket stops being writable. */
static napi_value set_tcp_notsent_lowat_js(napi_env env, napi_callback_info info) {
  int64_t a[2];
  if (!int_args(env, info, 2, a)) return NULL;
  int bytes = (int)a[1];
  if (setsockopt((int)a[0], IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof bytes) < 0)
    return fail(env, errno, "TCP_NOTSENT_LOWAT");
  return NULL;
}

static void set_number(napi_env env, napi_value object, const char *name, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, object, name, v);
}

/* tcpInfo(fd): what the kernel measures of the connection (TCP_INFO). */
static napi_value tcp_info_js(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (!int_args(env, info, 1, &fd)) return NULL;
  struct tcp_info ti;
  socklen_t length = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt((int)fd, IPPROTO_TCP, TCP_INFO, &ti, &length) < 0) return fail(env, errno, "TCP_INFO");
  napi_value result;
  napi_create_object(env, &result);
  set_number(env, result, "rttUs", ti.tcpi_rtt);
  set_number(env, result, "congestionWindow", ti.tcpi_snd_cwnd);
  set_number(env, result, "mss", ti.tcpi_snd_mss);
  set_number(env, result, "retransmits", ti.tcpi_total_retrans);
  set_number(env, result, "deliveryRate", (double)ti.tcpi_delivery_rate);
  set_number(env, result, "bytesAcked", (double)ti.tcpi_bytes_acked);
  set_number(env, result, "notSentBytes", ti.tcpi_notsent_bytes);
  return result;
}

/* Reads a string argument into `out` (at most `size` - 1 bytes); false with a TypeError thrown. */
static int string_arg(napi_env env, napi_value value, char *out, size_t size) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, out, size, &length) != napi_ok || length >= size - 1) {
    usage(env, "expected a string of reasonable length");
    return 0;
  }
  return 1;
}

/* Longest path (PATH_MAX) and attribute name (XATTR_NAME_MAX) taken, with their NUL. */
#define PATH_BYTES 4096
#define NAME_BYTES 256

/* listXattrs(path): the names of a file's extended attributes (llistxattr: links not followed). */
static napi_value list_xattrs_js(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  char path[PATH_BYTES];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      !string_arg(env, argv[0], path, sizeof path))
    return NULL;
  char names[65536];
  ssize_t length = llistxattr(path, names, sizeof names);
  if (length < 0) return fail(env, errno, "llistxattr");
  napi_value result;
  napi_create_array(env, &result);
  uint32_t count = 0;
  for (ssize_t at = 0; at < length;) {
    size_t n = strnlen(names + at, (size_t)(length - at));
    napi_value name;
    napi_create_string_utf8(env, names + at, n, &name);
    napi_set_element(env, result, count++, name);
    at += (ssize_t)n + 1;
  }
  return result;
}

/* Reads (path, name) arguments, and the value argument when `value` is not NULL. */
static int xattr_args(napi_env env, napi_callback_info info, char *path, char *name, void **value, size_t *length) {
  napi_value argv[3];
  size_t argc = 3;
  size_t wanted = value == NULL ? 2 : 3;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < wanted) {
    usage(env, "too few arguments");
    return 0;
  }
  if (!string_arg(env, argv[0], path, PATH_BYTES) || !string_arg(env, argv[1], name, NAME_BYTES)) return 0;
  if (value != NULL && napi_get_buffer_info(env, argv[2], value, length) != napi_ok) {
    usage(env, "expected a Buffer");
    return 0;
  }
  return 1;
}

/* getXattr(path, name): an attribute's value as a Buffer (lgetxattr). */
static napi_value get_xattr_js(napi_env env, napi_callback_info info) {
  char path[PATH_BYTES], name[NAME_BYTES];
  if (!xattr_args(env, info, path, name, NULL, NULL)) return NULL;
  char value[65536];
  ssize_t length = lgetxattr(path, name, value, sizeof value);
  if (length < 0) return fail(env, errno, "lgetxattr");
  napi_value result;
  void *data;
  napi_create_buffer_copy(env, (size_t)length, value, &data, &result);
  return result;
}

/* setXattr(path, name, value): sets an attribute (lsetxattr). */
static napi_value set_xattr_js(napi_env env, napi_callback_info info) {
  char path[PATH_BYTES], name[NAME_BYTES];
  void *value;
  size_t length;
  if (!xattr_args(env, info, path, name, &value, &length)) return NULL;
  if (lsetxattr(path, name, value, length, 0) < 0) return fail(env, errno, "lsetxattr");
  return NULL;
}

/* removeXattr(path, name): removes an attribute (lremovexattr). */
static napi_value remove_xattr_js(napi_env env, napi_callback_info info) {
  char path[PATH_BYTES], name[NAME_BYTES];
  if (!xattr_args(env, info, path, name, NULL, NULL)) return NULL;
  if (lremovexattr(path, name) < 0) return fail(env, errno, "lremovexattr");
  return NULL;
}

#define EXPORT(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORT("copyFileRange", copy_file_range_js),
      EXPORT("cloneRange", clone_range_js),
      EXPORT("preallocate", preallocate_js),
      EXPORT("punchHole", punch_hole_js),
      EXPORT("seek", seek_js),
      EXPORT("fadvise", fadvise_js),
      EXPORT("sendFile", sendfile_js),
      EXPORT("setTcpCongestion", set_tcp_congestion_js),
      EXPORT("tcpCongestion", tcp_congestion_js),
      EXPORT("setTcpNotSentLowat", set_tcp_notsent_lowat_js),
      EXPORT("tcpInfo", tcp_info_js),
      EXPORT("listXattrs", list_xattrs_js),
      EXPORT("getXattr", get_xattr_js),
      EXPORT("setXattr", set_xattr_js),
      EXPORT("removeXattr", remove_xattr_js),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
