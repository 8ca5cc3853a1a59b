/*
 * teleport's Linux I/O primitives, as a small N-API addon: the system calls Node's fs and net
 * modules do not expose. Every function but the sender's is synchronous and does one system call
 * (or a loop of one, for short counts); the sender runs a thread of its own (see sender_t).
 * Policy, fallbacks and buffering live in src/platform/ in TypeScript.
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
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "at.h"
#include "cdc.h"
#include "udp.h"
#include "fail.h"
#include "beneath.h"
#include "metadata.h"

#define MAX_ARGS 5

napi_value teleport_fail(napi_env env, int err, const char *what) {
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
      return teleport_fail(env, errno, "copy_file_range");
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
  if (ioctl((int)a[2], FICLONERANGE, &range) < 0) return teleport_fail(env, errno, "FICLONERANGE");
  return NULL;
}

/* preallocate(fd, offset, length): reserves the blocks (fallocate, keeping the file's size). */
static napi_value preallocate_js(napi_env env, napi_callback_info info) {
  int64_t a[3];
  if (!int_args(env, info, 3, a)) return NULL;
  if (fallocate((int)a[0], FALLOC_FL_KEEP_SIZE, a[1], a[2]) < 0) return teleport_fail(env, errno, "fallocate");
  return NULL;
}

/* punchHole(fd, offset, length): deallocates the range, which then reads as zeros. */
static napi_value punch_hole_js(napi_env env, napi_callback_info info) {
  int64_t a[3];
  if (!int_args(env, info, 3, a)) return NULL;
  if (fallocate((int)a[0], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a[1], a[2]) < 0)
    return teleport_fail(env, errno, "fallocate(PUNCH_HOLE)");
  return NULL;
}

/* flock(fd, operation): LOCK_SH, LOCK_EX or LOCK_UN, with LOCK_NB to not wait; false if the lock
 * is held elsewhere (EWOULDBLOCK with LOCK_NB), true once taken or released. */
static napi_value flock_js(napi_env env, napi_callback_info info) {
  int64_t a[2];
  if (!int_args(env, info, 2, a)) return NULL;
  int res;
  do res = flock((int)a[0], (int)a[1]); while (res < 0 && errno == EINTR);
  if (res < 0 && errno != EWOULDBLOCK) return teleport_fail(env, errno, "flock");
  napi_value out;
  napi_get_boolean(env, res == 0, &out);
  return out;
}

/* seek(fd, offset, whence): lseek with SEEK_DATA (3) or SEEK_HOLE (4); -1 past the last data. */
static napi_value seek_js(napi_env env, napi_callback_info info) {
  int64_t a[3];
  if (!int_args(env, info, 3, a)) return NULL;
  if (a[2] != SEEK_DATA && a[2] != SEEK_HOLE) return usage(env, "whence must be SEEK_DATA or SEEK_HOLE");
  off_t at = lseek((int)a[0], a[1], (int)a[2]);
  if (at < 0) {
    if (errno == ENXIO) return number(env, -1);
    return teleport_fail(env, errno, "lseek");
  }
  return number(env, at);
}

/* fadvise(fd, offset, length, advice). */
static napi_value fadvise_js(napi_env env, napi_callback_info info) {
  int64_t a[4];
  if (!int_args(env, info, 4, a)) return NULL;
  int err = posix_fadvise((int)a[0], a[1], a[2], (int)a[3]);
  if (err != 0) return teleport_fail(env, err, "posix_fadvise");
  return NULL;
}

/*
 * A socket's sender: a thread of its own that writes CHUNK_DATA frames to the socket, each
 * frame's header with send() and its data with sendfile() straight from the page cache, so no
 * chunk byte is copied through user space. A full socket buffer blocks this thread in poll(),
 * never Node's event loop nor its threadpool (whose four threads the host's reads need).
 *
 * The thread writes through its own duplicate of the socket's descriptor: Node may close its
 * own at any time (a peer gone, a session dropped), and a number closed under a running
 * sendfile could be reused by the next file opened. closeSender() wakes the thread, which
 * stops at once and closes the duplicate; only then does the connection end.
 *
 * One job at a time, handed over under the lock; its result goes back to JavaScript through a
 * threadsafe function, on the event loop.
 */
#define SENDER_STACK_BYTES (256 * 1024)

