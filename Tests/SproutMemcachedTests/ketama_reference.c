// libmemcached's own key placement, for MemcachedTests: which server each key goes to.
//   ketama_reference ketama|weighted host:port:weight[,host:port:weight…] < keys
// prints one server index per key line.
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    memcached_st *memc = memcached_create(NULL);
    memcached_behavior_t behavior = strcmp(argv[1], "weighted") == 0 ? MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED : MEMCACHED_BEHAVIOR_KETAMA;
    char *servers = strdup(argv[2]);
    for (char *entry = strtok(servers, ","); entry; entry = strtok(NULL, ",")) {
        char host[256];
        unsigned port, weight;
        if (sscanf(entry, "%255[^:]:%u:%u", host, &port, &weight) != 3) return 2;
        if (memcached_server_add_with_weight(memc, host, (in_port_t)port, weight) != MEMCACHED_SUCCESS) return 3;
    }
    // After the servers, so that the continuum is built with all of them.
    if (memcached_behavior_set(memc, behavior, 1) != MEMCACHED_SUCCESS) return 4;
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        size_t length = strcspn(line, "\n");
        line[length] = 0;
        printf("%u\n", memcached_generate_hash(memc, line, length));
    }
    memcached_free(memc);
    return 0;
}
