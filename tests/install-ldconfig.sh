#!/bin/sh
# Stand-in for ldconfig in "make check-install": records that "make
# install" ran it (tests/install-check.sh counts the calls) and leaves
# this machine's loader cache alone. $1: the log; the rest: ldconfig's
# arguments.
log=$1
shift
echo "ldconfig $*" >>"$log"
