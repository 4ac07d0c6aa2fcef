/* libmosquitto client for the mqtt-sync benchmark; same command line as the Rust clients:
 *   mosq_bench <pub|sub|rtt|idle|many|version> key=value...
 * Uses mosquitto_loop_start (its own network thread), mosquitto_publish, and
 * MOSQ_OPT_SEND_MAXIMUM for the window (window=0 keeps libmosquitto's default of 20). */
#include <mosquitto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *host = "127.0.0.1", *topic = "bench/t", *id = "mosq-bench";
static int port = 1883, qos = 0, window = 0, size = 64, nodelay = 1, clients = 1000;
static long n = 1000, secs = 30;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static volatile long pcount = 0, count = 0, connected = 0, subscribed = 0;
static double last_t = 0, max_gap = 0, end_t = 0, msg_t = 0;
static unsigned long long last_ns = 0;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static unsigned long long wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}
static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = atol(line + 6);
    fclose(f);
    return v;
}
static double cpu_ms(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void on_connect(struct mosquitto *m, void *u, int rc) {
    (void)m; (void)u;
    pthread_mutex_lock(&mu);
    if (rc == 0) connected++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
static void on_subscribe(struct mosquitto *m, void *u, int mid, int c, const int *g) {
    (void)m; (void)u; (void)mid; (void)c; (void)g;
    pthread_mutex_lock(&mu);
    subscribed = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}
static void on_publish(struct mosquitto *m, void *u, int mid) {
    (void)m; (void)u; (void)mid;
    double now = mono();
    if (last_t > 0 && now - last_t > max_gap) max_gap = now - last_t;
    last_t = now;
    if (++pcount == n) {
        pthread_mutex_lock(&mu);
        end_t = now;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
}
static void on_message(struct mosquitto *m, void *u, const struct mosquitto_message *msg) {
    (void)m; (void)u; (void)msg;
    pthread_mutex_lock(&mu);
    count++;
    last_ns = wall_ns();
    msg_t = mono();
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Waits (under mu) until cond() or timeout seconds pass without progress of count. */
static void wait_until(int (*cond)(void), double timeout) {
    pthread_mutex_lock(&mu);
    long seen = count + pcount;
    double since = mono();
    while (!cond()) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&cv, &mu, &ts);
        if (count + pcount != seen) { seen = count + pcount; since = mono(); }
        if (mono() - since > timeout) break;
    }
    pthread_mutex_unlock(&mu);
}
static int c_connected(void) { return connected > 0; }
static int c_subscribed(void) { return subscribed; }
static int c_done(void) { return count >= n; }
static int c_pdone(void) { return pcount >= n; }
static long rtt_target;
static int c_rtt(void) { return count >= rtt_target; }

static struct mosquitto *mk(const char *cid) {
    struct mosquitto *m = mosquitto_new(cid, true, NULL);
    if (!m) { fprintf(stderr, "mosquitto_new failed\n"); exit(1); }
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_message_callback_set(m, on_message);
    if (window > 0) mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, window);
    /* must be set before connecting; libmosquitto's default is off */
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, nodelay);
    return m;
}
static struct mosquitto *start(void) {
    struct mosquitto *m = mk(id);
    if (mosquitto_connect(m, host, port, 60) != MOSQ_ERR_SUCCESS) { fprintf(stderr, "connect failed\n"); exit(1); }
    mosquitto_loop_start(m);
    wait_until(c_connected, 10);
    if (!connected) { fprintf(stderr, "no CONNACK\n"); exit(1); }
    return m;
}
static void stop(struct mosquitto *m) {
    mosquitto_disconnect(m);
    mosquitto_loop_stop(m, false);
    mosquitto_destroy(m);
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: mosq_bench <pub|sub|rtt|idle|many|version> k=v...\n"); return 2; }
    for (int i = 2; i < argc; i++) {
        char *v = strchr(argv[i], '=');
        if (!v) continue;
        *v++ = 0;
        const char *k = argv[i];
        if (!strcmp(k, "host")) host = v;
        else if (!strcmp(k, "port")) port = atoi(v);
        else if (!strcmp(k, "n")) n = atol(v);
        else if (!strcmp(k, "qos")) qos = atoi(v);
        else if (!strcmp(k, "size")) size = atoi(v);
        else if (!strcmp(k, "window")) window = atoi(v);
        else if (!strcmp(k, "topic")) topic = v;
        else if (!strcmp(k, "nodelay")) nodelay = atoi(v);
        else if (!strcmp(k, "secs")) secs = atol(v);
        else if (!strcmp(k, "clients")) clients = atoi(v);
        else if (!strcmp(k, "id")) id = v;
    }
    mosquitto_lib_init();
    const char *w = argv[1];
    char *payload = calloc(1, size > 0 ? size : 1);
    memset(payload, 0x5a, size);
    if (!strcmp(w, "version")) {
        int a, b, c;
        mosquitto_lib_version(&a, &b, &c);
        printf("%d.%d.%d\n", a, b, c);
        return 0;
    } else if (!strcmp(w, "pub")) {
        struct mosquitto *m = start();
        unsigned long long t0_ns = wall_ns();
        double t0 = mono();
        for (long i = 0; i < n; i++) {
            int rc = mosquitto_publish(m, NULL, topic, size, payload, qos, false);
            if (rc != MOSQ_ERR_SUCCESS) { fprintf(stderr, "publish: %s\n", mosquitto_strerror(rc)); return 1; }
        }
        wait_until(c_pdone, 10);
        double e = (pcount >= n ? end_t : mono()) - t0;
        printf("RESULT n=%ld secs=%f t0_ns=%llu max_gap_ms=%f\n", pcount, e, t0_ns, max_gap * 1e3);
        stop(m);
    } else if (!strcmp(w, "sub")) {
        struct mosquitto *m = start();
        mosquitto_subscribe(m, NULL, topic, qos);
        wait_until(c_subscribed, 10);
        printf("READY\n");
        fflush(stdout);
        count = 0;
        /* 10 s for the first message, then 3 s without progress */
        wait_until(c_done, 10);
        printf("RESULT n=%ld t_last_ns=%llu\n", count, last_ns);
        stop(m);
    } else if (!strcmp(w, "rtt")) {
        struct mosquitto *m = start();
        mosquitto_subscribe(m, NULL, topic, qos);
        wait_until(c_subscribed, 10);
        long warm = 50;
        double *lat = calloc(n, sizeof(double));
        long k = 0;
        for (long i = 0; i < n + warm; i++) {
            double t = mono();
            rtt_target = i + 1;
            mosquitto_publish(m, NULL, topic, size, payload, qos, false);
            wait_until(c_rtt, 5);
            if (count < rtt_target) { fprintf(stderr, "message %ld not received\n", i); return 1; }
            if (i >= warm) lat[k++] = (msg_t - t) * 1e6;
        }
        qsort(lat, k, sizeof(double), cmpd);
        printf("RESULT n=%ld p50_us=%f p99_us=%f max_us=%f\n", k, lat[(long)((k - 1) * 0.5 + 0.5)],
               lat[(long)((k - 1) * 0.99 + 0.5)], lat[k - 1]);
        stop(m);
    } else if (!strcmp(w, "idle")) {
        struct mosquitto *m = start();
        double c0 = cpu_ms();
        sleep(secs);
        printf("RESULT n=1 idle_cpu_ms=%f\n", cpu_ms() - c0);
        stop(m);
    } else if (!strcmp(w, "many")) {
        long before = rss_kb();
        char cid[256];
        for (int i = 0; i < clients; i++) {
            snprintf(cid, sizeof cid, "%s-%d", id, i);
            struct mosquitto *m = mk(cid);
            if (mosquitto_connect(m, host, port, 60) != MOSQ_ERR_SUCCESS) { fprintf(stderr, "connect %d failed\n", i); return 1; }
            mosquitto_loop_start(m);
        }
        double t = mono();
        while (connected < clients && mono() - t < 60) usleep(10000);
        usleep(500000);
        long after = rss_kb();
        printf("RESULT n=%ld rss_before_kb=%ld rss_after_kb=%ld per_client_kb=%f\n", connected, before, after,
               (double)(after - before) / clients);
        fflush(stdout);
        _exit(0);
    } else {
        fprintf(stderr, "unknown workload %s\n", w);
        return 2;
    }
    mosquitto_lib_cleanup();
    return 0;
}
