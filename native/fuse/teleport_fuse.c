/*
 * teleport mount's N-API addon over libfuse3's low-level API (src/mount/binding.ts loads it).
 *
 * One C thread runs fuse_session_loop (reads requests from /dev/fuse). Each request is handed to
 * JavaScript through a napi threadsafe function and the loop thread returns at once: JavaScript
 * answers later, from the main thread, by calling one of the reply functions with the request's
 * handle (fuse_reply_* only writes to /dev/fuse, and libfuse allows it from any thread). So one
 * loop thread suffices however slow the backend is: no libfuse thread ever blocks on JS.
 *
 * Read-only: lookup, forget, getattr, readlink, open, read, release, opendir, readdir(plus),
 * releasedir, statfs. Inode numbers are the JS side's (never reused while mounted).
 *
 * Each request carries a sequence number; a FUSE_INTERRUPT for it (its reader got a signal) comes
 * to JS as OP_INTERRUPT with that number, never with the fuse_req_t, which may be freed by then.
 * Cache invalidations (notify_inval_entry/inode) run on a thread of their own: the kernel may
 * hold them until a pending request on the same folder is answered, which only JS can do.
 */
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mount.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

enum { OP_LOOKUP = 1, OP_GETATTR, OP_READLINK, OP_OPEN, OP_READ, OP_RELEASE, OP_OPENDIR,
       OP_READDIR, OP_READDIRPLUS, OP_RELEASEDIR, OP_STATFS, OP_INIT, OP_DESTROY, OP_INTERRUPT };

/* Kernel requests in the background (read-ahead) at once. */
#define MAX_BACKGROUND 64

/* mount flags: what the C side answers itself, without a trip to JS */
enum { MF_OPEN_IN_C = 1, MF_CACHE_READDIR = 2, MF_DIRECT_IO = 4,
       MF_NO_OPEN = 16 /* open/opendir answered ENOSYS: the kernel stops sending open/release/opendir/releasedir and keeps caches (FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR) */ };

typedef struct {
  int op;
  uint64_t seq;
  fuse_req_t req;
  fuse_ino_t ino;
  uint64_t fh;
  off_t off;
  size_t size;
  char name[]; /* lookup only */
} request_t;

typedef struct {
  struct fuse_session *se;
  pthread_t thread;
  napi_threadsafe_function tsfn;
  int running;
  int loop_result;
  unsigned max_readahead;
  unsigned max_write;
  int flags; /* MF_* */
  char *mountpoint;
  int mounted_by_fd; /* mount_on_folder_fd: libfuse neither mounted nor unmounts it */
  uint64_t next_seq; /* loop thread only */
  /* Invalidations waiting for the notify thread (a FIFO; stop ends the thread once drained). */
  pthread_t notify_thread;
  pthread_mutex_t notify_lock;
  pthread_cond_t notify_ready;
  struct notice *notices_head, *notices_tail;
  int notify_stop;
} mount_t;

/* One cache invalidation: an entry (parent + name) or an inode's pages and attributes. */
struct notice {
  struct notice *next;
  fuse_ino_t ino;
  size_t namelen; /* 0: the inode itself */
  char name[];
};

#define CHECK(call) do { if ((call) != napi_ok) { napi_throw_error(env, NULL, #call " failed"); return NULL; } } while (0)

/* Called on the loop thread when the kernel interrupts request `data` (its sequence number). */
static void on_interrupt(fuse_req_t req, void *data) {
  mount_t *m = fuse_req_userdata(req);
  request_t *r = calloc(1, sizeof(request_t));
  if (!r) return;
  r->op = OP_INTERRUPT; r->seq = (uint64_t)(uintptr_t)data;
  if (napi_call_threadsafe_function(m->tsfn, r, napi_tsfn_nonblocking) != napi_ok) free(r);
}

