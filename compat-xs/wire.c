/* The XenStore wire protocol's names: errors and message types. */
#include <errno.h>
#include <string.h>

#include "wire.h"

/* The errors xenstored sends (xenstore.txt's list). */
static const struct {
    int e;
    const char *name;
} errors[] = {
    {EINVAL, "EINVAL"},
    {EACCES, "EACCES"},
    {EEXIST, "EEXIST"},
    {EISDIR, "EISDIR"},
    {ENOENT, "ENOENT"},
    {ENOMEM, "ENOMEM"},
    {ENOSPC, "ENOSPC"},
    {EIO, "EIO"},
    {ENOTEMPTY, "ENOTEMPTY"},
    {ENOSYS, "ENOSYS"},
    {EROFS, "EROFS"},
    {EBUSY, "EBUSY"},
    {EAGAIN, "EAGAIN"},
    {EISCONN, "EISCONN"},
    {E2BIG, "E2BIG"},
    {EPERM, "EPERM"},
    {ENOTDIR, "ENOTDIR"},
    {EDQUOT, "EDQUOT"},
};

static const char *const types[XSW_TYPE_COUNT] = {
    [XSW_CONTROL] = "CONTROL",
    [XSW_DIRECTORY] = "DIRECTORY",
    [XSW_READ] = "READ",
    [XSW_GET_PERMS] = "GET_PERMS",
    [XSW_WATCH] = "WATCH",
    [XSW_UNWATCH] = "UNWATCH",
    [XSW_TRANSACTION_START] = "TRANSACTION_START",
    [XSW_TRANSACTION_END] = "TRANSACTION_END",
    [XSW_INTRODUCE] = "INTRODUCE",
    [XSW_RELEASE] = "RELEASE",
    [XSW_GET_DOMAIN_PATH] = "GET_DOMAIN_PATH",
    [XSW_WRITE] = "WRITE",
    [XSW_MKDIR] = "MKDIR",
    [XSW_RM] = "RM",
    [XSW_SET_PERMS] = "SET_PERMS",
    [XSW_WATCH_EVENT] = "WATCH_EVENT",
    [XSW_ERROR] = "ERROR",
    [XSW_IS_DOMAIN_INTRODUCED] = "IS_DOMAIN_INTRODUCED",
    [XSW_RESUME] = "RESUME",
    [XSW_SET_TARGET] = "SET_TARGET",
    [XSW_RESET_WATCHES] = "RESET_WATCHES",
    [XSW_DIRECTORY_PART] = "DIRECTORY_PART",
};

const char *xsw_errno_name(int e)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].e == e)
            return errors[i].name;
    return "EINVAL";
}

int xsw_errno_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (strcmp(errors[i].name, name) == 0)
            return errors[i].e;
    return EINVAL;
}

const char *xsw_type_name(uint32_t type)
{
    return type < XSW_TYPE_COUNT && types[type] ? types[type] : "?";
}
