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
#include <stddef.h>
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

/* The record's fields by name. */
#define FIELD(name, member)                         \
    {                                               \
        name, offsetof(struct store_rec, member),   \
            sizeof(((struct store_rec *)0)->member) \
    }
static const struct field {
    const char *name;
    size_t off, size;
} fields[] = {
    FIELD("op", op),
    FIELD("domid", domid),
    FIELD("owner", owner_domid),
    FIELD("type", type),
    FIELD("devid", devid),
    FIELD("backend", backend_domid),
    FIELD("flags", flags),
    FIELD("gref", gref),
    FIELD("port", port),
    FIELD("reserved", reserved),
    FIELD("epoch", epoch),
};

/* Field NAME of R set to V (cut to the field's width); -1 if no such
 * field. */
static int set_field(struct store_rec *r, const char *name,
                     unsigned long long v)
{
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const struct field *f = &fields[i];
        char *p = (char *)r + f->off;

        if (strcmp(name, f->name) != 0)
            continue;
        if (f->size == 2)
            *(uint16_t *)p = (uint16_t)v;
        else if (f->size == 4)
            *(uint32_t *)p = (uint32_t)v;
        else
            *(uint64_t *)p = (uint64_t)v;
        return 0;
    }
    return -1;
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
        if (set_field(&d.rec, argv[i], v) < 0)
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
