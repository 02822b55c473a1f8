/*
 * A minimal backend for noxsd's brokering tests.
 *
 *   noxsd-testbe [--types 1,3] [--delay-ms N] [--refuse ERRNO]
 *
 * Registers for the given types (default: sysctl), accepts every device
 * (after N ms if --delay-ms, to provoke noxsd's timeout; or refuses with
 * ERRNO), answers control requests with "echo:KEY=VALUE", and prints one
 * line per event on stdout ("create D T I", "remove D T I"). SIGTERM ends
 * it cleanly.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <noxs/noxs.h>

static int delay_ms, refuse;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int create(noxs_backend *b, noxs_dev *d, const struct noxs_kv *params,
                  size_t n, void *arg)
{
    if (delay_ms) {
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (refuse)
        return -refuse;
    for (size_t i = 0; i < n; i++)
        noxs_dev_set_kv(d, params[i].key, params[i].value);
    printf("create %u %u %u\n", noxs_dev_frontend_domid(d), noxs_dev_type(d),
           noxs_dev_id(d));
    return 0;
}

static int control(noxs_backend *b, noxs_dev *d, const char *key,
                   const char *value, uint32_t request, void *arg)
{
    char reply[NOXS_CTRL_VALUE_MAX];

    if (strcmp(key, "never") == 0)
        return 1; /* never answered: noxsd times out */
    snprintf(reply, sizeof(reply), "echo:%s=%s", key, value);
    noxs_backend_control_reply(b, request, 0, reply);
    return 0;
}

static void removed(noxs_backend *b, noxs_dev *d, void *arg)
{
    printf("remove %u %u %u\n", noxs_dev_frontend_domid(d), noxs_dev_type(d),
           noxs_dev_id(d));
}

int main(int argc, char *argv[])
{
    static const struct option opts[] = {
        {"types", required_argument, NULL, 't'},
        {"delay-ms", required_argument, NULL, 'D'},
        {"refuse", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    static const struct noxs_backend_ops ops = {
        .create = create, .control = control, .remove = removed};
    unsigned int types[8] = {NOXS_DEV_SYSCTL};
    size_t ntypes = 1;
    noxs_backend *b;
    int ch;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 't': {
            char *s = optarg, *tok;
            ntypes = 0;
            while ((tok = strsep(&s, ",")) != NULL && ntypes < 8)
                types[ntypes++] = (unsigned int)atoi(tok);
            break;
        }
        case 'D':
            delay_ms = atoi(optarg);
            break;
        case 'r':
            refuse = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    b = noxs_backend_open(NULL, types, ntypes, &ops, NULL);
    if (!b) {
        fprintf(stderr, "noxsd-testbe: register: %s\n", strerror(errno));
        return errno == EADDRINUSE ? 4 : 1;
    }
    printf("registered\n");
    while (!stop)
        if (noxs_backend_dispatch(b, 200) < 0 && errno != EINTR) {
            fprintf(stderr, "noxsd-testbe: dispatch: %s\n", strerror(errno));
            break;
        }
    noxs_backend_close(b);
    return 0;
}
