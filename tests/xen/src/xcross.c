/*
 * xcross: a page and an event channel shared across domains, dom0 <-> guest,
 * without XenStore. The exchange mirrors noxs's bootstrap: dom0 grants the
 * pages and offers an unbound port to the guest's domid *before* the guest
 * exists, and the guest learns "xcross=<rwref>:<roref>:<port>" from its
 * kernel command line (xl's extra=).
 *
 *   dom0:   xcross serve <domid> <bootfile> <timeout-s>
 *           shares, writes the bootstrap word to <bootfile>, waits for the
 *           guest's reply, checks it and answers.
 *   guest:  xcross guest
 *           maps the pages, checks that the read-only grant cannot be
 *           written, that wrong refs and ports are refused, replies.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>

#include "evwait.h"
#include "report.h"

#define PING "xcross-ping-from-dom0"
#define PONG "xcross-pong-from-guest"
#define ROTEXT "xcross-read-only"

static int serve(uint32_t domid, const char *bootfile, int timeout_s)
{
    xengntshr_handle *shr = xengntshr_open(NULL, 0);
    xenevtchn_handle *ev = xenevtchn_open(NULL, 0);
    uint32_t rwref = 0, roref = 0;
    xenevtchn_port_or_error_t port;
    char *rw, *ro, tmp[256];
    FILE *f;

    if (!check(shr && ev, "dom0.xcross-open", ""))
        return 1;
    rw = xengntshr_share_pages(shr, domid, 1, &rwref, 1);
    ro = xengntshr_share_pages(shr, domid, 1, &roref, 0);
    port = xenevtchn_bind_unbound_port(ev, domid);
    if (!check(rw && ro && port >= 0, "dom0.xcross-share",
               "to dom%u: rw ref %u, ro ref %u, port %d", domid, rwref, roref,
               port))
        return 1;
    strcpy(rw, PING);
    strcpy(ro, ROTEXT);
    snprintf(tmp, sizeof(tmp), "%s.tmp", bootfile);
    f = fopen(tmp, "w");
    if (!f || fprintf(f, "xcross=%u:%u:%d\n", rwref, roref, port) < 0 ||
        fclose(f) != 0 || rename(tmp, bootfile) != 0) {
        check(0, "dom0.xcross-bootfile", "%s", bootfile);
        return 1;
    }
    if (check(wait_port(ev, (evtchn_port_t)port, timeout_s * 1000,
                        false) == 0,
              "dom0.xcross-guest-notified", "")) {
        check(strcmp(rw, PONG) == 0, "dom0.xcross-guest-wrote", "'%.24s'", rw);
        check(strcmp(ro, ROTEXT) == 0, "dom0.xcross-ro-page-intact", "");
        check(xenevtchn_notify(ev, (evtchn_port_t)port) == 0,
              "dom0.xcross-notify-guest", "");
    }
    sleep(1); /* let the guest see the notification before the port closes */
    xengntshr_unshare(shr, rw, 1);
    xengntshr_unshare(shr, ro, 1);
    return report_failures != 0;
}

static int cmdline_word(const char *key, char *out, size_t len)
{
    char buf[4096], *p;
    int fd = open("/proc/cmdline", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    size_t kl = strlen(key), i = 0;

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    for (p = strtok(buf, " \n"); p; p = strtok(NULL, " \n")) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            for (p += kl + 1; *p && i + 1 < len; p++)
                out[i++] = *p;
            out[i] = 0;
            return 0;
        }
    }
    return -1;
}

static int guest(void)
{
    xengnttab_handle *tab = xengnttab_open(NULL, 0);
    xenevtchn_handle *ev = xenevtchn_open(NULL, 0);
    unsigned rwref, roref, rport;
    xenevtchn_port_or_error_t lport;
    char word[64], *rw, *ro, *bad;

    if (!check(tab && ev, "guest.xcross-open", "/dev/xen/gntdev + evtchn"))
        return 1;
    if (!check(cmdline_word("xcross", word, sizeof(word)) == 0 &&
                   sscanf(word, "%u:%u:%u", &rwref, &roref, &rport) == 3,
               "guest.xcross-bootstrap", "xcross=%s", word))
        return 1;

    rw = xengnttab_map_grant_ref(tab, 0, rwref, PROT_READ | PROT_WRITE);
    if (!check(rw != NULL, "guest.xcross-map-rw", "dom0 ref %u", rwref))
        return 1;
    check(strcmp(rw, PING) == 0, "guest.xcross-read", "'%.24s'", rw);

    errno = 0;
    ro = xengnttab_map_grant_ref(tab, 0, roref, PROT_READ | PROT_WRITE);
    check(ro == NULL, "guest.ro-grant-rw-map-refused", "dom0 ref %u", roref);
    if (ro)
        xengnttab_unmap(tab, ro, 1);
    ro = xengnttab_map_grant_ref(tab, 0, roref, PROT_READ);
    if (check(ro != NULL && strcmp(ro, ROTEXT) == 0, "guest.ro-grant-ro-map",
              "")) {
        check(write_faults(ro), "guest.ro-grant-write-faults",
              "child writing the read-only mapping");
        xengnttab_unmap(tab, ro, 1);
    }

    errno = 0;
    bad = xengnttab_map_grant_ref(tab, 0, rwref + 3000, PROT_READ);
    check(bad == NULL, "guest.bad-gref-refused", "ref %u", rwref + 3000);
    if (bad)
        xengnttab_unmap(tab, bad, 1);
    errno = 0;
    lport = xenevtchn_bind_interdomain(ev, 0, rport + 1000);
    check(lport < 0, "guest.bad-port-refused", "port %u", rport + 1000);

    lport = xenevtchn_bind_interdomain(ev, 0, rport);
    if (!check(lport >= 0, "guest.xcross-bind", "dom0 port %u -> %d", rport,
               lport))
        return 1;
    strcpy(rw, PONG);
    check(xenevtchn_notify(ev, (evtchn_port_t)lport) == 0 &&
              wait_port(ev, (evtchn_port_t)lport, 60000, false) == 0,
          "guest.xcross-evtchn-roundtrip", "");
    xengnttab_unmap(tab, rw, 1);
    return report_failures != 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 5 && strcmp(argv[1], "serve") == 0)
        return serve((uint32_t)atoi(argv[2]), argv[3], atoi(argv[4]));
    if (argc == 2 && strcmp(argv[1], "guest") == 0)
        return guest();
    fprintf(stderr, "usage: %s serve DOMID BOOTFILE TIMEOUT_S | guest\n",
            argv[0]);
    return 2;
}