static void enqueue(fuse_req_t req, int op, fuse_ino_t ino, struct fuse_file_info *fi, off_t off, size_t size,
                    const char *name) {
  mount_t *m = fuse_req_userdata(req);
  size_t len = name ? strlen(name) + 1 : 0;
  request_t *r = malloc(sizeof(request_t) + len);
  if (!r) { fuse_reply_err(req, ENOMEM); return; }
  r->op = op; r->seq = ++m->next_seq; r->req = req; r->ino = ino; r->fh = fi ? fi->fh : 0; r->off = off; r->size = size;
  if (name) memcpy(r->name, name, len);
  /* Registered before JS can see (and answer, freeing) the request. An interrupt that came
   * earlier is delivered now, ahead of the request itself: JS then ignores it. */
  fuse_req_interrupt_func(req, on_interrupt, (void *)(uintptr_t)r->seq);
  if (napi_call_threadsafe_function(m->tsfn, r, napi_tsfn_nonblocking) != napi_ok) {
    free(r);
    fuse_reply_err(req, EIO);
  }
}

static void ll_init(void *userdata, struct fuse_conn_info *conn) {
  mount_t *m = userdata;
  if (m->max_readahead) conn->max_readahead = m->max_readahead;
  if (m->max_write) conn->max_write = m->max_write; /* also sets max_pages: reads up to this size */
  conn->want |= FUSE_CAP_ASYNC_READ;
  /* Read-ahead requests are background requests: room for the eight 1 MiB reads of an 8 MiB
   * read-ahead (kernel-readahead.ts) and more, before the kernel holds back (default 12 / 9). */
  conn->max_background = MAX_BACKGROUND;
  conn->congestion_threshold = MAX_BACKGROUND * 3 / 4;
  if ((m->flags & MF_NO_OPEN) && !(conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) m->flags &= ~MF_NO_OPEN;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
}
static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) { enqueue(req, OP_LOOKUP, parent, NULL, 0, 0, name); }
static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) { fuse_reply_none(req); }
static void ll_forget_multi(fuse_req_t req, size_t c, struct fuse_forget_data *f) { fuse_reply_none(req); }
static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { enqueue(req, OP_GETATTR, ino, NULL, 0, 0, NULL); }
static void ll_readlink(fuse_req_t req, fuse_ino_t ino) { enqueue(req, OP_READLINK, ino, NULL, 0, 0, NULL); }
static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY) { fuse_reply_err(req, EROFS); return; }
  mount_t *m = fuse_req_userdata(req);
  if (m->flags & MF_NO_OPEN) { fuse_reply_err(req, ENOSYS); return; }
  if (m->flags & MF_OPEN_IN_C) {
    /* Files are immutable while cached (content named by hash): keep the page cache across opens. */
    fi->fh = 0; fi->keep_cache = 1; fi->direct_io = (m->flags & MF_DIRECT_IO) != 0;
    if (fi->direct_io) fi->keep_cache = 0;
    fuse_reply_open(req, fi);
    return;
  }
  enqueue(req, OP_OPEN, ino, fi, 0, 0, NULL);
}
static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  enqueue(req, OP_READ, ino, fi, off, size, NULL);
}
static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  mount_t *m = fuse_req_userdata(req);
  if (m->flags & MF_OPEN_IN_C) { fuse_reply_err(req, 0); return; }
  enqueue(req, OP_RELEASE, ino, fi, 0, 0, NULL);
}
static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  mount_t *m = fuse_req_userdata(req);
  if (m->flags & MF_NO_OPEN) { fuse_reply_err(req, ENOSYS); return; }
  if (m->flags & MF_CACHE_READDIR) {
    /* The kernel keeps the directory's entries (FOPEN_CACHE_DIR) until the inode is evicted or
     * invalidated (fuse_lowlevel_notify_inval_inode): a second readdir never reaches us. */
    fi->fh = 0; fi->cache_readdir = 1; fi->keep_cache = 1;
    fuse_reply_open(req, fi);
    return;
  }
  enqueue(req, OP_OPENDIR, ino, fi, 0, 0, NULL);
}
static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) { enqueue(req, OP_READDIR, ino, fi, off, size, NULL); }
static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) { enqueue(req, OP_READDIRPLUS, ino, fi, off, size, NULL); }
static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { fuse_reply_err(req, 0); }
static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs s; memset(&s, 0, sizeof s);
  s.f_bsize = 4096; s.f_frsize = 4096; s.f_namemax = 255;
  fuse_reply_statfs(req, &s);
}

