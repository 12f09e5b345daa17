/* A Modbus TCP server on libmodbus that serves counters and records every answer it served.
 *
 * usage: counting_modbus_server REGISTERS SERVED_FILE
 *
 * Holds holding registers 0..REGISTERS-1. Every read of holding registers (function 3) is
 * answered with the server's next response number (1, 2, 3, ...) in every register of the
 * span, so each value a client reads names the response it came in. A response counts as
 * served once libmodbus has written all of it to the socket (modbus_reply returned its
 * length); only then is its line "NUMBER ADDRESS COUNT MS" recorded (MS: milliseconds since
 * the epoch, when it was written). A response that could not be written whole is not served
 * (its number is skipped, never reused). Anything else is answered as libmodbus does
 * (exception 1 or 2) and not recorded.
 *
 * Listens on 127.0.0.1 on an ephemeral port, prints "PORT <n>" and serves one client at a
 * time. SIGTERM or SIGINT: finishes the request at hand, writes SERVED_FILE out and exits 0,
 * so the file is complete once the process has exited.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping = 0;

static void on_stop(int sig) {
    (void)sig;
    stopping = 1;
}

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Wait (100 ms at a time, to notice a stop) until the listening socket has a client. */
static int client_waiting(int server) {
    struct pollfd p = {.fd = server, .events = POLLIN};
    return poll(&p, 1, 100) > 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s REGISTERS SERVED_FILE\n", argv[0]);
        return 2;
    }
    int registers = atoi(argv[1]);
    if (registers < 1 || registers > 65536) {
        fprintf(stderr, "REGISTERS must be 1..65536\n");
        return 2;
    }
    FILE *served = fopen(argv[2], "w");
    if (!served) {
        perror("served file");
        return 2;
    }
    setvbuf(served, NULL, _IOFBF, 1 << 20);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: a blocked call returns and the flag is seen */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    modbus_mapping_t *mb = modbus_mapping_new(0, 0, registers, 0);
    if (!mb) {
        fprintf(stderr, "mapping: %s\n", modbus_strerror(errno));
        return 1;
    }
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", 0);
    /* A silent client wakes us every 100 ms, so a stop is seen between its requests. */
    modbus_set_indication_timeout(ctx, 0, 100000);
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

    int header = modbus_get_header_length(ctx);
    unsigned long number = 0;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!stopping) {
        if (!client_waiting(server) || modbus_tcp_accept(ctx, &server) < 0) continue;
        while (!stopping) {
            int rc = modbus_receive(ctx, query);
            if (rc == -1) {
                if (errno == ETIMEDOUT || errno == EINTR) continue;
                break; /* client gone: accept the next one */
            }
            if (rc == 0) continue; /* a request for another unit: ignored */
            int function = query[header];
            int address = (query[header + 1] << 8) | query[header + 2];
            int count = (query[header + 3] << 8) | query[header + 4];
            int counted = function == MODBUS_FC_READ_HOLDING_REGISTERS && count >= 1 &&
                          count <= MODBUS_MAX_READ_REGISTERS && address + count <= registers;
            if (counted) {
                number++;
                for (int a = address; a < address + count; a++) {
                    mb->tab_registers[a] = (uint16_t)number;
                }
            }
            if (modbus_reply(ctx, query, rc, mb) > 0 && counted) {
                fprintf(served, "%lu %d %d %lld\n", number, address, count, now_ms());
            }
        }
        close(modbus_get_socket(ctx));
        modbus_set_socket(ctx, -1);
    }
    if (fclose(served) != 0) {
        perror("served file");
        return 1;
    }
    close(server);
    modbus_mapping_free(mb);
    modbus_free(ctx);
    return 0;
}
