# Sourced by bin/_launch.sh, and copied into the packages' install scripts (which run before
# /opt/ekm exists): is a Node.js >= 20.19 (package.json "engines") on PATH? Only shell builtins
# and `node` itself, so that it works with any PATH.
# ekm_node_on_path <who>: returns 0 if `node` is on PATH, or prints why not (prefixed by <who>)
# on stderr and returns 1. Shell builtins only (the launchers check the version in node itself).
ekm_node_on_path() {
  if ! command -v node >/dev/null 2>&1; then
    echo "$1: Node.js >= 20.19 is required but 'node' is not on PATH: install Node.js 20.19 or newer" >&2
    return 1
  fi
}

# ekm_require_node <who>: returns 0, or prints why not (prefixed by <who>) on stderr and returns 1.
ekm_require_node() {
  ekm_node_on_path "$1" || return 1
  node_v=$(node -p process.versions.node 2>/dev/null)
  node_major=${node_v%%.*}
  node_minor=${node_v#*.}
  node_minor=${node_minor%%.*}
  case "$node_major.$node_minor" in
    [0-9]*.[0-9]*) ;;
    *) node_major=0 node_minor=0 ;;
  esac
  if [ "$node_major" -gt 20 ] 2>/dev/null || { [ "$node_major" -eq 20 ] && [ "$node_minor" -ge 19 ]; } 2>/dev/null; then
    return 0
  fi
  echo "$1: Node.js >= 20.19 is required, found ${node_v:-an unknown version} at $(command -v node): install Node.js 20.19 or newer" >&2
  return 1
}
