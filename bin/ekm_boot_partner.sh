#!/bin/sh
# Bootstrap of this server as partner, with the seed's flags; a thin wrapper over `ekm boot partner`.
exec "$(dirname "$(readlink -f "$0")")/ekm" boot partner "$@"