typedef struct job {
  napi_ref callback;
  napi_ref headers_ref; /* keeps the headers' Buffer alive while the thread reads it */
  const uint8_t *headers;
  size_t header_bytes; /* per frame */
  size_t count;
  int64_t *plan; /* count triples: file descriptor, offset, length */
  int error;     /* errno, or 0 */
  int64_t sent;
} job_t;

typedef struct {
  int fd;   /* the thread's duplicate of the socket's descriptor; the thread closes it */
  int wake; /* an eventfd: closeSender() wakes a thread waiting in poll(); the thread closes it */
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int closing;
  job_t *job; /* the job handed over, until the thread is done with it */
  napi_threadsafe_function done;
} sender_t;

/* Waits until the socket takes more bytes; ECANCELED once the sender is closed. */
static int wait_writable(sender_t *s) {
  struct pollfd fds[2] = {{.fd = s->fd, .events = POLLOUT}, {.fd = s->wake, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) >= 0) return fds[1].revents != 0 ? ECANCELED : 0;
    if (errno != EINTR) return errno;
  }
}

static void send_header(sender_t *s, job_t *job, const uint8_t *header) {
  size_t done = 0;
  while (done < job->header_bytes && job->error == 0) {
    /* MSG_MORE: the header rides in the same segment as the start of its data. */
    ssize_t n = send(s->fd, header + done, job->header_bytes - done, MSG_MORE | MSG_NOSIGNAL);
    if (n >= 0) {
      done += (size_t)n;
      job->sent += n;
    } else if (errno == EAGAIN) {
      job->error = wait_writable(s);
    } else if (errno != EINTR) {
      job->error = errno;
    }
  }
}

static void send_data(sender_t *s, job_t *job, int file, off_t offset, int64_t length) {
  while (length > 0 && job->error == 0) {
    ssize_t n = sendfile(s->fd, file, &offset, (size_t)length);
    if (n > 0) {
      length -= n;
      job->sent += n;
    } else if (n == 0) {
      job->error = ENODATA; /* the file is shorter than when it was listed */
    } else if (errno == EAGAIN) {
      job->error = wait_writable(s);
    } else if (errno != EINTR) {
      job->error = errno;
    }
  }
}

static void run_job(sender_t *s, job_t *job) {
  for (size_t i = 0; i < job->count && job->error == 0; i++) {
    send_header(s, job, job->headers + i * job->header_bytes);
    const int64_t *step = job->plan + 3 * i;
    send_data(s, job, (int)step[0], (off_t)step[1], step[2]);
  }
}

static void *sender_main(void *arg) {
  sender_t *s = arg;
  pthread_mutex_lock(&s->lock);
  for (;;) {
    while (s->job == NULL && !s->closing) pthread_cond_wait(&s->changed, &s->lock);
    job_t *job = s->job;
    if (job == NULL) break;
    int closing = s->closing;
    pthread_mutex_unlock(&s->lock);
    if (closing) job->error = ECANCELED;
    else run_job(s, job);
    pthread_mutex_lock(&s->lock);
    s->job = NULL;
    napi_call_threadsafe_function(s->done, job, napi_tsfn_blocking);
  }
  pthread_mutex_unlock(&s->lock);
  /* Closing is set for good, so nothing writes to the eventfd any more: both go now, not when
   * the collector gets to the sender. */
  close(s->fd);
  close(s->wake);
  napi_release_threadsafe_function(s->done, napi_tsfn_release);
  return NULL;
}

/* Lets go of a job and what it holds (its references only while JavaScript still runs). */
static void free_job(napi_env env, job_t *job) {
  if (env != NULL) {
    napi_delete_reference(env, job->callback);
    napi_delete_reference(env, job->headers_ref);
  }
  free(job->plan);
  free(job);
}

/* On the event loop: calls the job's callback with (error or null, bytes sent). */
static void deliver(napi_env env, napi_value unused, void *context, void *data) {
  job_t *job = data;
  if (env != NULL) {
    napi_value callback, global, argv[2];
    if (job->error == 0) {
      napi_get_null(env, &argv[0]);
    } else {
      const char *name = strerrorname_np(job->error);
      napi_value code, message;
      napi_create_string_utf8(env, name != NULL ? name : "EIO", NAPI_AUTO_LENGTH, &code);
      napi_create_string_utf8(env, strerror(job->error), NAPI_AUTO_LENGTH, &message);
      napi_create_error(env, code, message, &argv[0]);
      napi_set_named_property(env, argv[0], "code", code);
    }
    argv[1] = number(env, job->sent);
    napi_get_reference_value(env, job->callback, &callback);
    napi_get_global(env, &global);
    napi_call_function(env, global, callback, 2, argv, NULL);
  }
  free_job(env, job);
}

