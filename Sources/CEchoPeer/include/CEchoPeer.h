// A minimal single-threaded epoll TCP echo server in C: the near-physical-limit reference
// that Sprout's echo benchmarks are measured against. Used in-process by sprout-bench and as
// a standalone program by scripts/bench-echo (Benchmarks/peers/c_epoll_echo_main.c).
#ifndef C_ECHO_PEER_H
#define C_ECHO_PEER_H

#ifdef __cplusplus
extern "C" {
#endif

/// Creates a non-blocking listening socket on 127.0.0.1:`port` (0 picks a free port) with
/// SO_REUSEADDR and a backlog of 1024. Returns the descriptor, or -1 with errno set.
int c_echo_listen(int port);

/// The port a listening socket is bound to, or -1.
int c_echo_port(int listen_fd);

/// Serves echo connections accepted on `listen_fd` until `stop_fd` (any descriptor, e.g. an
/// eventfd or a signalfd) becomes readable; then closes every connection (not `listen_fd` or
/// `stop_fd`) and returns the number of connections it served, or -1 with errno set if the
/// server could not start.
long c_echo_serve(int listen_fd, int stop_fd);

/// Pins the calling thread (only) to `cpu`; 0 or -1 with errno set.
int bench_pin_thread(int cpu);

#ifdef __cplusplus
}
#endif

#endif
