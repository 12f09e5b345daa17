/* A Modbus TCP server on libmodbus (Debian libmodbus-dev): an implementation independent of
 * pymodbus for the driver tests.
 *
 * usage: libmodbus_server MAPFILE
 * MAPFILE lines: "<h|i|c|d> <address> <value>" (holding, input, coil, discrete input).
 * It also stores the float 230.5 at holding 1000, 1002, 1004, 1006 with libmodbus' own
 * ABCD, BADC, CDAB and DCBA setters, so byte orders are cross-checked against libmodbus.
 * Listens on 127.0.0.1 on an ephemeral port, prints "PORT <n>" and serves one client at a
 * time until killed. Addresses past the highest one given answer exception 2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ENTRIES 65536

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MAPFILE\n", argv[0]);
        return 2;
    }
    FILE *map = fopen(argv[1], "r");
    if (!map) {
        perror("map");
        return 2;
    }
    static char kinds[MAX_ENTRIES];
    static int addrs[MAX_ENTRIES], values[MAX_ENTRIES];
    int n = 0, top[4] = {0, 0, 1008, 0}; /* bits, input bits, holding, input: counts */
    const char *names = "cdhi";
    while (n < MAX_ENTRIES && fscanf(map, " %c %d %d", &kinds[n], &addrs[n], &values[n]) == 3) {
        const char *kind = strchr(names, kinds[n]);
        if (!kind || addrs[n] < 0 || addrs[n] > 65535) {
            fprintf(stderr, "bad line %d\n", n + 1);
            return 2;
        }
        int t = (int)(kind - names);
        if (addrs[n] + 1 > top[t]) top[t] = addrs[n] + 1;
        n++;
    }
    fclose(map);
    modbus_mapping_t *mb = modbus_mapping_new(top[0], top[1], top[2], top[3]);
    if (!mb) {
        fprintf(stderr, "mapping: %s\n", modbus_strerror(errno));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        switch (kinds[i]) {
        case 'c': mb->tab_bits[addrs[i]] = values[i] ? 1 : 0; break;
        case 'd': mb->tab_input_bits[addrs[i]] = values[i] ? 1 : 0; break;
        case 'h': mb->tab_registers[addrs[i]] = (uint16_t)values[i]; break;
        case 'i': mb->tab_input_registers[addrs[i]] = (uint16_t)values[i]; break;
        }
    }
    modbus_set_float_abcd(230.5f, mb->tab_registers + 1000);
    modbus_set_float_badc(230.5f, mb->tab_registers + 1002);
    modbus_set_float_cdab(230.5f, mb->tab_registers + 1004);
    modbus_set_float_dcba(230.5f, mb->tab_registers + 1006);

    modbus_t *ctx = modbus_new_tcp("127.0.0.1", 0);
    int server = modbus_tcp_listen(ctx, 1);
    if (server < 0) {
        fprintf(stderr, "listen: %s\n", modbus_strerror(errno));
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t len = sizeof bound;
    getsockname(server, (struct sockaddr *)&bound, &len);
    printf("PORT %d\n", ntohs(bound.sin_port));
    fflush(stdout);

    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    for (;;) {
        if (modbus_tcp_accept(ctx, &server) < 0) continue;
        for (;;) {
            int rc = modbus_receive(ctx, query);
            if (rc > 0) {
                modbus_reply(ctx, query, rc, mb);
            } else if (rc == -1) {
                break; /* client gone: accept the next one */
            }
        }
        close(modbus_get_socket(ctx));
    }
}
