/*
 * Our own restarts: each device's files in the service manager's fd
 * store (see "our own restarts" in blkback.h), put there at dev-add and
 * taken back by the next instance. Main thread.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blkback.h"
#include "common/log.h"
#include "common/parse.h"
#include "svc.h"

void stored_name(char *buf, size_t n, const char *what, uint16_t domid,
                 uint32_t devid)
{
    snprintf(buf, n, "noxs-blk-%s-%u-%u", what, domid, devid);
}

/*
 * bd->st: a memfd to store (resumable), else the heap (no mapping per
 * device, see main). From the heap only its header is cleared: the rest
 * is the slots of requests to redo after a restart (about 130 KiB), of
 * which slots_setup() clears the ones the ring can use, so an idle device
 * makes a page or two resident; calloc would clear all of it (a reused
 * block is not known to be zero). st_free() undoes it.
 */
int st_new(struct blkdev *bd)
{
    void *p;

    if (conf.resumable) {
        int fd = memfd_create("noxs-blk-state", MFD_CLOEXEC);

        if (fd >= 0 && ftruncate(fd, (off_t)sizeof(struct blkst)) == 0 &&
            (p = mmap(NULL, sizeof(struct blkst), PROT_READ | PROT_WRITE,
                      MAP_SHARED, fd, 0)) != MAP_FAILED) {
            bd->st = p;
            bd->st_fd = fd;
            return 0;
        }
        log_warnx("domain %u blk %u: state memfd: %s: the device will not "
                  "survive a restart",
                  bd->fe_domid, bd->devid,
                  strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if ((bd->st = malloc(sizeof(struct blkst))) == NULL)
        return -ENOMEM;
    memset(bd->st, 0, offsetof(struct blkst, slot));
    return 0;
}

/* bd->st, mapped from its memfd (st_new, resume_files) or allocated. */
void st_free(struct blkdev *bd)
{
    if (bd->st == NULL)
        return;
    if (bd->st_fd >= 0)
        munmap(bd->st, sizeof(struct blkst));
    else
        free(bd->st);
    bd->st = NULL;
}

/* Settings into bd->st, then the image and st into the fd store. */
void store_files(struct blkdev *bd)
{
    const char *ns = getenv("NOTIFY_SOCKET");
    struct blkst *st = bd->st;
    char name[64];

    st->magic = BLKST_MAGIC;
    st->version = BLKST_VERSION;
    st->domid = bd->fe_domid;
    st->devid = bd->devid;
    st->sectors = bd->geom.sectors;
    st->sector_size = bd->geom.sector_size;
    st->readonly = bd->geom.readonly;
    st->discard = bd->geom.discard;
    st->is_blockdev = bd->is_blockdev;
    snprintf(st->path, sizeof(st->path), "%s", bd->path);
    if (bd->st_fd < 0)
        return;
    stored_name(name, sizeof(name), "img", bd->fe_domid, bd->devid);
    if (noxs_i_fdstore_put(ns, name, bd->fd) == 0) {
        stored_name(name, sizeof(name), "state", bd->fe_domid, bd->devid);
        bd->stored = noxs_i_fdstore_put(ns, name, bd->st_fd) == 0;
    }
    if (!bd->stored)
        log_warnx("domain %u blk %u: cannot store its files (%s): the "
                  "device will not survive a restart",
                  bd->fe_domid,
                  bd->devid, strerror(errno));
}

/* The device is gone for good: take its files out of the store. */
void unstore_files(struct blkdev *bd)
{
    const char *ns = getenv("NOTIFY_SOCKET");
    char name[64], msg[128];

    if (!bd->stored)
        return;
    stored_name(name, sizeof(name), "img", bd->fe_domid, bd->devid);
    snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    noxs_i_notify(ns, msg, -1);
    stored_name(name, sizeof(name), "state", bd->fe_domid, bd->devid);
    snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
    noxs_i_notify(ns, msg, -1);
    bd->stored = false;
}

/* Our files the service manager gave back ($LISTEN_FDS), taken before
 * libnoxs takes its own and clears the variables. */
void take_stored(void)
{
    const char *spid = getenv("LISTEN_PID"), *sn = getenv("LISTEN_FDS");
    const char *names = getenv("LISTEN_FDNAMES");
    char *copy, *name, *save = NULL;
    struct kept_file *kept;
    uint64_t pid, n;

    if (spid == NULL || sn == NULL || names == NULL)
        return;
    if (parse_u64(spid, 1, INT32_MAX, &pid) < 0 || (pid_t)pid != getpid())
        return;
    if (parse_u64(sn, 0, 1u << 20, &n) < 0 || (copy = strdup(names)) == NULL)
        return;
    conf.kept = kept = calloc(n, sizeof(*kept));
    name = strtok_r(copy, ":", &save);
    for (unsigned long i = 0; kept != NULL && i < n && name != NULL; i++) {
        if (strncmp(name, "noxs-blk-", 9) == 0 &&
            strlen(name) < sizeof(kept[0].name)) {
            snprintf(kept[conf.nkept].name, sizeof(kept[0].name), "%s", name);
            kept[conf.nkept].fd = (int)(3 + i);
            fcntl(kept[conf.nkept].fd, F_SETFD, FD_CLOEXEC);
            conf.nkept++;
        }
        name = strtok_r(NULL, ":", &save);
    }
    free(copy);
}

int take_kept(const char *name)
{
    for (size_t i = 0; i < conf.nkept; i++) {
        if (conf.kept[i].fd >= 0 && strcmp(conf.kept[i].name, name) == 0) {
            int fd = conf.kept[i].fd;

            conf.kept[i].fd = -1;
            return fd;
        }
    }
    return -1;
}

/* Stored files no device claimed (a device removed while we were away,
 * or one a kill left half-added): out of the store. */
void drop_kept(void)
{
    const char *ns = getenv("NOTIFY_SOCKET");
    char msg[128];

    for (size_t i = 0; i < conf.nkept; i++) {
        if (conf.kept[i].fd < 0)
            continue;
        close(conf.kept[i].fd);
        if (conf.resumable) {
            snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s",
                     conf.kept[i].name);
            noxs_i_notify(ns, msg, -1);
        }
    }
    free(conf.kept);
    conf.kept = NULL;
    conf.nkept = 0;
}

/* bd's settings from its stored files. NULL, or why not. */
const char *resume_files(struct blkdev *bd)
{
    struct stat sb;
    struct blkst *st;
    void *p;

    if (bd->fd < 0 || bd->st_fd < 0)
        return "its files were not kept across the restart";
    if (fstat(bd->st_fd, &sb) < 0 || sb.st_size < (off_t)sizeof(*st) ||
        (p = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED,
                  bd->st_fd, 0)) == MAP_FAILED)
        return "its state file is unusable";
    bd->st = st = p;
    if (st->magic != BLKST_MAGIC || st->version != BLKST_VERSION ||
        st->domid != bd->fe_domid || st->devid != bd->devid ||
        (st->sector_size != 512 && st->sector_size != 4096) ||
        st->sectors > (UINT64_MAX >> 10))
        return "its state file is not ours";
    bd->geom.sectors = st->sectors;
    bd->geom.sector_size = st->sector_size;
    bd->geom.readonly = st->readonly != 0;
    bd->geom.discard = st->discard != 0;
    bd->is_blockdev = st->is_blockdev != 0;
    bd->path = strndup(st->path, sizeof(st->path) - 1);
    if (bd->path == NULL || fstat(bd->fd, &sb) < 0)
        return "out of resources";
    return NULL;
}
