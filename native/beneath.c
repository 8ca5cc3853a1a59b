/*
 * Opening files beneath a directory, for the host's share: openat2 with RESOLVE_BENEATH (no `..`
 * or absolute path above the directory, not even through a symlink) and, when asked,
 * RESOLVE_NO_SYMLINKS. A module of its own (teleport_beneath.node) beside teleport_io.node.
 *
 * openBeneath(dirFd, path, flags, noSymlinks[, out]): the new descriptor (O_CLOEXEC always), or
 * throws an Error whose code is errno's name: ENOSYS where the kernel has no openat2 (before
 * 5.6), EXDEV for a path leading above dirFd, ELOOP for a symlink refused. Given a Float64Array
 * `out`, the descriptor is fstat'd too and `out` filled as statNameBeneath fills it, nlink last
 * (a walk describes each file it opens: one call, no Stats object).
 *
 * statNameBeneath(dirFd, name, out): fstatat(dirFd, name, AT_SYMLINK_NOFOLLOW) of one component
 * (no "/", not "." or ".."; EINVAL otherwise), so nothing on the way can lead outside or through
 * a symlink; fills the Float64Array `out` with mode, dev, ino, size, mtime's seconds and
 * nanoseconds, and nlink (no object per call: the host looks up a name per file it serves).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <node_api.h>

#include "beneath.h"
#include "fail.h"
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437 /* the same number on every architecture */
#endif

#define PATH_BYTES 4096
/* mode, dev, ino, size, mtime seconds, mtime nanoseconds, nlink */
#define STAT_FIELDS 7

/* `out` (a Float64Array of at least STAT_FIELDS) from `st`. */
static void fill_stat(double *out, const struct stat *st) {
  out[0] = (double)st->st_mode;
  out[1] = (double)st->st_dev;
  out[2] = (double)st->st_ino;
  out[3] = (double)st->st_size;
  out[4] = (double)st->st_mtim.tv_sec;
  out[5] = (double)st->st_mtim.tv_nsec;
  out[6] = (double)st->st_nlink;
}

/* The data of a Float64Array of at least STAT_FIELDS, or NULL. */
static double *stat_fields(napi_env env, napi_value value) {
  napi_typedarray_type type;
  size_t fields;
  void *data;
  if (napi_get_typedarray_info(env, value, &type, &fields, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || fields < STAT_FIELDS)
    return NULL;
  return data;
}

static napi_value open_beneath_js(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc = 5;
  int32_t dir_fd, flags;
  bool no_symlinks;
  char path[PATH_BYTES];
  size_t length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_value_int32(env, argv[0], &dir_fd) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], path, sizeof path, &length) != napi_ok ||
      napi_get_value_int32(env, argv[2], &flags) != napi_ok ||
      napi_get_value_bool(env, argv[3], &no_symlinks) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "openBeneath(dirFd, path, flags, noSymlinks)");
    return NULL;
  }
  double *out = NULL;
  if (argc >= 5 && (out = stat_fields(env, argv[4])) == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "openBeneath: out is not a Float64Array(7)");
    return NULL;
  }
  if (length >= sizeof path - 1) return teleport_fail(env, ENAMETOOLONG, "openat2");
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)(uint32_t)flags | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0);
  long fd;
  int tries = 0;
  do {
    fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN && ++tries < 16); /* a rename raced the lookup: again */
  if (fd < 0) return teleport_fail(env, errno, "openat2");
  if (out != NULL) {
    struct stat st;
    if (fstat((int)fd, &st) < 0) {
      int err = errno;
      close((int)fd);
      return teleport_fail(env, err, "fstat");
    }
    fill_stat(out, &st);
  }
  napi_value result;
  napi_create_int32(env, (int32_t)fd, &result);
  return result;
}

static napi_value stat_name_beneath_js(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  int32_t dir_fd;
  char name[PATH_BYTES];
  size_t length;
  double *out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &dir_fd) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], name, sizeof name, &length) != napi_ok ||
      (out = stat_fields(env, argv[2])) == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "statNameBeneath(dirFd, name, Float64Array(7))");
    return NULL;
  }
  if (length >= sizeof name - 1) return teleport_fail(env, ENAMETOOLONG, "fstatat");
  if (length == 0 || strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return teleport_fail(env, EINVAL, "fstatat");
  struct stat st;
  if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return teleport_fail(env, errno, "fstatat");
  fill_stat(out, &st);
  return NULL;
}

void teleport_define_beneath(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"openBeneath", NULL, open_beneath_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"statNameBeneath", NULL, stat_name_beneath_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, 2, properties);
}