static const struct fuse_lowlevel_ops ops = {
  .init = ll_init, .lookup = ll_lookup, .forget = ll_forget, .forget_multi = ll_forget_multi,
  .getattr = ll_getattr, .readlink = ll_readlink, .open = ll_open, .read = ll_read,
  .release = ll_release, .opendir = ll_opendir, .readdir = ll_readdir,
  .readdirplus = ll_readdirplus, .releasedir = ll_releasedir, .statfs = ll_statfs,
};

/* Called on the JS thread for each queued request: dispatcher(op, req, ino, fh, off, size, name, seq). */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  request_t *r = data;
  if (env == NULL) { if (r->req) fuse_reply_err(r->req, EIO); free(r); return; }
  napi_value argv[8], undefined;
  napi_create_int32(env, r->op, &argv[0]);
  napi_create_double(env, (double)(uintptr_t)r->req, &argv[1]);
  napi_create_double(env, (double)r->ino, &argv[2]);
  napi_create_double(env, (double)r->fh, &argv[3]);
  napi_create_double(env, (double)r->off, &argv[4]);
  napi_create_double(env, (double)r->size, &argv[5]);
  if (r->op == OP_LOOKUP) napi_create_string_utf8(env, r->name, NAPI_AUTO_LENGTH, &argv[6]);
  else napi_get_undefined(env, &argv[6]);
  napi_create_double(env, (double)r->seq, &argv[7]);
  napi_get_undefined(env, &undefined);
  fuse_req_t req = r->req;
  free(r);
  napi_status st = napi_call_function(env, undefined, js_cb, 8, argv, NULL);
  if (st != napi_ok && req != NULL) {
    /* The dispatcher threw: the request must still get an answer, or the caller hangs. */
    napi_value exc; napi_get_and_clear_last_exception(env, &exc);
    fuse_reply_err(req, EIO);
  }
}

static void *loop_thread(void *arg) {
  mount_t *m = arg;
  m->loop_result = fuse_session_loop(m->se);
  /* Tell JS the loop has ended (the kernel connection is gone): it calls destroy(handle). */
  request_t *r = calloc(1, sizeof(request_t));
  r->op = OP_DESTROY;
  napi_call_threadsafe_function(m->tsfn, r, napi_tsfn_blocking);
  napi_release_threadsafe_function(m->tsfn, napi_tsfn_release);
  return NULL;
}

static fuse_req_t req_arg(napi_env env, napi_value v) {
  double d; napi_get_value_double(env, v, &d); return (fuse_req_t)(uintptr_t)d;
}
static double num(napi_env env, napi_value v) { double d = 0; napi_get_value_double(env, v, &d); return d; }

/* attr: Float64Array [ino, mode, nlink, size, mtimeMs, uid, gid] */
static void fill_stat(napi_env env, napi_value arr, struct stat *st) {
  memset(st, 0, sizeof *st);
  void *data; size_t len; napi_typedarray_type t; napi_value ab; size_t bo;
  napi_get_typedarray_info(env, arr, &t, &len, &data, &ab, &bo);
  double *a = data;
  st->st_ino = (ino_t)a[0]; st->st_mode = (mode_t)a[1]; st->st_nlink = (nlink_t)a[2];
  st->st_size = (off_t)a[3];
  double ms = a[4];
  st->st_mtim.tv_sec = (time_t)(ms / 1000); st->st_mtim.tv_nsec = (long)((ms - (double)st->st_mtim.tv_sec * 1000) * 1e6);
  st->st_atim = st->st_mtim; st->st_ctim = st->st_mtim;
  st->st_uid = (uid_t)a[5]; st->st_gid = (gid_t)a[6];
  st->st_blksize = 4096; st->st_blocks = (st->st_size + 511) / 512;
}

