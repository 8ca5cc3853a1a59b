/*
 * A file's metadata through descriptors, never through a path string: extended attributes of an
 * open file (flistxattr, fgetxattr, fsetxattr, fremovexattr) and a symlink's own times and
 * target, named relative to its open folder (utimensat and fstatat with AT_SYMLINK_NOFOLLOW,
 * readlinkat). A folder swapped for a symlink after the file or folder was opened cannot
 * redirect them (src/platform/io.ts and directory-io.ts hold the policy). Same conventions as
 * teleport_io.c: synchronous, one system call each, errors thrown with the errno name as `code`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "args.h"
#include "fail.h"
#include "metadata.h"

/* XATTR_NAME_MAX and NAME_MAX, with their NUL; XATTR_LIST_MAX and XATTR_SIZE_MAX; PATH_MAX. */
#define MD_XATTR_NAME_BYTES 256
#define MD_NAME_BYTES 256
#define MD_XATTR_LIST_BYTES 65536
#define MD_XATTR_VALUE_BYTES 65536
#define MD_TARGET_BYTES 4096

/* A descriptor and an attribute name, from arguments 0 and 1. */
static int md_fd_and_name(napi_env env, napi_value *argv, int *fd, char *name) {
  return teleport_int(env, argv[0], fd) && teleport_string(env, argv[1], name, MD_XATTR_NAME_BYTES);
}

/* flistXattrs(fd): the names of the open file's extended attributes. */
static napi_value flist_xattrs_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int fd;
  if (!teleport_args(env, info, 1, argv) || !teleport_int(env, argv[0], &fd)) return NULL;
  char *names = malloc(MD_XATTR_LIST_BYTES);
  if (names == NULL) return teleport_fail(env, ENOMEM, "flistxattr");
  ssize_t length = flistxattr(fd, names, MD_XATTR_LIST_BYTES);
  if (length < 0) {
    int err = errno;
    free(names);
    return teleport_fail(env, err, "flistxattr");
  }
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
  free(names);
  return result;
}

/* fgetXattr(fd, name): an attribute's value as a Buffer. */
static napi_value fget_xattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int fd;
  char name[MD_XATTR_NAME_BYTES];
  if (!teleport_args(env, info, 2, argv) || !md_fd_and_name(env, argv, &fd, name)) return NULL;
  char *value = malloc(MD_XATTR_VALUE_BYTES);
  if (value == NULL) return teleport_fail(env, ENOMEM, "fgetxattr");
  ssize_t length = fgetxattr(fd, name, value, MD_XATTR_VALUE_BYTES);
  int err = errno;
  napi_value result = NULL;
  void *data;
  if (length >= 0) napi_create_buffer_copy(env, (size_t)length, value, &data, &result);
  free(value);
  return length < 0 ? teleport_fail(env, err, "fgetxattr") : result;
}

/* fsetXattr(fd, name, value): sets an attribute of the open file. */
static napi_value fset_xattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int fd;
  char name[MD_XATTR_NAME_BYTES];
  void *value;
  size_t length;
  if (!teleport_args(env, info, 3, argv) || !md_fd_and_name(env, argv, &fd, name)) return NULL;
  if (napi_get_buffer_info(env, argv[2], &value, &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Buffer");
    return NULL;
  }
  if (fsetxattr(fd, name, value, length, 0) < 0) return teleport_fail(env, errno, "fsetxattr");
  return NULL;
}

/* fremoveXattr(fd, name): removes an attribute of the open file. */
static napi_value fremove_xattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int fd;
  char name[MD_XATTR_NAME_BYTES];
  if (!teleport_args(env, info, 2, argv) || !md_fd_and_name(env, argv, &fd, name)) return NULL;
  if (fremovexattr(fd, name) < 0) return teleport_fail(env, errno, "fremovexattr");
  return NULL;
}

/* Milliseconds since the epoch (a JS mtimeMs, fractions kept) as a timespec. */
static struct timespec md_timespec(double ms) {
  double seconds = floor(ms / 1000);
  long nanoseconds = lround((ms - seconds * 1000) * 1e6);
  if (nanoseconds >= 1000000000L) {
    seconds += 1;
    nanoseconds -= 1000000000L;
  }
  return (struct timespec){.tv_sec = (time_t)seconds, .tv_nsec = nanoseconds};
}

/* utimensAt(dirFd, name, atimeMs, mtimeMs): sets the times of `name` itself, a symlink never followed. */
static napi_value utimens_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int dir;
  char name[MD_NAME_BYTES];
  double atime, mtime;
  if (!teleport_args(env, info, 4, argv) || !teleport_int(env, argv[0], &dir) || !teleport_string(env, argv[1], name, sizeof name) ||
      !teleport_double(env, argv[2], &atime) || !teleport_double(env, argv[3], &mtime))
    return NULL;
  struct timespec times[2] = {md_timespec(atime), md_timespec(mtime)};
  if (utimensat(dir, name, times, AT_SYMLINK_NOFOLLOW) < 0) return teleport_fail(env, errno, "utimensat");
  return NULL;
}

/*
 * readSymlinkAt(dirFd, name): { target, mtimeMs } of the symlink `name` (fstatat without
 * following it, then readlinkat); throws EINVAL if `name` is not a symlink.
 */
static napi_value read_symlink_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int dir;
  char name[MD_NAME_BYTES];
  if (!teleport_args(env, info, 2, argv) || !teleport_int(env, argv[0], &dir) || !teleport_string(env, argv[1], name, sizeof name))
    return NULL;
  struct stat st;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return teleport_fail(env, errno, "fstatat");
  if (!S_ISLNK(st.st_mode)) return teleport_fail(env, EINVAL, "readlinkat");
  char target[MD_TARGET_BYTES];
  ssize_t length = readlinkat(dir, name, target, sizeof target);
  if (length < 0) return teleport_fail(env, errno, "readlinkat");
  if ((size_t)length == sizeof target) return teleport_fail(env, ENAMETOOLONG, "readlinkat");
  napi_value result, target_value, mtime_value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, target, (size_t)length, &target_value);
  napi_create_double(env, (double)st.st_mtim.tv_sec * 1000 + (double)st.st_mtim.tv_nsec / 1e6, &mtime_value);
  napi_set_named_property(env, result, "target", target_value);
  napi_set_named_property(env, result, "mtimeMs", mtime_value);
  return result;
}

#define MD_EXPORT(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}

void teleport_define_metadata(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      MD_EXPORT("flistXattrs", flist_xattrs_js),   MD_EXPORT("fgetXattr", fget_xattr_js),
      MD_EXPORT("fsetXattr", fset_xattr_js),       MD_EXPORT("fremoveXattr", fremove_xattr_js),
      MD_EXPORT("utimensAt", utimens_at_js),       MD_EXPORT("readSymlinkAt", read_symlink_at_js),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
