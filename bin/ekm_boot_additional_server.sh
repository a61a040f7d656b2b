#!/bin/sh
# Bootstrap of this server as additional, with the seed's flags; a thin wrapper over `ekm boot additional`.
exec "$(dirname "$(readlink -f "$0")")/ekm" boot additional "$@"