static napi_value reply_err(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fuse_reply_err(req_arg(env, argv[0]), (int)num(env, argv[1]));
  return NULL;
}
/* replyEntry(req, attr, entryTimeout, attrTimeout) */
static napi_value reply_entry(napi_env env, napi_callback_info info) {
  size_t argc = 4; napi_value argv[4]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct fuse_entry_param e; memset(&e, 0, sizeof e);
  fill_stat(env, argv[1], &e.attr); e.ino = e.attr.st_ino;
  e.entry_timeout = num(env, argv[2]); e.attr_timeout = num(env, argv[3]);
  fuse_reply_entry(req_arg(env, argv[0]), &e);
  return NULL;
}
/* replyAttr(req, attr, attrTimeout) */
static napi_value reply_attr(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct stat st; fill_stat(env, argv[1], &st);
  fuse_reply_attr(req_arg(env, argv[0]), &st, num(env, argv[2]));
  return NULL;
}
/* replyOpen(req, fh, flags): flags bit 1 = direct_io, bit 2 = keep_cache */
static napi_value reply_open(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct fuse_file_info fi; memset(&fi, 0, sizeof fi);
  fi.fh = (uint64_t)num(env, argv[1]);
  int flags = (int)num(env, argv[2]);
  fi.direct_io = (flags & 1) != 0; fi.keep_cache = (flags & 2) != 0;
  fuse_reply_open(req_arg(env, argv[0]), &fi);
  return NULL;
}
/* replyBuf(req, buffer): the bytes are written to /dev/fuse before this returns (no copy kept) */
static napi_value reply_buf(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data; size_t len; CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  fuse_reply_buf(req_arg(env, argv[0]), data, len);
  return NULL;
}
/* A piece of replyIov that is not a Uint8Array: `{ fd, position, length }`, bytes of a file this
 * process holds open. */
typedef struct { int fd; off_t position; size_t length; } file_piece_t;

static int file_piece(napi_env env, napi_value piece, file_piece_t *out) {
  napi_value v; int64_t fd = -1, position = -1, length = -1;
  if (napi_get_named_property(env, piece, "fd", &v) != napi_ok || napi_get_value_int64(env, v, &fd) != napi_ok ||
      napi_get_named_property(env, piece, "position", &v) != napi_ok || napi_get_value_int64(env, v, &position) != napi_ok ||
      napi_get_named_property(env, piece, "length", &v) != napi_ok || napi_get_value_int64(env, v, &length) != napi_ok ||
      fd < 0 || position < 0 || length < 0)
    return 0;
  out->fd = (int)fd; out->position = position; out->length = (size_t)length;
  return 1;
}

/* Where file pieces are read before they are sent: kept and grown, never freed, as replies come
 * from the JS thread alone. A buffer allocated per reply cost a fresh mapping (and its page
 * faults) per MiB sent. */
static char *scratch; static size_t scratch_size;

