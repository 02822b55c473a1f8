/*
 * libFuzzer target: arbitrary bytes as a device page and as a control
 * page (both halves), through snapshot, validation and the key/value
 * readers, plus the bootstrap parser. The library must reject or accept
 * cleanly and never read out of bounds, whatever the page holds.
 *
 * Input: up to one page; shorter inputs are zero-padded. The seq words
 * are forced even (otherwise half the inputs would stop at EBUSY before
 * validation, slowly: the reader backs off) unless the first byte's low
 * three bits are all set.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <noxs/noxs.h>
#include <noxs/page.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int visit(const char *key, const char *value, size_t len, void *arg)
{
    size_t *total = arg;

    /* Touch every byte so ASan sees any overrun. */
    *total += strlen(key) + len + (value[len] == '\0');
    return 0;
}

static void check_half(void *page, unsigned int which)
{
    struct noxs_ctrl_half snap, raw;
    char buf[NOXS_CTRL_VALUE_MAX + 1];
    size_t total = 0;

    if (noxs_ctrl_half_snapshot(page, which, &snap) == 0) {
        if (noxs_ctrl_half_validate(&snap, which) != 0)
            abort(); /* snapshot and validate must agree */
        if (noxs_kv_foreach(&snap, visit, &total) != 0)
            abort(); /* a validated half always iterates */
        noxs_kv_get(&snap, "state", buf, sizeof(buf));
        noxs_kv_get(&snap, "a", buf, 2);
        /* A published half written back reads back valid. */
        if (snap.generation != 0) {
            struct noxs_ctrl_half copy = snap;
            static _Alignas(4096) uint8_t again[NOXS_PAGE_SIZE];
            noxs_ctrl_half_write(again, which, &copy);
            if (noxs_ctrl_half_snapshot(again, which, &raw) != 0 ||
                memcmp(raw.kv, snap.kv, sizeof(raw.kv)) != 0)
                abort();
        }
    } else if (errno != EPROTO && errno != EBUSY) {
        abort();
    }
    /* The kv readers and writers stay in bounds on unvalidated halves. */
    memcpy(&raw, (uint8_t *)page + which * NOXS_CTRL_HALF_SIZE, sizeof(raw));
    noxs_kv_foreach(&raw, visit, &total);
    noxs_kv_get(&raw, "a", buf, sizeof(buf));
    noxs_kv_set(&raw, "a", "b", 1);
    noxs_kv_del(&raw, "a");
    noxs_ctrl_half_validate(&raw, which);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static _Alignas(4096) uint8_t page[NOXS_PAGE_SIZE];
    static struct noxs_devpage snap;
    struct noxs_boot boot;
    char text[NOXS_PAGE_SIZE + 1];

    if (size > NOXS_PAGE_SIZE)
        size = NOXS_PAGE_SIZE;
    memset(page, 0, sizeof(page));
    memcpy(page, data, size);
    int settle = !size || (data[0] & 7u) != 7u;
    if (settle) {
        ((struct noxs_devpage_header *)page)->seq &= ~1u;
        ((struct noxs_ctrl_half *)page)[1].seq &= ~1u;
    }

    if (noxs_devpage_snapshot(page, &snap, NOXS_DOMID_ANY_PAGE) == 0) {
        if (noxs_devpage_validate(&snap, snap.hdr.domid) != 0)
            abort();
    } else if (errno != EPROTO && errno != EBUSY) {
        abort();
    }
    noxs_devpage_validate((const struct noxs_devpage *)page,
                          NOXS_DOMID_ANY_PAGE);
    noxs_devpage_peek_generation(page);

    if (settle)
        ((struct noxs_ctrl_half *)page)[0].seq &= ~1u;
    check_half(page, NOXS_CTRL_BACKEND);
    check_half(page, NOXS_CTRL_FRONTEND);
    noxs_ctrl_half_peek_generation(page, NOXS_CTRL_FRONTEND);

    memcpy(text, data, size);
    text[size] = '\0';
    noxs_boot_parse(text, &boot);
    return 0;
}
