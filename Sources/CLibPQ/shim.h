// PostgreSQL's C client (Debian's libpq-dev): the blocking library SproutPatch's tests and
// benchmark make cooperative.
#include <libpq-fe.h>