static int read_whole(int fd, char *into, size_t length, off_t position) {
  for (size_t done = 0; done < length;) {
    ssize_t n = pread(fd, into + done, length - done, position + (off_t)done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    done += (size_t)n;
  }
  return 1;
}

/* replyIov(req, pieces[]): the pieces sent back to back as one reply (one writev), before this
 * returns: a Uint8Array as it is (never assembled first), a file range `{ fd, position, length }`
 * read from the file (into the scratch buffer: its bytes never become a JS buffer). A range that
 * cannot be read whole fails the request (EIO), never a short answer. Pieces of another kind
 * throw and leave the request to the caller. */
static napi_value reply_iov(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fuse_req_t req = req_arg(env, argv[0]);
  uint32_t n; CHECK(napi_get_array_length(env, argv[1], &n));
  struct iovec few_iov[64]; file_piece_t few_files[64];
  struct iovec *iov = n <= 64 ? few_iov : malloc(n * sizeof *iov);
  file_piece_t *files = n <= 64 ? few_files : malloc(n * sizeof *files);
  const char *bad = NULL; int err = 0;
  size_t file_bytes = 0;
  if (!iov || !files) { err = ENOMEM; goto done; }
  for (uint32_t i = 0; i < n; i++) {
    napi_value piece; napi_typedarray_type t; size_t len; void *data; napi_value ab; size_t bo; bool typed = false;
    files[i].fd = -1;
    if (napi_get_element(env, argv[1], i, &piece) != napi_ok) { bad = "replyIov: pieces must be an array"; break; }
    if (napi_is_typedarray(env, piece, &typed) == napi_ok && typed) {
      if (napi_get_typedarray_info(env, piece, &t, &len, &data, &ab, &bo) != napi_ok || t != napi_uint8_array) {
        bad = "replyIov: a typed piece must be a Uint8Array"; break;
      }
      iov[i].iov_base = data; iov[i].iov_len = len; /* data is already past the view's byte offset */
    } else if (file_piece(env, piece, &files[i])) {
      file_bytes += files[i].length;
    } else { bad = "replyIov: a piece must be a Uint8Array or { fd, position, length }"; break; }
  }
  if (bad) goto done; /* thrown, not answered: the caller answers the request (EIO) */
  if (file_bytes > scratch_size) {
    char *grown = realloc(scratch, file_bytes);
    if (!grown) { err = ENOMEM; goto done; }
    scratch = grown; scratch_size = file_bytes;
  }
  size_t at = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (files[i].fd < 0) continue;
    if (!read_whole(files[i].fd, scratch + at, files[i].length, files[i].position)) { err = EIO; goto done; }
    iov[i].iov_base = scratch + at; iov[i].iov_len = files[i].length;
    at += files[i].length;
  }
  fuse_reply_iov(req, iov, (int)n);
done:
  if (err) fuse_reply_err(req, err);
  if (iov && iov != few_iov) free(iov);
  if (files && files != few_files) free(files);
  if (bad) napi_throw_error(env, NULL, bad);
  return NULL;
}
static napi_value reply_readlink(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char buf[4097]; size_t len; CHECK(napi_get_value_string_utf8(env, argv[1], buf, sizeof buf, &len));
  fuse_reply_readlink(req_arg(env, argv[0]), buf);
  return NULL;
}
/*
 * replyDir(req, size, plus, names[], attrs Float64Array (7 per entry), firstOff, entryTimeout, attrTimeout):
 * packs entries from the start of the arrays until `size` bytes are full; entry i gets next-offset
 * firstOff + i + 1. Returns how many were packed.
 */
static napi_value reply_dir(napi_env env, napi_callback_info info) {
  size_t argc = 8; napi_value argv[8]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fuse_req_t req = req_arg(env, argv[0]);
  size_t size = (size_t)num(env, argv[1]);
  bool plus; napi_get_value_bool(env, argv[2], &plus);
  uint32_t n; CHECK(napi_get_array_length(env, argv[3], &n));
  void *data; size_t alen; napi_typedarray_type t; napi_value ab; size_t bo;
  CHECK(napi_get_typedarray_info(env, argv[4], &t, &alen, &data, &ab, &bo));
  double first = num(env, argv[5]), et = num(env, argv[6]), at = num(env, argv[7]);
  double *a = data;
  char *buf = malloc(size ? size : 1); size_t used = 0; uint32_t i;
  char name[1024];
  for (i = 0; i < n; i++) {
    napi_value nv; napi_get_element(env, argv[3], i, &nv);
    size_t nl; napi_get_value_string_utf8(env, nv, name, sizeof name, &nl);
    struct stat st; memset(&st, 0, sizeof st);
    st.st_ino = (ino_t)a[i * 7]; st.st_mode = (mode_t)a[i * 7 + 1];
    size_t need;
    if (plus) {
      struct fuse_entry_param e; memset(&e, 0, sizeof e);
      double *p = a + i * 7;
      e.attr.st_ino = (ino_t)p[0]; e.attr.st_mode = (mode_t)p[1]; e.attr.st_nlink = (nlink_t)p[2];
      e.attr.st_size = (off_t)p[3];
      e.attr.st_mtim.tv_sec = (time_t)(p[4] / 1000); e.attr.st_mtim.tv_nsec = (long)((p[4] - (double)e.attr.st_mtim.tv_sec * 1000) * 1e6);
      e.attr.st_atim = e.attr.st_mtim; e.attr.st_ctim = e.attr.st_mtim;
      e.attr.st_uid = (uid_t)p[5]; e.attr.st_gid = (gid_t)p[6]; e.attr.st_blksize = 4096;
      e.attr.st_blocks = (e.attr.st_size + 511) / 512;
      e.ino = e.attr.st_ino; e.entry_timeout = et; e.attr_timeout = at;
      /* "." and ".." must not take a lookup count: ino 0 tells the kernel not to make an entry */
      if ((nl == 1 && name[0] == '.') || (nl == 2 && name[0] == '.' && name[1] == '.')) e.ino = 0;
      need = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, (off_t)(first + i + 1));
    } else {
      need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(first + i + 1));
    }
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  napi_value out; napi_create_uint32(env, i, &out);
  return out;
}

