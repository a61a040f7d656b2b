#!/usr/bin/env bash
# The project's test command, in two tiers (README, "Development"):
#
#   bash test/run.sh        `npm test`, what .ci/run calls: unit and API tests, a representative
#                           set of real-triplet cluster tests and the fault suite's CI subset;
#                           about 10 minutes on a 2-core machine.
#   bash test/run.sh full   `npm run test:full`, before a release and before resolving any protocol
#                           change: the unit tests with 1,000 protocol samples per curve and mode,
#                           every real-triplet cluster test and the full fault matrix (about 37 minutes).
#
# Every file is named here: a test file that is in no list fails the run, so none is forgotten.
set -euo pipefail
cd "$(dirname "$0")/.."

tier="${1:-quick}"
case "$tier" in
  quick | full) ;;
  *) echo "test/run.sh: the tier is quick or full, not \"$tier\"" >&2; exit 2 ;;
esac

# Real-triplet cluster tests in the quick tier: the seed's procedures end to end (bootstrap, the
# service script, ucl server test, keys of every family through the API and ucl, bad input, accounts,
# backup and restore, the trust and version checks, and the upgrade fixture of sealed AES objects).
quick_cluster=(
  test/cluster/triplet.test.ts
  test/cluster/service-script.test.ts
  test/cluster/trust.test.ts
  test/cluster/versions.test.ts
  test/cluster/keys.test.ts
  test/cluster/rsa-aes.test.ts
  test/cluster/aes-format-1.test.ts
  test/cluster/ucl-keys.test.ts
  test/cluster/bad-input.test.ts
  test/cluster/accounts.test.ts
  test/cluster/backup.test.ts
  test/cluster/settings.test.ts
)
# Only in the full tier: the slowest triplets (scale-out's two triplets on PostgreSQL, the packaged
# release, an upgrade from the last release, replacing an Aux, key lifecycles over days of faked
# time, a PostgreSQL triplet, backup and restore of two triplets on PostgreSQL). Each repeats paths
# the quick set and the fault subset already cross.
full_only_cluster=(
  test/cluster/key-lifecycle.test.ts
  test/cluster/package.test.ts
  test/cluster/postgres-backup.test.ts
  test/cluster/postgres-triplet.test.ts
  test/cluster/replace-aux.test.ts
  test/cluster/scale-out.test.ts
  test/cluster/upgrade.test.ts
)
faults=(
  test/faults/crash.test.ts
  test/faults/clock.test.ts
  test/faults/aux-replace.test.ts
  test/faults/scale-out.test.ts
)
# The fault suite's scope: `ci` (test/faults/matrix.ts marks its scenarios) or `full`.
quick_faults=(test/faults/crash.test.ts)

mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
mapfile -t api < <(find test/api -name '*.test.ts' 2>/dev/null | sort)
if [ "${#unit[@]}" -eq 0 ]; then echo "test/run.sh: no unit test files found" >&2; exit 1; fi

# A cluster or fault test file that is in no list would silently never run.
listed=" ${quick_cluster[*]} ${full_only_cluster[*]} ${faults[*]} "
for f in $(find test/cluster test/faults -name '*.test.ts' | sort); do
  case "$listed" in
    *" $f "*) ;;
    *) echo "test/run.sh: $f is in no test list: add it to quick_cluster, full_only_cluster or faults" >&2; exit 1 ;;
  esac
done

npm run --silent build

if [ "$tier" = full ]; then
  # 1,000 random keys × signatures per curve and mode, each verified by node:crypto / noble.
  export EKM_PROTOCOL_SAMPLES="${EKM_PROTOCOL_SAMPLES:-1000}"
  export EKM_FAULTS_SCOPE="${EKM_FAULTS_SCOPE:-full}"
  # The API fuzzer (test/api/fuzz.test.ts): 3,000 requests instead of the quick tier's 500.
  export EKM_FUZZ_RUNS="${EKM_FUZZ_RUNS:-3000}"
  cluster=("${quick_cluster[@]}" "${full_only_cluster[@]}")
  fault_files=("${faults[@]}")
else
  export EKM_FAULTS_SCOPE="${EKM_FAULTS_SCOPE:-ci}"
  cluster=("${quick_cluster[@]}")
  fault_files=("${quick_faults[@]}")
fi

node --import tsx --test --test-concurrency=2 "${unit[@]}"
if [ "${#api[@]}" -gt 0 ]; then
  # Each API test file starts its own three servers in-process (test/support/api-triplet.ts).
  node --import tsx --test --test-concurrency=2 "${api[@]}"
fi
# Two triplets at a time: each file boots its own on free ports and homes, and a triplet mostly
# waits on its peers, so two share the 2 cores without timing out.
node --import tsx --test --test-concurrency=2 "${cluster[@]}"
# The fault suite kills servers on purpose and measures recovery: one file at a time.
node --import tsx --test --test-concurrency=1 "${fault_files[@]}"
