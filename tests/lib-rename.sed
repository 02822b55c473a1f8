# Moves a shell test written for the libraries tests/lib.sh replaced
# (tests/integration/lib.sh, blk-lib.sh, sysctl-lib.sh,
# backend-restart-lib.sh and tests/compat/lib.sh) onto tests/lib.sh:
#
#     sed -E -i -f tests/lib-rename.sed tests/integration/NEW.sh ...
#
# (GNU sed, -E.) The whole file is read first, so that a compat test is
# told from an integration test by what it uses: a compat test sources
# tests/compat/lib-compat.sh, an integration test tests/lib.sh.
:a
N
$!ba

# ---- compat tests (tests/compat/test-*.sh) ----
/(^|\n)\. "\$\(dirname "\$0"\)\/lib\.sh"/{
/(^|\n)#!\/bin\/sh\n|\b(with_compat|compat_exec|mode_exec|xsd_start|xsd_stop|need_xen_tools|expect_compat|generic_ops|noxs_start|at_exit|wait_line|expect_eq)\b|\$\{?(WORK|COMPAT_DIR)\b/{
s/^#!\/bin\/sh\n/#!\/bin\/bash\n/
s/(^|\n)\. "\$\(dirname "\$0"\)\/lib\.sh"/\1. "$(dirname "$0")\/lib-compat.sh"/
s/(^|[\n;&|({)!]|\bthen|\belse|\bdo)([[:space:]]*)fail\b/\1\2nx_fail/g
s/(^|[\n;&|({)!]|\bthen|\belse|\bdo)([[:space:]]*)fail\b/\1\2nx_fail/g
s/(^|[\n;&|({)!]|\bthen|\belse|\bdo)([[:space:]]*)note\b/\1\2nx_log/g
s/(^|[\n;&|({)!]|\bthen|\belse|\bdo)([[:space:]]*)note\b/\1\2nx_log/g
s/\bnoxs_start\b/nx_start_noxsd/g
s/\bat_exit\b/nx_at_exit/g
s/\bwait_line\b/nx_wait_line/g
s/\bexpect_eq\b/nx_expect_eq/g
s/\$WORK\b/$NX_DIR/g
s/\$\{WORK\}/${NX_DIR}/g
s/\$BIN\b/$NX_BIN/g
s/\$\{BIN\}/${NX_BIN}/g
s/\$_noxsd\b/$NX_NOXSD/g
}
}

# ---- integration tests (tests/integration/*.sh) ----
s/(^|\n)\. "\$\(dirname "\$0"\)\/(lib|blk-lib|sysctl-lib)\.sh"/\1. "$(dirname "$0")\/..\/lib.sh"/
s/(^|\n)\. "\$\(dirname "\$0"\)\/backend-restart-lib\.sh"\n/\1/

# lib.sh: the test backend's start names its program.
s/\bnx_start_backend\b/nx_start_testbe/g

# blk-lib.sh and sysctl-lib.sh: t_* functions, T_* variables.
s/\bt_start_backend\b/nx_start_sysctl_back/g
s/\bt_has_backend\b/nx_has_backends/g
s/\bt_front\b/nx_start_sysctl_front/g
s/\bt_states_is\b/nx_dev_states_is/g
s/\bt_states\b/nx_dev_states/g
s/\bt_connected\b/nx_dev_connected/g
s/\bt_(log|fail|cleanup|wait|start_noxsd|count_gt|count|start_blk_back|start_console_back|domain|guest|spawn|alive|exit_status|dev_states_is|dev_states|backend_closed|front_connections|new_connection)\b/nx_\1/g
s/\bT_HELPERS\b/NX_TESTBIN/g
s/\bT_(BUILD|BIN|DIR|STATE|PIDS|NOXSD|BACKEND|FRONT|PID|STATUS|BLKBACK|CONSBACK|OWN_DIR)\b/NX_\1/g

# backend-restart-lib.sh: its cleanup is part of nx_cleanup now.
s/\bnx_svc_cleanup\b/nx_cleanup/g
