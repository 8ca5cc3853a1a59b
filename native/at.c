/*
 * The client's directory-relative calls (openat, mkdirat, renameat, linkat, symlinkat,
 * unlinkat, fstatat): a pull writes every name relative to a folder it holds open, so a folder
 * swapped for a symlink after it was opened cannot redirect a write (src/platform/directory-io.ts
 * holds the policy). Same conventions as teleport_io.c: synchronous, one system call each,
 * errors thrown with the errno name as `code`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "at.h"
#include "args.h"
#include "fail.h"

/* NAME_MAX and PATH_MAX (a symlink's target), with their NUL. */
#define AT_NAME_BYTES 256
#define AT_TARGET_BYTES 4096

/* A folder fd and a name inside it, from arguments `first` and `first + 1`. */
static int at_place(napi_env env, napi_value *argv, size_t first, int *dir, char *name) {
  return teleport_int(env, argv[first], dir) && teleport_string(env, argv[first + 1], name, AT_NAME_BYTES);
}

/* openAt(dirFd, name, flags, mode): the new fd (always O_CLOEXEC). */
static napi_value open_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int dir, flags, mode;
  char name[AT_NAME_BYTES];
  if (!teleport_args(env, info, 4, argv) || !at_place(env, argv, 0, &dir, name) || !teleport_int(env, argv[2], &flags) ||
      !teleport_int(env, argv[3], &mode))
    return NULL;
  int fd = openat(dir, name, flags | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) return teleport_fail(env, errno, "openat");
  return teleport_number(env, fd);
}

/* mkdirAt(dirFd, name, mode) */
static napi_value mkdir_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int dir, mode;
  char name[AT_NAME_BYTES];
  if (!teleport_args(env, info, 3, argv) || !at_place(env, argv, 0, &dir, name) || !teleport_int(env, argv[2], &mode))
    return NULL;
  if (mkdirat(dir, name, (mode_t)mode) < 0) return teleport_fail(env, errno, "mkdirat");
  return NULL;
}

/* renameAt(fromDirFd, fromName, toDirFd, toName) */
static napi_value rename_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int from_dir, to_dir;
  char from[AT_NAME_BYTES], to[AT_NAME_BYTES];
  if (!teleport_args(env, info, 4, argv) || !at_place(env, argv, 0, &from_dir, from) ||
      !at_place(env, argv, 2, &to_dir, to))
    return NULL;
  if (renameat(from_dir, from, to_dir, to) < 0) return teleport_fail(env, errno, "renameat");
  return NULL;
}

/* linkAt(fromDirFd, fromName, toDirFd, toName): a symlink at `fromName` is linked, not followed. */
static napi_value link_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int from_dir, to_dir;
  char from[AT_NAME_BYTES], to[AT_NAME_BYTES];
  if (!teleport_args(env, info, 4, argv) || !at_place(env, argv, 0, &from_dir, from) ||
      !at_place(env, argv, 2, &to_dir, to))
    return NULL;
  if (linkat(from_dir, from, to_dir, to, 0) < 0) return teleport_fail(env, errno, "linkat");
  return NULL;
}

/* symlinkAt(target, dirFd, name) */
static napi_value symlink_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int dir;
  char target[AT_TARGET_BYTES], name[AT_NAME_BYTES];
  if (!teleport_args(env, info, 3, argv) || !teleport_string(env, argv[0], target, sizeof target) ||
      !at_place(env, argv, 1, &dir, name))
    return NULL;
  if (symlinkat(target, dir, name) < 0) return teleport_fail(env, errno, "symlinkat");
  return NULL;
}

/* unlinkAt(dirFd, name) */
static napi_value unlink_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int dir;
  char name[AT_NAME_BYTES];
  if (!teleport_args(env, info, 2, argv) || !at_place(env, argv, 0, &dir, name)) return NULL;
  if (unlinkat(dir, name, 0) < 0) return teleport_fail(env, errno, "unlinkat");
  return NULL;
}

/* statAt(dirFd, name): [mode, dev, ino] of the name itself (a symlink is not followed). */
static napi_value stat_at_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int dir;
  char name[AT_NAME_BYTES];
  if (!teleport_args(env, info, 2, argv) || !at_place(env, argv, 0, &dir, name)) return NULL;
  struct stat st;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return teleport_fail(env, errno, "fstatat");
  napi_value result;
  napi_create_array_with_length(env, 3, &result);
  napi_set_element(env, result, 0, teleport_number(env, st.st_mode));
  napi_set_element(env, result, 1, teleport_number(env, (double)st.st_dev));
  napi_set_element(env, result, 2, teleport_number(env, (double)st.st_ino));
  return result;
}

#define AT_EXPORT(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}

void teleport_define_at(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      AT_EXPORT("openAt", open_at_js),       AT_EXPORT("mkdirAt", mkdir_at_js),
      AT_EXPORT("renameAt", rename_at_js),   AT_EXPORT("linkAt", link_at_js),
      AT_EXPORT("symlinkAt", symlink_at_js), AT_EXPORT("unlinkAt", unlink_at_js),
      AT_EXPORT("statAt", stat_at_js),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
