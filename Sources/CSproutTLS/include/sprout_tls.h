#ifndef SPROUT_TLS_H
#define SPROUT_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

// What Swift cannot call directly in OpenSSL (macros), and the socket BIO Sprout needs: its
// writes never raise SIGPIPE (send with MSG_NOSIGNAL) and "would block" is left to the caller,
// which parks the greenlet on the descriptor and retries.

/// A client or server context: TLS 1.2 at least, buffers released while idle.
SSL_CTX *sprout_tls_context_new(int is_server, int minimum_version);

/// The server side of ALPN: picks the first of `wire` (length-prefixed names) the client offers.
/// `wire` must outlive the context.
void sprout_tls_context_set_alpn_select(SSL_CTX *context, const unsigned char *wire, unsigned length);

/// A connection on descriptor `fd` (non-blocking), through Sprout's socket BIO.
SSL *sprout_tls_new(SSL_CTX *context, int fd);

/// Sets SNI (for names, not addresses) and the name or address the certificate must match.
int sprout_tls_set_peer_name(SSL *ssl, const char *name, int is_address, int send_sni);

/// The text of the oldest error queued on this thread, emptying the queue; 0 if none.
unsigned long sprout_tls_take_error(char *buffer, size_t size);

/// The errno the BIO saw on its last failed read or write (0 at end of stream or none).
int sprout_tls_last_errno(SSL *ssl);

/// Whether the BIO's last read came back short or with EAGAIN (then clears it).
int sprout_tls_take_short_read(SSL *ssl);

/// Whether the BIO has read the peer's TCP end of stream.
int sprout_tls_saw_eof(SSL *ssl);

#endif
