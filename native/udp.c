/*
 * Sending a datagram from a UDP socket this process holds but JavaScript cannot reach: the QUIC
 * library's (quinn, in Rust) owns its socket and offers no way to send a raw datagram, yet a hole
 * punch must leave from that very socket, so that the NAT mapping it opens is the one QUIC uses.
 * The socket is found by its local port among this process's descriptors (SO_TYPE, getsockname);
 * sendto on a socket another thread also uses is safe, and the datagram is one QUIC ignores.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "fail.h"
#include "udp.h"

/* The local port of `fd` if it is an IPv4 or IPv6 UDP socket, else 0. */
static int udp_local_port(int fd, int *family) {
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) return 0;
  int type = 0;
  socklen_t length = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0 || type != SOCK_DGRAM) return 0;
  struct sockaddr_storage address;
  length = sizeof address;
  if (getsockname(fd, (struct sockaddr *)&address, &length) < 0) return 0;
  *family = address.ss_family;
  if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
  return 0;
}

/* Calls `found(fd, port, family, context)` for each UDP socket; stops when it returns nonzero. */
static int each_udp_socket(int (*found)(int, int, int, void *), void *context) {
  DIR *fds = opendir("/proc/self/fd");
  if (fds == NULL) return -errno;
  int self = dirfd(fds), stop = 0;
  struct dirent *entry;
  while (!stop && (entry = readdir(fds)) != NULL) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    int fd = atoi(entry->d_name), family = 0;
    if (fd == self) continue;
    int port = udp_local_port(fd, &family);
    if (port != 0) stop = found(fd, port, family, context);
  }
  closedir(fds);
  return stop;
}

typedef struct {
  napi_env env;
  napi_value array;
  uint32_t count;
} port_list_t;

static int add_port(int fd, int port, int family, void *context) {
  port_list_t *list = context;
  napi_value value;
  napi_create_int32(list->env, port, &value);
  napi_set_element(list->env, list->array, list->count++, value);
  return 0;
}

/* udpLocalPorts(): the local port of each UDP socket this process holds (a port once per socket). */
static napi_value udp_local_ports_js(napi_env env, napi_callback_info info) {
  port_list_t list = {env, NULL, 0};
  napi_create_array(env, &list.array);
  int result = each_udp_socket(add_port, &list);
  if (result < 0) return teleport_fail(env, -result, "/proc/self/fd");
  return list.array;
}

typedef struct {
  int port;
  int fd;
  int family;
} port_match_t;

static int match_port(int fd, int port, int family, void *context) {
  port_match_t *match = context;
  if (port != match->port) return 0;
  match->fd = fd;
  match->family = family;
  return 1;
}

/*
 * udpSendFrom(localPort, ipv4, port, data): sends `data` to ipv4:port from this process's UDP
 * socket bound to localPort (an IPv6 socket sends to the IPv4-mapped address); the bytes sent.
 * Throws ENOENT when no such socket is open, EINVAL for an address that is not dotted IPv4.
 */
static napi_value udp_send_from_js(napi_env env, napi_callback_info info) {
  napi_value argv[TELEPORT_MAX_ARGS];
  int local_port, port;
  char ip[INET_ADDRSTRLEN];
  if (!teleport_args(env, info, 4, argv) || !teleport_int(env, argv[0], &local_port) ||
      !teleport_string(env, argv[1], ip, sizeof ip) || !teleport_int(env, argv[2], &port))
    return NULL;
  void *data;
  size_t length;
  if (napi_get_buffer_info(env, argv[3], &data, &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "data must be a Buffer");
    return NULL;
  }
  if (local_port <= 0 || local_port > 65535 || port <= 0 || port > 65535) return teleport_fail(env, EINVAL, "port");
  struct in_addr ipv4;
  if (inet_pton(AF_INET, ip, &ipv4) != 1) return teleport_fail(env, EINVAL, "address");
  port_match_t match = {local_port, -1, 0};
  int result = each_udp_socket(match_port, &match);
  if (result < 0) return teleport_fail(env, -result, "/proc/self/fd");
  if (match.fd < 0) return teleport_fail(env, ENOENT, "no UDP socket on that port");
  ssize_t sent;
  if (match.family == AF_INET6) {
    struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    to.sin6_addr.s6_addr[10] = 0xff;
    to.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&to.sin6_addr.s6_addr[12], &ipv4, 4);
    sent = sendto(match.fd, data, length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
  } else {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = ipv4};
    sent = sendto(match.fd, data, length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
  }
  if (sent < 0) return teleport_fail(env, errno, "sendto");
  return teleport_number(env, (double)sent);
}

void teleport_define_udp(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"udpLocalPorts", NULL, udp_local_ports_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpSendFrom", NULL, udp_send_from_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
}
