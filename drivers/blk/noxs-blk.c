/*
 * noxs-blk: copy data in and out of a noxs blk device from the guest.
 *
 * A thin command line over blkfront: it connects to the device, runs one
 * command and closes the device again (Closing -> Closed), so each run is
 * one frontend session. Data moves in chunks of up to 1 MiB, each split
 * by blkfront into ring requests that are all in flight at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blkfront.h"
#include "common/parse.h"

#define CHUNK (1u << 20)

static const char *prog = "noxs-blk";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: noxs-blk [options] COMMAND [ARGS]\n"
            "\n"
            "Commands (offsets and lengths in bytes, K/M/G suffixes allowed):\n"
            "  info                        size, sector size, mode, features\n"
            "  read OFFSET LENGTH [FILE]   copy out to FILE (default stdout)\n"
            "  write OFFSET [FILE]         copy in from FILE (default stdin);\n"
            "                              the length must be whole sectors\n"
            "  flush                       flush the backend's cache\n"
            "  discard OFFSET LENGTH       discard a range\n"
            "Options:\n"
            "  -d, --devid N     the device id (default 0)\n"
            "  -o, --ring-order N  ring of 2^N pages (0..4, default 1)\n"
            "  -t, --timeout S   bound on each wait for the backend (30)\n"
            "  -f, --flush       flush after a write\n"
            "  --version         print the version and exit\n");
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    uint64_t v;

    errno = 0;
    /* Decimal (common/parse.c's rule), then an optional K, M or G. */
    for (end = (char *)s; *end >= '0' && *end <= '9'; end++)
        ;
    if (parse_u64n(s, (size_t)(end - s), 0, UINT64_MAX >> 30, &v) < 0)
        return -1;
    switch (*end) {
    case 'k':
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'm':
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'g':
    case 'G':
        v <<= 30;
        end++;
        break;
    default: break;
    }
    if (*end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    return 1;
}

static int cmd_read(noxs_blkfront *b, uint64_t off, uint64_t len,
                    const char *path)
{
    int fd = STDOUT_FILENO;
    char *buf = malloc(CHUNK);
    int rc = 0;

    if (buf == NULL)
        return fail("malloc");
    if (path != NULL && strcmp(path, "-") != 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            free(buf);
            return fail(path);
        }
    }
    while (len > 0 && rc == 0) {
        size_t n = len < CHUNK ? (size_t)len : CHUNK;

        if (noxs_blkfront_read(b, buf, n, off) < 0) {
            rc = fail("read");
            break;
        }
        for (size_t done = 0; done < n;) {
            ssize_t w = write(fd, buf + done, n - done);

            if (w < 0) {
                if (errno == EINTR)
                    continue;
                rc = fail("write output");
                break;
            }
            done += (size_t)w;
        }
        off += n;
        len -= n;
    }
    if (fd != STDOUT_FILENO)
        close(fd);
    free(buf);
    return rc;
}

static int cmd_write(noxs_blkfront *b, uint64_t off, const char *path,
                     bool flush)
{
    int fd = STDIN_FILENO;
    char *buf = malloc(CHUNK);
    int rc = 0;

    if (buf == NULL)
        return fail("malloc");
    if (path != NULL && strcmp(path, "-") != 0) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            free(buf);
            return fail(path);
        }
    }
    for (;;) {
        size_t n = 0;

        while (n < CHUNK) {
            ssize_t r = read(fd, buf + n, CHUNK - n);

            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = fail("read input");
                goto out;
            }
            if (r == 0)
                break;
            n += (size_t)r;
        }
        if (n == 0)
            break;
        if (noxs_blkfront_write(b, buf, n, off) < 0) {
            rc = fail("write");
            goto out;
        }
        off += n;
        if (n < CHUNK)
            break;
    }
    if (flush && noxs_blkfront_flush(b) < 0)
        rc = fail("flush");
out:
    if (fd != STDIN_FILENO)
        close(fd);
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"devid", required_argument, NULL, 'd'},
        {"ring-order", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'},
        {"flush", no_argument, NULL, 'f'},
        OPT_HELP_VERSION,
    };
    uint64_t devid = 0, order = 1, timeout_s = 30, a = 0, l = 0;
    bool flush = false;
    noxs_frontend *f;
    noxs_blkfront *b;
    const char *cmd;
    int c, rc;

    while ((c = getopt_long(argc, argv, "d:o:t:fh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (parse_size(optarg, &devid) < 0 || devid > UINT32_MAX)
                goto bad;
            break;
        case 'o':
            if (parse_size(optarg, &order) < 0 || order > 4)
                goto bad;
            break;
        case 't':
            if (parse_size(optarg, &timeout_s) < 0 || timeout_s == 0 ||
                timeout_s > 86400)
                goto bad;
            break;
        case 'f': flush = true; break;
        default: return opt_other(c, "noxs-blk", usage);
        }
    }
    if (optind >= argc)
        goto bad;
    cmd = argv[optind++];
    if ((strcmp(cmd, "read") == 0 || strcmp(cmd, "discard") == 0) &&
        (argc - optind < 2 || parse_size(argv[optind], &a) < 0 ||
         parse_size(argv[optind + 1], &l) < 0))
        goto bad;
    if (strcmp(cmd, "write") == 0 &&
        (argc - optind < 1 || parse_size(argv[optind], &a) < 0))
        goto bad;

    f = noxs_frontend_open(NULL);
    if (f == NULL)
        return fail("cannot open the device page");
    b = noxs_blkfront_open(f, (uint32_t)devid, (unsigned int)order,
                           (int)timeout_s * 1000);
    if (b == NULL) {
        rc = fail("cannot connect to the blk device");
        noxs_frontend_close(f);
        return rc;
    }
    noxs_blkfront_set_timeout(b, (int)timeout_s * 1000);

    if (strcmp(cmd, "info") == 0) {
        struct noxs_blkfront_info in;

        noxs_blkfront_get_info(b, &in);
        printf("size %" PRIu64 "\nsector-size %u\nmode %s\nflush %d\n"
               "discard %d\nring-page-order %u\nqueue-depth %u\n",
               in.size, in.sector_size, in.readonly ? "r" : "w", in.flush,
               in.discard, in.ring_order, in.queue_depth);
        rc = 0;
    } else if (strcmp(cmd, "read") == 0) {
        rc = cmd_read(b, a, l, optind + 2 < argc ? argv[optind + 2] : NULL);
    } else if (strcmp(cmd, "write") == 0) {
        rc = cmd_write(b, a, optind + 1 < argc ? argv[optind + 1] : NULL, flush);
    } else if (strcmp(cmd, "flush") == 0) {
        rc = noxs_blkfront_flush(b) < 0 ? fail("flush") : 0;
    } else if (strcmp(cmd, "discard") == 0) {
        rc = noxs_blkfront_discard(b, a, l) < 0 ? fail("discard") : 0;
    } else {
        fprintf(stderr, "%s: unknown command %s\n", prog, cmd);
        rc = 1;
    }
    if (noxs_blkfront_close(b) < 0 && rc == 0)
        rc = fail("close");
    noxs_frontend_close(f);
    return rc;

bad:
    usage(stderr);
    return 2;
}
