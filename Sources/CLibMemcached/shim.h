// libmemcached's C client (Debian's libmemcached-dev): SproutPatch's tests drive its blocking
// API from greenlets.
#include <libmemcached/memcached.h>