/* The notify thread: sends queued invalidations to the kernel, one at a time, until stopped. A
 * notice for an inode or entry the kernel does not hold fails with ENOENT: nothing to drop. */
static void *notify_thread(void *arg) {
  mount_t *m = arg;
  pthread_mutex_lock(&m->notify_lock);
  for (;;) {
    while (!m->notices_head && !m->notify_stop) pthread_cond_wait(&m->notify_ready, &m->notify_lock);
    struct notice *n = m->notices_head;
    if (!n) break; /* stopped and drained */
    m->notices_head = n->next;
    if (!m->notices_head) m->notices_tail = NULL;
    pthread_mutex_unlock(&m->notify_lock);
    if (!m->notify_stop) {
      if (n->namelen) fuse_lowlevel_notify_inval_entry(m->se, n->ino, n->name, n->namelen);
      else fuse_lowlevel_notify_inval_inode(m->se, n->ino, 0, 0);
    }
    free(n);
    pthread_mutex_lock(&m->notify_lock);
  }
  pthread_mutex_unlock(&m->notify_lock);
  return NULL;
}

static void queue_notice(mount_t *m, fuse_ino_t ino, const char *name, size_t namelen) {
  struct notice *n = malloc(sizeof *n + namelen + 1);
  if (!n) return;
  n->next = NULL; n->ino = ino; n->namelen = namelen;
  if (namelen) memcpy(n->name, name, namelen);
  n->name[namelen] = '\0';
  pthread_mutex_lock(&m->notify_lock);
  if (m->notify_stop) { pthread_mutex_unlock(&m->notify_lock); free(n); return; }
  if (m->notices_tail) m->notices_tail->next = n; else m->notices_head = n;
  m->notices_tail = n;
  pthread_cond_signal(&m->notify_ready);
  pthread_mutex_unlock(&m->notify_lock);
}

static void stop_notify_thread(mount_t *m) {
  pthread_mutex_lock(&m->notify_lock);
  m->notify_stop = 1;
  pthread_cond_signal(&m->notify_ready);
  pthread_mutex_unlock(&m->notify_lock);
  pthread_join(m->notify_thread, NULL);
  pthread_mutex_destroy(&m->notify_lock);
  pthread_cond_destroy(&m->notify_ready);
}

/* invalEntry(handle, parentIno, name): the kernel forgets the name (its next lookup asks us). */
static napi_value inval_entry(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  mount_t *m; CHECK(napi_get_value_external(env, argv[0], (void **)&m));
  char name[NAME_MAX + 1]; size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[2], name, sizeof name, &len));
  if (m->se != NULL && len > 0) queue_notice(m, (fuse_ino_t)num(env, argv[1]), name, len);
  return NULL;
}
/* invalInode(handle, ino): the kernel drops the inode's cached pages (a folder: its entries) and attributes. */
static napi_value inval_inode(napi_env env, napi_callback_info info) {
  size_t argc = 2; napi_value argv[2]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  mount_t *m; CHECK(napi_get_value_external(env, argv[0], (void **)&m));
  if (m->se != NULL) queue_notice(m, (fuse_ino_t)num(env, argv[1]), NULL, 0);
  return NULL;
}