static void stop_sender(sender_t *s) {
  pthread_mutex_lock(&s->lock);
  if (!s->closing) {
    s->closing = 1;
    uint64_t one = 1;
    if (write(s->wake, &one, sizeof one) < 0) { /* the eventfd cannot be full: never happens */
    }
    pthread_cond_signal(&s->changed);
  }
  pthread_mutex_unlock(&s->lock);
}

/* Runs when JavaScript no longer holds the sender: stops its thread and frees it. */
static void free_sender(napi_env env, void *data, void *hint) {
  sender_t *s = data;
  stop_sender(s);
  pthread_join(s->thread, NULL);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->changed);
  free(s);
}

/* openSender(socketFd): a sender writing to the socket (see sender_t). */
static napi_value open_sender_js(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (!int_args(env, info, 1, &fd)) return NULL;
  sender_t *s = calloc(1, sizeof *s);
  if (s == NULL) return teleport_fail(env, ENOMEM, "openSender");
  s->fd = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
  if (s->fd < 0) {
    int err = errno;
    free(s);
    return teleport_fail(env, err, "dup");
  }
  s->wake = eventfd(0, EFD_CLOEXEC);
  napi_value name;
  napi_create_string_utf8(env, "teleport-sender", NAPI_AUTO_LENGTH, &name);
  if (s->wake < 0 ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, NULL, deliver, &s->done) != napi_ok) {
    int err = s->wake < 0 ? errno : ENOMEM;
    if (s->wake >= 0) close(s->wake);
    close(s->fd);
    free(s);
    return teleport_fail(env, err, "openSender");
  }
  napi_unref_threadsafe_function(env, s->done); /* the socket keeps the process alive, not this */
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->changed, NULL);
  /* A sender's thread only loops over send, sendfile and poll: a small stack, as a host may run
   * one per connection (up to 4,096) and glibc's default reserves 8 MiB each. */
  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  pthread_attr_setstacksize(&attributes, SENDER_STACK_BYTES);
  int err = pthread_create(&s->thread, &attributes, sender_main, s);
  pthread_attr_destroy(&attributes);
  if (err != 0) {
    napi_release_threadsafe_function(s->done, napi_tsfn_abort);
    close(s->wake);
    close(s->fd);
    free(s);
    return teleport_fail(env, err, "pthread_create");
  }
  napi_value result;
  napi_create_external(env, s, free_sender, NULL, &result);
  return result;
}

/* Reads `count` arguments into `argv`, the first a sender; NULL (with a TypeError thrown) if not. */
static sender_t *sender_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = count;
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
    usage(env, "too few arguments");
    return NULL;
  }
  if (napi_get_value_external(env, argv[0], &data) != napi_ok || data == NULL) usage(env, "expected a sender");
  return data;
}

/*
 * senderSend(sender, headers, plan, callback): sends plan.length / 3 frames, frame i being
 * headers' i-th equal slice then plan[3i+1 .. +2] (offset, length) of file plan[3i]; calls
 * callback(error, bytesSent) when done. The sender must be idle; the files must stay open.
 */
