#include "sprout_tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

// The BIO's data: the descriptor and the errno of its last failed read or write.
typedef struct {
    int fd;
    int last_errno;
    int short_read;  // the last read returned less than asked (or EAGAIN): the socket is drained
    int eof;         // the peer's TCP end of stream has been read
} socket_state;

static int bio_write(BIO *bio, const char *data, size_t length, size_t *written) {
    socket_state *state = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    for (;;) {
        ssize_t count = send(state->fd, data, length, MSG_NOSIGNAL);
        if (count >= 0) {
            *written = (size_t)count;
            return 1;
        }
        if (errno == EINTR) continue;
        state->last_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
        return 0;
    }
}

static int bio_read(BIO *bio, char *data, size_t length, size_t *read) {
    socket_state *state = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    for (;;) {
        ssize_t count = recv(state->fd, data, length, 0);
        if (count > 0) {
            *read = (size_t)count;
            state->short_read = (size_t)count < length;
            return 1;
        }
        if (count == 0) {
            state->last_errno = 0;
            state->eof = 1;
            return 0;
        }
        if (errno == EINTR) continue;
        state->last_errno = errno;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            state->short_read = 1;
            BIO_set_retry_read(bio);
        }
        return 0;
    }
}

static long bio_ctrl(BIO *bio, int command, long number, void *pointer) {
    (void)bio;
    (void)number;
    (void)pointer;
    return command == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *bio) {
    socket_state *state = OPENSSL_zalloc(sizeof(socket_state));
    if (state == NULL) return 0;
    state->fd = -1;
    BIO_set_data(bio, state);
    BIO_set_init(bio, 1);
    return 1;
}

static int bio_destroy(BIO *bio) {
    OPENSSL_free(BIO_get_data(bio));
    BIO_set_data(bio, NULL);
    return 1;
}

static BIO_METHOD *socket_method;
static pthread_once_t socket_method_once = PTHREAD_ONCE_INIT;

static void make_socket_method(void) {
    BIO_METHOD *method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "sprout socket");
    BIO_meth_set_write_ex(method, bio_write);
    BIO_meth_set_read_ex(method, bio_read);
    BIO_meth_set_ctrl(method, bio_ctrl);
    BIO_meth_set_create(method, bio_create);
    BIO_meth_set_destroy(method, bio_destroy);
    socket_method = method;
}

SSL_CTX *sprout_tls_context_new(int is_server, int minimum_version) {
    SSL_CTX *context = SSL_CTX_new(is_server ? TLS_server_method() : TLS_client_method());
    if (context == NULL) return NULL;
    SSL_CTX_set_min_proto_version(context, minimum_version);
    SSL_CTX_set_mode(context, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Read what the kernel has, not a record header and then its body: one recv per record
    // or better instead of two.
    SSL_CTX_set_read_ahead(context, 1);
    // No renegotiation: a server-initiated one mid-stream is a classic DoS vector.
    SSL_CTX_set_options(context, SSL_OP_NO_RENEGOTIATION);
    return context;
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_length, const unsigned char *offered,
                       unsigned offered_length, void *argument) {
    (void)ssl;
    const unsigned char *wire = argument;
    unsigned wire_length = (unsigned)wire[0] << 8 | wire[1];
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, out_length, wire + 2, wire_length, offered, offered_length) == OPENSSL_NPN_NEGOTIATED) {
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

void sprout_tls_context_set_alpn_select(SSL_CTX *context, const unsigned char *wire, unsigned length) {
    (void)length;
    SSL_CTX_set_alpn_select_cb(context, select_alpn, (void *)wire);
}

SSL *sprout_tls_new(SSL_CTX *context, int fd) {
    pthread_once(&socket_method_once, make_socket_method);
    SSL *ssl = SSL_new(context);
    if (ssl == NULL) return NULL;
    BIO *bio = BIO_new(socket_method);
    if (bio == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    ((socket_state *)BIO_get_data(bio))->fd = fd;
    SSL_set_bio(ssl, bio, bio);
    return ssl;
}

int sprout_tls_set_peer_name(SSL *ssl, const char *name, int is_address, int send_sni) {
    if (send_sni && !is_address && SSL_set_tlsext_host_name(ssl, name) != 1) return 0;
    if (is_address) return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, name);
}

unsigned long sprout_tls_take_error(char *buffer, size_t size) {
    unsigned long code = ERR_get_error();
    if (code != 0) ERR_error_string_n(code, buffer, size);
    ERR_clear_error();
    return code;
}

int sprout_tls_last_errno(SSL *ssl) {
    socket_state *state = BIO_get_data(SSL_get_rbio(ssl));
    return state->last_errno;
}

int sprout_tls_take_short_read(SSL *ssl) {
    socket_state *state = BIO_get_data(SSL_get_rbio(ssl));
    int was_short = state->short_read;
    state->short_read = 0;
    return was_short;
}

int sprout_tls_saw_eof(SSL *ssl) {
    socket_state *state = BIO_get_data(SSL_get_rbio(ssl));
    return state->eof;
}
