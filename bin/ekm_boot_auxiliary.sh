#!/bin/sh
# Bootstrap of this server as aux, with the seed's flags; a thin wrapper over `ekm boot aux`.
exec "$(dirname "$(readlink -f "$0")")/ekm" boot aux "$@"