static napi_value sender_send_js(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  sender_t *s = sender_args(env, info, 4, argv);
  if (s == NULL) return NULL;
  void *headers;
  size_t header_length, plan_length;
  napi_typedarray_type type;
  void *plan;
  napi_valuetype callback_type;
  if (napi_get_buffer_info(env, argv[1], &headers, &header_length) != napi_ok ||
      napi_get_typedarray_info(env, argv[2], &type, &plan_length, &plan, NULL, NULL) != napi_ok ||
      type != napi_float64_array || plan_length % 3 != 0 || plan_length == 0 ||
      header_length % (plan_length / 3) != 0 || napi_typeof(env, argv[3], &callback_type) != napi_ok ||
      callback_type != napi_function)
    return usage(env, "expected (sender, headers, plan, callback)");
  job_t *job = calloc(1, sizeof *job);
  int64_t *steps = malloc(plan_length * sizeof *steps);
  if (job == NULL || steps == NULL) {
    free(job);
    free(steps);
    return teleport_fail(env, ENOMEM, "senderSend");
  }
  for (size_t i = 0; i < plan_length; i++) steps[i] = (int64_t)((double *)plan)[i];
  job->count = plan_length / 3;
  job->plan = steps;
  job->headers = headers;
  job->header_bytes = header_length / job->count;
  napi_create_reference(env, argv[1], 1, &job->headers_ref);
  napi_create_reference(env, argv[3], 1, &job->callback);
  pthread_mutex_lock(&s->lock);
  int busy = s->job != NULL, closing = s->closing;
  if (!busy && !closing) {
    s->job = job;
    pthread_cond_signal(&s->changed);
  }
  pthread_mutex_unlock(&s->lock);
  if (busy || closing) {
    free_job(env, job);
    return teleport_fail(env, busy ? EBUSY : ECANCELED, "senderSend");
  }
  return NULL;
}

/* closeSender(sender): stops the sender (a job under way ends with ECANCELED). Idempotent. */
static napi_value close_sender_js(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  sender_t *s = sender_args(env, info, 1, argv);
  if (s != NULL) stop_sender(s);
  return NULL;
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
    return teleport_fail(env, errno, "TCP_CONGESTION");
  return NULL;
}

/* tcpCongestion(fd): the socket's congestion control. */
static napi_value tcp_congestion_js(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (!int_args(env, info, 1, &fd)) return NULL;
  char name[32] = {0};
  socklen_t length = sizeof name - 1;
  if (getsockopt((int)fd, IPPROTO_TCP, TCP_CONGESTION, name, &length) < 0) return teleport_fail(env, errno, "TCP_CONGESTION");
  napi_value result;
  napi_create_string_utf8(env, name, strnlen(name, sizeof name), &result);
  return result;
}

/* setTcpNotSentLowat(fd, bytes): unsent bytes the kernel holds before the socket stops being writable. */
/*
 * dupFd(fd): a close-on-exec duplicate of a descriptor, for another thread to own (the host
 * hands each of its threads its own descriptor of the listening socket, which lives until the
 * last is closed).
 */
static napi_value dup_fd_js(napi_env env, napi_callback_info info) {
  int64_t fd;
  if (!int_args(env, info, 1, &fd)) return NULL;
  int copy = fcntl((int)fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return teleport_fail(env, errno, "dup");
  napi_value result;
  napi_create_int32(env, copy, &result);
  return result;
}

static napi_value set_tcp_notsent_lowat_js(napi_env env, napi_callback_info info) {
  int64_t a[2];
  if (!int_args(env, info, 2, a)) return NULL;
  int bytes = (int)a[1];
  if (setsockopt((int)a[0], IPPROTO_TCP, TCP_NOTSENT_LOWAT, &bytes, sizeof bytes) < 0)
    return teleport_fail(env, errno, "TCP_NOTSENT_LOWAT");
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
  if (getsockopt((int)fd, IPPROTO_TCP, TCP_INFO, &ti, &length) < 0) return teleport_fail(env, errno, "TCP_INFO");
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

#define EXPORT(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      EXPORT("copyFileRange", copy_file_range_js),
      EXPORT("cloneRange", clone_range_js),
      EXPORT("preallocate", preallocate_js),
      EXPORT("punchHole", punch_hole_js),
      EXPORT("flock", flock_js),
      EXPORT("seek", seek_js),
      EXPORT("fadvise", fadvise_js),
      EXPORT("openSender", open_sender_js),
      EXPORT("senderSend", sender_send_js),
      EXPORT("closeSender", close_sender_js),
      EXPORT("setTcpCongestion", set_tcp_congestion_js),
      EXPORT("tcpCongestion", tcp_congestion_js),
      EXPORT("setTcpNotSentLowat", set_tcp_notsent_lowat_js),
      EXPORT("dupFd", dup_fd_js),
      EXPORT("tcpInfo", tcp_info_js),
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  teleport_define_at(env, exports);
  teleport_define_beneath(env, exports);
  teleport_define_metadata(env, exports);
  teleport_define_cdc(env, exports);
  teleport_define_udp(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
