#!/bin/sh
# Bootstrap of this server as ep, with the seed's flags; a thin wrapper over `ekm boot ep`.
exec "$(dirname "$(readlink -f "$0")")/ekm" boot ep "$@"