static void finalize_mount(napi_env env, void *data, void *hint) { /* freed by unmount */ }

/* As root, mounts on the folder open as `folder_fd`: mount(2) on /proc/self/fd/N lands on exactly
 * the folder the caller opened and checked, whatever its path names by now (a symlink swapped in
 * by another user). The options mirror the ones libfuse makes of fuse-session.ts's KERNEL_OPTIONS
 * (ro, nosuid, nodev, default_permissions, fsname and subtype teleport). Writes "/dev/fd/N" of the
 * connection into `session_path`: fuse_session_mount then takes the connection as it is. */
static int mount_on_folder_fd(int folder_fd, char *session_path, size_t len) {
  int fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fuse_fd < 0) return -1;
  char target[64], data[160];
  snprintf(target, sizeof target, "/proc/self/fd/%d", folder_fd);
  snprintf(data, sizeof data, "fd=%d,rootmode=40000,user_id=%u,group_id=%u,default_permissions", fuse_fd,
           (unsigned)getuid(), (unsigned)getgid());
  if (mount("teleport", target, "fuse.teleport", MS_NOSUID | MS_NODEV | MS_RDONLY, data) != 0) {
    int err = errno; close(fuse_fd); errno = err;
    return -1;
  }
  snprintf(session_path, len, "/dev/fd/%d", fuse_fd);
  return 0;
}

/* Detaches a mount libfuse did not make (mounted_by_fd); by path, not following a symlink. */
static void detach_by_path(mount_t *m) {
  if (m->mounted_by_fd) umount2(m->mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW);
}

/* mount(mountpoint, optionsString, dispatcher, maxReadahead, maxWrite, flags, folderFd) -> handle;
 * folderFd (-1: none) is the mountpoint open, mounted on by it as root, else by path (fusermount3,
 * setuid, makes its own checks there). */
static napi_value mount_fs(napi_env env, napi_callback_info info) {
  size_t argc = 7; napi_value argv[7]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char mp[4096], opts[4096]; size_t l;
  CHECK(napi_get_value_string_utf8(env, argv[0], mp, sizeof mp, &l));
  CHECK(napi_get_value_string_utf8(env, argv[1], opts, sizeof opts, &l));
  mount_t *m = calloc(1, sizeof *m);
  m->max_readahead = (unsigned)num(env, argv[3]);
  m->max_write = (unsigned)num(env, argv[4]);
  m->flags = argc > 5 ? (int)num(env, argv[5]) : 0;
  m->mountpoint = strdup(mp);
  char *args_v[] = { "teleport", "-o", opts, NULL };
  struct fuse_args args = FUSE_ARGS_INIT(3, args_v);
  m->se = fuse_session_new(&args, &ops, sizeof ops, m);
  if (!m->se) { free(m->mountpoint); free(m); napi_throw_error(env, "EFUSE_OPTIONS", "fuse_session_new failed (bad options?)"); return NULL; }
  int folder_fd = argc > 6 ? (int)num(env, argv[6]) : -1;
  char session_path[64] = "";
  const char *mount_path = mp;
  /* EPERM: root without CAP_SYS_ADMIN (a container): libfuse goes through fusermount3 by path. */
  if (folder_fd >= 0 && geteuid() == 0 && mount_on_folder_fd(folder_fd, session_path, sizeof session_path) != 0 &&
      errno != EPERM) {
    fuse_session_destroy(m->se); free(m->mountpoint); free(m);
    napi_throw_error(env, "EFUSE_MOUNT", strerror(errno));
    return NULL;
  }
  if (session_path[0] != 0) {
    m->mounted_by_fd = 1;
    mount_path = session_path;
    /* Unmounted by the path it has now (a mountpoint cannot be renamed), not the one given. */
    char target[64], real[PATH_MAX];
    snprintf(target, sizeof target, "/proc/self/fd/%d", folder_fd);
    ssize_t n = readlink(target, real, sizeof real - 1);
    if (n > 0) { real[n] = 0; free(m->mountpoint); m->mountpoint = strdup(real); }
  }
  if (fuse_session_mount(m->se, mount_path) != 0) {
    if (m->mounted_by_fd) detach_by_path(m);
    fuse_session_destroy(m->se); free(m->mountpoint); free(m);
    napi_throw_error(env, "EFUSE_MOUNT", "fuse_session_mount failed (is /dev/fuse there, the mountpoint a folder, and may this user mount?)");
    return NULL;
  }
  napi_value name; napi_create_string_utf8(env, "teleport-fuse", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &m->tsfn));
  m->running = 1;
  pthread_mutex_init(&m->notify_lock, NULL);
  pthread_cond_init(&m->notify_ready, NULL);
  pthread_create(&m->notify_thread, NULL, notify_thread, m);
  pthread_create(&m->thread, NULL, loop_thread, m);
  napi_value ext; napi_create_external(env, m, finalize_mount, NULL, &ext);
  return ext;
}

