# Shared by bin/ekm and bin/ucl: find the install root and a Node.js that is new enough,
# then run the entry point compiled (dist/) if present, else from source through tsx.
. "$(dirname "$(readlink -f "$0")")/_require_node.sh"
ekm_launch() {
  entry="$1"; shift
  self=$(readlink -f "$0")
  root=$(dirname "$(dirname "$self")")
  ekm_require_node "$(basename "$0")" || exit 1
  # Compiled code is used when it is at least as new as every source file (npm run build);
  # an installed package has no src/ and always runs compiled.
  if [ -f "$root/dist/src/cli/$entry.js" ]; then
    if [ ! -d "$root/src" ] || { [ -f "$root/dist/.stamp" ] && [ -z "$(find "$root/src" "$root/package.json" -newer "$root/dist/.stamp" -print -quit)" ]; }; then
      exec node --enable-source-maps "$root/dist/src/cli/$entry.js" "$@"
    fi
  fi
  exec node --import "$root/node_modules/tsx/dist/esm/index.mjs" "$root/src/cli/$entry.ts" "$@"
}
