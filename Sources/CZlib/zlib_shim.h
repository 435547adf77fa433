// zlib from Debian's zlib1g-dev; inflateInit2 is a macro, so Swift calls this instead.
#include <zlib.h>

/// Starts inflating a gzip stream (window bits 15 + 16: gzip header and trailer checked).
static inline int sprout_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}