/* unmount(handle): detaches the mount and closes the connection (readers holding a file open get
 * ENOTCONN); the loop's end then reaches JS as OP_DESTROY. `teleport umount` detaches lazily instead. */
static napi_value unmount_fs(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  mount_t *m; CHECK(napi_get_value_external(env, argv[0], (void **)&m));
  if (!m->running) return NULL;
  m->running = 0;
  /* No notice is sent from here on: the unmount closes the fd the notify thread writes to. */
  pthread_mutex_lock(&m->notify_lock);
  m->notify_stop = 1;
  pthread_mutex_unlock(&m->notify_lock);
  fuse_session_exit(m->se);
  fuse_session_unmount(m->se); /* umount2(MNT_DETACH) as root, else fusermount3 -u -z */
  detach_by_path(m);
  /* The loop thread sits in read(/dev/fuse): it returns (ENODEV) once the kernel lets the
   * superblock go, which a lazy unmount delays until the last open file is closed. JS keeps
   * answering meanwhile; the loop's end comes to the dispatcher as OP_DESTROY -> destroy(). */
  return NULL;
}

static napi_value destroy_fs(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  mount_t *m; CHECK(napi_get_value_external(env, argv[0], (void **)&m));
  if (m->se == NULL) return NULL;
  pthread_join(m->thread, NULL);
  /* The connection is gone: a notice still queued or under way fails at once (ENODEV). */
  stop_notify_thread(m);
  if (m->running) { m->running = 0; fuse_session_unmount(m->se); }
  /* An aborted connection (fusectl abort, kernel request timeout): libfuse's unmount sees POLLERR
   * on the fd and assumes the mount is gone, but it is still there ("Transport endpoint is not
   * connected"): detach it ourselves (root; otherwise `fusermount3 -u -z`). */
  if (geteuid() == 0) umount2(m->mountpoint, MNT_DETACH);
  fuse_session_destroy(m->se);
  m->se = NULL;
  free(m->mountpoint);
  return NULL;
}

#define EXPORT(name, fn) do { napi_value f; napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f); napi_set_named_property(env, exports, name, f); } while (0)
static napi_value init(napi_env env, napi_value exports) {
  EXPORT("mount", mount_fs); EXPORT("unmount", unmount_fs); EXPORT("destroy", destroy_fs);
  EXPORT("replyErr", reply_err); EXPORT("replyEntry", reply_entry); EXPORT("replyAttr", reply_attr);
  EXPORT("replyOpen", reply_open); EXPORT("replyBuf", reply_buf); EXPORT("replyIov", reply_iov); EXPORT("replyReadlink", reply_readlink);
  EXPORT("replyDir", reply_dir); EXPORT("invalEntry", inval_entry); EXPORT("invalInode", inval_inode);
  return exports;
}
NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
