// OpenSSL from Debian's libssl-dev (3.x): the headers SproutTLS uses.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
