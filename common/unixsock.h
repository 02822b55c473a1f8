/*
 * A connected Unix socket, for the clients of noxsd, xenstored and the
 * xenbus device's socket form (libnoxs, compat-xs).
 */
#ifndef NOXS_COMMON_UNIXSOCK_H
#define NOXS_COMMON_UNIXSOCK_H

/*
 * A socket of type (SOCK_STREAM or SOCK_SEQPACKET, with SOCK_NONBLOCK if
 * wanted; SOCK_CLOEXEC is always added) connected to path. The fd, or
 * -1 with errno (ENAMETOOLONG for a path sun_path cannot hold).
 */
int unix_connect(const char *path, int type);

#endif /* NOXS_COMMON_UNIXSOCK_H */
