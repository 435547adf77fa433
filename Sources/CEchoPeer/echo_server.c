// The C echo reference server (see CEchoPeer.h).
//
// Level-triggered on purpose: a connection with unread data is reported again on the next
// epoll_wait, so each event does one recv and no connection starves the others; with edge
// triggering every event would end in an extra recv returning EAGAIN, which in a ping-pong
// workload (one small message in flight) is pure overhead. Interest switches from EPOLLIN to
// EPOLLOUT only when a write is partial, with the unsent rest kept per connection
// (back-pressure: a peer that does not read cannot make the server buffer without bound).
#include "CEchoPeer.h"

#include <arpa/inet.h>
#include <sched.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_BUFFER_SIZE 65536
#define MAX_EVENTS 256

struct connection {
    int fd;
    char *pending;            // unsent bytes: pending[sent..length)
    size_t sent, length, capacity;
    struct connection *prev, *next;
};

struct server {
    int epoll_fd;
    int spare_fd;             // given back when out of descriptors, to refuse a connection
    struct connection *connections;
    long served;
    char buffer[READ_BUFFER_SIZE];
};

static char listener_tag, stop_tag;

static void connection_close(struct server *s, struct connection *c) {
    close(c->fd);
    if (c->prev) c->prev->next = c->next; else s->connections = c->next;
    if (c->next) c->next->prev = c->prev;
    free(c->pending);
    free(c);
}

static int watch(struct server *s, struct connection *c, uint32_t events) {
    struct epoll_event event = { .events = events, .data.ptr = c };
    return epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, c->fd, &event);
}

// Sends what the socket takes now: the byte count, or -1 on an error that closes the connection.
static ssize_t send_some(int fd, const char *data, size_t count) {
    size_t done = 0;
    while (done < count) {
        ssize_t sent = send(fd, data + done, count - done, MSG_NOSIGNAL);
        if (sent > 0) { done += (size_t)sent; continue; }
        if (sent < 0 && errno == EINTR) continue;
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        return -1;
    }
    return (ssize_t)done;
}

static void on_readable(struct server *s, struct connection *c) {
    ssize_t count;
    do { count = recv(c->fd, s->buffer, sizeof s->buffer, 0); } while (count < 0 && errno == EINTR);
    if (count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        connection_close(s, c);
        return;
    }
    if (count < 0) return;
    ssize_t sent = send_some(c->fd, s->buffer, (size_t)count);
    if (sent < 0) { connection_close(s, c); return; }
    size_t rest = (size_t)count - (size_t)sent;
    if (rest == 0) return;
    if (c->capacity < rest) {
        char *grown = realloc(c->pending, rest);
        if (!grown) { connection_close(s, c); return; }
        c->pending = grown;
        c->capacity = rest;
    }
    memcpy(c->pending, s->buffer + sent, rest);
    c->sent = 0;
    c->length = rest;
    if (watch(s, c, EPOLLOUT) < 0) connection_close(s, c);
}

static void on_writable(struct server *s, struct connection *c) {
    ssize_t sent = send_some(c->fd, c->pending + c->sent, c->length - c->sent);
    if (sent < 0) { connection_close(s, c); return; }
    c->sent += (size_t)sent;
    if (c->sent < c->length) return;
    c->sent = c->length = 0;
    if (watch(s, c, EPOLLIN) < 0) connection_close(s, c);
}

static void add_connection(struct server *s, int fd) {
    int one = 1;
    struct connection *c = calloc(1, sizeof *c);
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = c };
    if (!c || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0) {
        close(fd);
        free(c);
        return;
    }
    c->fd = fd;
    c->next = s->connections;
    if (s->connections) s->connections->prev = c;
    s->connections = c;
    s->served++;
}

static void accept_all(struct server *s, int listen_fd) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) { add_connection(s, fd); continue; }
        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
        if ((errno == EMFILE || errno == ENFILE) && s->spare_fd >= 0) {
            // Level-triggered: a pending connection would wake us for ever. Refuse it.
            close(s->spare_fd);
            fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) close(fd);
            s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            continue;
        }
        return;   // EAGAIN, or an error to retry on the next readiness report
    }
}

int c_echo_listen(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&address, sizeof address) < 0 || listen(fd, 1024) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int c_echo_port(int listen_fd) {
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    if (getsockname(listen_fd, (struct sockaddr *)&address, &length) < 0) return -1;
    return ntohs(address.sin_port);
}

long c_echo_serve(int listen_fd, int stop_fd) {
    struct server *s = calloc(1, sizeof *s);
    if (!s) return -1;
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct epoll_event listen_event = { .events = EPOLLIN, .data.ptr = &listener_tag };
    struct epoll_event stop_event = { .events = EPOLLIN, .data.ptr = &stop_tag };
    if (s->epoll_fd < 0 || epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, listen_fd, &listen_event) < 0 ||
        epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, stop_fd, &stop_event) < 0) {
        int saved = errno;
        if (s->epoll_fd >= 0) close(s->epoll_fd);
        if (s->spare_fd >= 0) close(s->spare_fd);
        free(s);
        errno = saved;
        return -1;
    }
    struct epoll_event events[MAX_EVENTS];
    int stopping = 0;
    while (!stopping) {
        int count = epoll_wait(s->epoll_fd, events, MAX_EVENTS, -1);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) break;
        for (int i = 0; i < count; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &stop_tag) { stopping = 1; continue; }
            if (tag == &listener_tag) { accept_all(s, listen_fd); continue; }
            struct connection *c = tag;
            if (events[i].events & (EPOLLERR | EPOLLHUP) && !(events[i].events & EPOLLIN)) {
                connection_close(s, c);
            } else if (c->length > 0) {
                if (events[i].events & EPOLLOUT) on_writable(s, c);
            } else if (events[i].events & EPOLLIN) {
                on_readable(s, c);
            }
        }
    }
    while (s->connections) connection_close(s, s->connections);
    long served = s->served;
    close(s->epoll_fd);
    if (s->spare_fd >= 0) close(s->spare_fd);
    free(s);
    return served;
}

int bench_pin_thread(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}
