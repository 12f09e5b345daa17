/* A device publishing to Millstream with libmosquitto (C): one telemetry batch, kept until the
 * hub's receipt names its seq (docs/wire.md "Connect a device in 10 minutes").
 *
 *   cc -o publish publish_libmosquitto.c $(pkg-config --cflags --libs libmosquitto)
 *   MQTT_USERNAME=press-gw MQTT_PASSWORD=… SITE=plant-a LINE=line-3 MACHINE=press-01 ./publish
 *
 * Same settings as publish_paho.py (MQTT_HOST, MQTT_PORT, SRC optional). A device that cannot
 * compute SHA-256 may delete on `seqs` alone (docs/wire.md "Receipts" says what that risks);
 * this example does so to stay dependency-free. Exit 0 once stored, 1 without a receipt in 30 s.
 */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static char receipt_topic[256], telemetry_topic[256], payload[512];
static long long seq;
static volatile int stored = 0;

static const char *env(const char *name, const char *fallback) {
    const char *value = getenv(name);
    if (value == NULL && fallback == NULL) {
        fprintf(stderr, "set %s\n", name);
        exit(2);
    }
    return value != NULL ? value : fallback;
}

static void on_connect(struct mosquitto *m, void *obj, int rc) {
    (void)obj;
    if (rc != 0) {
        fprintf(stderr, "broker refused the connection: %s\n", mosquitto_connack_string(rc));
        exit(1);
    }
    /* Receipts first, so none is missed; then the batch, at QoS 1. */
    mosquitto_subscribe(m, NULL, receipt_topic, 1);
    mosquitto_publish(m, NULL, telemetry_topic, (int)strlen(payload), payload, 1, false);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg) {
    (void)m;
    (void)obj;
    /* {"v":1,"seqs":[[first,last],...],...}: is our seq inside a range? A device with a JSON
     * parser would use it; scanning the few numbers keeps this example self-contained. */
    const char *p = strstr((const char *)msg->payload, "\"seqs\"");
    long long first, last;
    while (p != NULL && (p = strchr(p, '[')) != NULL) {
        if (sscanf(p, "[%lld,%lld]", &first, &last) == 2 && first <= seq && seq <= last) {
            stored = 1;
            return;
        }
        p++;
    }
}

int main(void) {
    const char *user = env("MQTT_USERNAME", NULL);
    const char *src = env("SRC", user);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    long long now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    seq = now; /* grows for this src; a real device keeps a counter in flash */
    snprintf(receipt_topic, sizeof receipt_topic, "ms/v1/receipts/%s", src);
    snprintf(telemetry_topic, sizeof telemetry_topic, "ms/v1/%s/%s/%s/telemetry",
             env("SITE", NULL), env("LINE", NULL), env("MACHINE", NULL));
    snprintf(payload, sizeof payload,
             "{\"v\":1,\"src\":\"%s\",\"seq\":%lld,\"readings\":["
             "{\"tag\":\"temp\",\"ts\":%lld,\"v\":21.5},{\"tag\":\"running\",\"ts\":%lld,\"v\":true}]}",
             src, seq, now, now);

    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(NULL, true, NULL);
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_username_pw_set(m, user, env("MQTT_PASSWORD", NULL));
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_message_callback_set(m, on_message);
    if (mosquitto_connect(m, env("MQTT_HOST", "127.0.0.1"), atoi(env("MQTT_PORT", "1883")), 30)) {
        fprintf(stderr, "cannot reach the broker\n");
        return 1;
    }
    time_t deadline = time(NULL) + 30;
    while (!stored && time(NULL) < deadline) {
        mosquitto_loop(m, 100, 1);
    }
    mosquitto_disconnect(m);
    mosquitto_destroy(m);
    mosquitto_lib_cleanup();
    printf("seq %lld: %s\n", seq, stored ? "stored by the hub" : "no receipt within 30 s; send it again");
    return stored ? 0 : 1;
}
