/*
 * noxsd-mkrec FILE FIELD=VALUE...: append one store record to FILE with a
 * correct length and CRC, whatever its fields hold, so that tests can
 * hand noxsd a store that is intact on disk but says impossible things.
 * Fields: op domid owner type devid backend flags gref port reserved
 * epoch (unset ones are 0). The CRC is computed here, independently of
 * noxsd's store.c, so the format is checked from both sides.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noxsd.h"

static uint32_t crc32_ieee(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = 0xffffffffu;
    int k;

    while (n--) {
        c ^= *b++;
        for (k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

int main(int argc, char **argv)
{
    struct {
        uint32_t length, crc;
        struct store_rec rec;
    } d;
    unsigned long long v;
    char *eq, *end;
    int i, fd;

    if (argc < 2) {
        fprintf(stderr, "usage: noxsd-mkrec FILE FIELD=VALUE...\n");
        return 2;
    }
    memset(&d, 0, sizeof(d));
    for (i = 2; i < argc; i++) {
        if ((eq = strchr(argv[i], '=')) == NULL)
            goto bad;
        *eq = '\0';
        errno = 0;
        v = strtoull(eq + 1, &end, 0);
        if (errno || *end != '\0')
            goto bad;
        if (!strcmp(argv[i], "op"))
            d.rec.op = (uint16_t)v;
        else if (!strcmp(argv[i], "domid"))
            d.rec.domid = (uint16_t)v;
        else if (!strcmp(argv[i], "owner"))
            d.rec.owner_domid = (uint16_t)v;
        else if (!strcmp(argv[i], "type"))
            d.rec.type = (uint16_t)v;
        else if (!strcmp(argv[i], "devid"))
            d.rec.devid = (uint32_t)v;
        else if (!strcmp(argv[i], "backend"))
            d.rec.backend_domid = (uint16_t)v;
        else if (!strcmp(argv[i], "flags"))
            d.rec.flags = (uint16_t)v;
        else if (!strcmp(argv[i], "gref"))
            d.rec.gref = (uint32_t)v;
        else if (!strcmp(argv[i], "port"))
            d.rec.port = (uint32_t)v;
        else if (!strcmp(argv[i], "reserved"))
            d.rec.reserved = (uint32_t)v;
        else if (!strcmp(argv[i], "epoch"))
            d.rec.epoch = (uint64_t)v;
        else
            goto bad;
    }
    d.length = sizeof(d.rec);
    d.crc = crc32_ieee(&d.rec, sizeof(d.rec));
    if ((fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0600)) < 0 ||
        write(fd, &d, sizeof(d)) != (ssize_t)sizeof(d)) {
        perror(argv[1]);
        return 1;
    }
    close(fd);
    return 0;
bad:
    fprintf(stderr, "noxsd-mkrec: bad field: %s\n", argv[i]);
    return 2;
}
