/*
 * c_epoll_echo: the "near-physical-limit" reference peer for scripts/bench-echo.
 *
 *   c_epoll_echo PORT
 *
 * A single-threaded, non-blocking TCP echo server on 127.0.0.1:PORT built directly on epoll:
 * no framework, no threads, one shared read buffer. Whatever it reads from a connection it
 * writes straight back. A write the kernel only partly takes leaves the rest in a buffer of
 * that connection; the connection then stops being read (back-pressure: a peer that does not
 * read cannot make us buffer without bound) and waits for EPOLLOUT until the buffer is
 * drained, after which reading resumes. EOF or any error closes the connection.
 * SIGTERM or SIGINT (delivered through a signalfd, so there is no race with epoll_wait)
 * closes everything and exits 0.
 *
 * Level-triggered, not edge-triggered, on purpose:
 *  - With LT a connection that still has unread data is simply reported again on the next
 *    epoll_wait, so each readiness event does one recv and no connection can starve the
 *    others. With ET every event would have to drain the socket until EAGAIN, and in a
 *    ping-pong workload (one small message in flight per connection) that final recv is
 *    almost always an extra syscall that returns EAGAIN: LT does less work here.
 *  - Interest is switched between EPOLLIN and EPOLLOUT with EPOLL_CTL_MOD only when a write
 *    is partial, which never happens with small messages, so LT costs no extra epoll_ctl
 *    calls on the fast path.
 *  - The listening socket is drained with accept4 until EAGAIN anyway (cheap, and it keeps a
 *    burst of connects from taking one epoll_wait each).
 *
 * Build: cc -O2 -Wall -Wextra -o c_epoll_echo c_epoll_echo.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BACKLOG 1024
#define READ_BUFFER_SIZE 65536
#define MAX_EVENTS 256

/* Tags stored in epoll_event.data.ptr for the two non-connection descriptors. Connections
 * store a pointer to their struct conn, which can never equal the address of these objects. */
static char listener_tag;
static char signal_tag;

struct conn {
    int fd;
    /* Bytes read but not yet written back: pending[sent..len). Empty when len == 0. */
    char *pending;
    size_t sent;
    size_t len;
    size_t cap;
    /* All open connections, so shutdown can close them. */
    struct conn *prev;
    struct conn *next;
};

static int epfd = -1;
static int spare_fd = -1; /* kept open so EMFILE can be handled; see accept_all() */
static struct conn *conns;
static char read_buffer[READ_BUFFER_SIZE];

__attribute__((noreturn)) static void die(const char *what) {
    perror(what);
    exit(1);
}

static void conn_close(struct conn *c) {
    /* close() also removes the descriptor from the epoll set (it is not shared). */
    close(c->fd);
    if (c->prev) c->prev->next = c->next; else conns = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->pending);
    free(c);
}

static int set_interest(struct conn *c, uint32_t events) {
    struct epoll_event ev = { .events = events, .data.ptr = c };
    return epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes as much of data[0..n) as the socket takes now. Returns bytes written (possibly 0
 * when the socket is full), or -1 on an error that should close the connection. */
static ssize_t write_some(int fd, const char *data, size_t n) {
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, data + done, n - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    return (ssize_t)done;
}

/* Keeps data[0..n) to send once the socket is writable, and switches the connection from
 * reading to waiting for EPOLLOUT. Returns -1 if the connection should be closed. */
static int keep_pending(struct conn *c, const char *data, size_t n) {
    if (c->cap < n) {
        char *p = realloc(c->pending, n);
        if (!p) return -1;
        c->pending = p;
        c->cap = n;
    }
    memcpy(c->pending, data, n);
    c->sent = 0;
    c->len = n;
    return set_interest(c, EPOLLOUT);
}

static void on_readable(struct conn *c) {
    ssize_t n;
    do {
        n = recv(c->fd, read_buffer, sizeof read_buffer, 0);
    } while (n < 0 && errno == EINTR);

    if (n == 0) { conn_close(c); return; } /* EOF */
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return; /* spurious wake-up */
        conn_close(c);
        return;
    }

    ssize_t w = write_some(c->fd, read_buffer, (size_t)n);
    if (w < 0) { conn_close(c); return; }
    if ((size_t)w < (size_t)n && keep_pending(c, read_buffer + w, (size_t)n - (size_t)w) < 0)
        conn_close(c);
}

