/* Names of device types and XenbusStates, for tools and logs. */
#include <string.h>

#include "private.h"

static const char *const type_names[NOXS_DEV_TYPE_MAX + 1] = {
    [NOXS_DEV_SYSCTL] = "sysctl",
    [NOXS_DEV_CONSOLE] = "console",
    [NOXS_DEV_BLK] = "blk",
    [NOXS_DEV_NET] = "net",
    [NOXS_DEV_LEGACY] = "legacy",
};

/* As Linux's xenbus_strstate(). */
static const char *const state_names[NOXS_STATE_MAX + 1] = {
    [NOXS_STATE_UNKNOWN] = "Unknown",
    [NOXS_STATE_INITIALISING] = "Initialising",
    [NOXS_STATE_INITWAIT] = "InitWait",
    [NOXS_STATE_INITIALISED] = "Initialised",
    [NOXS_STATE_CONNECTED] = "Connected",
    [NOXS_STATE_CLOSING] = "Closing",
    [NOXS_STATE_CLOSED] = "Closed",
    [NOXS_STATE_RECONFIGURING] = "Reconfiguring",
    [NOXS_STATE_RECONFIGURED] = "Reconfigured",
};

NOXS_EXPORT const char *noxs_type_name(unsigned int type)
{
    if (type < 1 || type > NOXS_DEV_TYPE_MAX)
        return NULL;
    return type_names[type];
}

NOXS_EXPORT unsigned int noxs_type_from_name(const char *name)
{
    if (!name)
        return 0;
    for (unsigned int t = 1; t <= NOXS_DEV_TYPE_MAX; t++)
        if (strcmp(name, type_names[t]) == 0)
            return t;
    return 0;
}

NOXS_EXPORT const char *noxs_state_name(unsigned int state)
{
    if (state > NOXS_STATE_MAX)
        return state_names[NOXS_STATE_UNKNOWN];
    return state_names[state];
}
