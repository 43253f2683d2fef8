/* LD_PRELOAD for kernels without SCTP (socket(..., IPPROTO_SCTP) fails with
 * EPROTONOSUPPORT): osmo-msc exits when it cannot open its SGs listener, an SCTP socket.
 * Here an SCTP socket becomes a TCP one; libsctp's sctp_bindx (SCTP_SOCKOPT_BINDX_ADD) becomes
 * bind() to the first address and sctp_connectx (SCTP_SOCKOPT_CONNECTX*) connect(); other
 * SCTP options are accepted and ignored, SCTP getsockopt answers zeros. SMPP is plain TCP and
 * untouched. Built by tests/interop/osmo.py when the kernel lacks SCTP. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define LEVEL_SCTP 132
#define OPT_BINDX_ADD 100
#define OPT_CONNECTX_OLD 107
#define OPT_CONNECTX 110
#define OPT_CONNECTX3 111

static socklen_t addr_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int socket(int domain, int type, int protocol)
{
	static int (*next)(int, int, int);
	if (!next)
		next = dlsym(RTLD_NEXT, "socket");
	if (protocol == IPPROTO_SCTP && (domain == AF_INET || domain == AF_INET6))
		return next(domain, SOCK_STREAM | (type & (SOCK_NONBLOCK | SOCK_CLOEXEC)), IPPROTO_TCP);
	return next(domain, type, protocol);
}

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	static int (*next)(int, int, int, const void *, socklen_t);
	if (!next)
		next = dlsym(RTLD_NEXT, "setsockopt");
	if (level != LEVEL_SCTP)
		return next(fd, level, name, val, len);
	const struct sockaddr *sa = val;
	if (name == OPT_BINDX_ADD)
		return bind(fd, sa, addr_len(sa));
	if (name == OPT_CONNECTX || name == OPT_CONNECTX_OLD || name == OPT_CONNECTX3)
		return connect(fd, sa, addr_len(sa));
	return 0;
}

int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	static int (*next)(int, int, int, void *, socklen_t *);
	if (!next)
		next = dlsym(RTLD_NEXT, "getsockopt");
	if (level != LEVEL_SCTP)
		return next(fd, level, name, val, len);
	if (val && len)
		memset(val, 0, *len);
	return 0;
}