static void on_writable(struct conn *c) {
    ssize_t w = write_some(c->fd, c->pending + c->sent, c->len - c->sent);
    if (w < 0) { conn_close(c); return; }
    c->sent += (size_t)w;
    if (c->sent < c->len) return; /* still more; stay on EPOLLOUT */

    c->sent = c->len = 0;
    /* Keep the buffer for the next partial write unless it grew large. */
    if (c->cap > READ_BUFFER_SIZE) {
        free(c->pending);
        c->pending = NULL;
        c->cap = 0;
    }
    if (set_interest(c, EPOLLIN) < 0) conn_close(c);
}

static void add_connection(int fd) {
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        close(fd);
        return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        free(c);
        return;
    }
    c->next = conns;
    if (conns) conns->prev = c;
    conns = c;
}

static void accept_all(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            add_connection(fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
            continue;
        case EMFILE:
        case ENFILE:
            /* Out of descriptors. With level triggering the pending connection would wake
             * us forever, so give the spare descriptor back, accept the connection and close
             * it at once (the client sees a reset instead of hanging), then take the spare
             * again. */
            if (spare_fd >= 0) {
                close(spare_fd);
                fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0) close(fd);
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                fprintf(stderr, "c_epoll_echo: out of file descriptors, refused a connection\n");
                continue;
            }
            return;
        default:
            perror("accept4");
            return;
        }
    }
}

static int parse_port(const char *s) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < 0 || v > 65535) return -1;
    return (int)v;
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int port = parse_port(argv[1]);
    if (port < 0) {
        fprintf(stderr, "c_epoll_echo: invalid port '%s'\n", argv[1]);
        return 2;
    }

    raise_fd_limit();
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    /* SIGTERM/SIGINT arrive as readable events on a signalfd. SIGPIPE cannot happen (every
     * send uses MSG_NOSIGNAL) but is ignored as well for safety. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) die("signalfd");
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) die("socket");
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) die("SO_REUSEADDR");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(lfd, BACKLOG) < 0) die("listen");

    socklen_t addr_len = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &addr_len) < 0) die("getsockname");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listener_tag };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) die("epoll_ctl listener");
    ev.data.ptr = &signal_tag;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev) < 0) die("epoll_ctl signalfd");

    fprintf(stderr, "c_epoll_echo: listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));

    struct epoll_event events[MAX_EVENTS];
    int stop_signal = 0;
    while (!stop_signal) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        /* Each registered descriptor appears at most once per epoll_wait, so a connection
         * closed while handling one event cannot show up later in the same batch. */
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            uint32_t e = events[i].events;
            if (tag == &listener_tag) {
                accept_all(lfd);
            } else if (tag == &signal_tag) {
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                    stop_signal = (int)si.ssi_signo;
            } else {
                struct conn *c = tag;
                /* A connection waits for exactly one of EPOLLIN or EPOLLOUT. EPOLLHUP and
                 * EPOLLERR are always reported; the recv or send they lead to fails or
                 * returns EOF, which closes the connection. */
                if (c->len > 0) {
                    if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(c);
                } else {
                    if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
                }
            }
        }
    }

    size_t closed = 0;
    while (conns) {
        conn_close(conns);
        closed++;
    }
    close(lfd);
    close(sfd);
    close(epfd);
    if (spare_fd >= 0) close(spare_fd);
    fprintf(stderr, "c_epoll_echo: %s, closed %zu connection(s), exiting\n",
            strsignal(stop_signal), closed);
    return 0;
}
