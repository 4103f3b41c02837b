// A host whose default congestion control is LH_DEFAULT_CC (e.g. cubic), for every tool alike:
// preloaded (LD_PRELOAD), it sets TCP_CONGESTION on every TCP socket a program makes through
// libc's socket(). Inside a network namespace the default cannot be changed by sysctl, and the
// namespaces' default here is BBR. A program that chooses its own algorithm afterwards (iperf3
// -C, longhaul's --congestion auto) still can. Built by bench/wan.mjs with `cc -shared -fPIC`.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int socket(int domain, int type, int protocol) {
  static int (*real)(int, int, int);
  if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
  int fd = real(domain, type, protocol);
  const char *cc = getenv("LH_DEFAULT_CC");
  if (fd >= 0 && cc && *cc && (domain == AF_INET || domain == AF_INET6) && (type & 0xf) == SOCK_STREAM)
    setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc));
  return fd;
}
