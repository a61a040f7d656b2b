#!/usr/bin/env bash
# The project's test command (README, .ci/run): build, unit tests, then cluster tests on real processes.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
mapfile -t api < <(find test/api -name '*.test.ts' 2>/dev/null | sort)
mapfile -t cluster < <(find test/cluster -name '*.test.ts' 2>/dev/null | sort)
mapfile -t faults < <(find test/faults -name '*.test.ts' 2>/dev/null | sort)
if [ "${#unit[@]}" -eq 0 ]; then echo "test/run.sh: no unit test files found" >&2; exit 1; fi
# The issue's full sample: 1,000 random keys × signatures per curve and mode, each verified by
# node:crypto / noble (set EKM_PROTOCOL_SAMPLES lower for a quick local run).
export EKM_PROTOCOL_SAMPLES="${EKM_PROTOCOL_SAMPLES:-1000}"
node --import tsx --test --test-concurrency=2 "${unit[@]}"
# Every API route, success and refusal, on a triplet each file starts in its own process (seconds, not minutes).
if [ "${#api[@]}" -gt 0 ]; then
  node --import tsx --test --test-concurrency=2 "${api[@]}"
fi
if [ "${#cluster[@]}" -gt 0 ]; then
  node --import tsx --test --test-concurrency=1 "${cluster[@]}"
fi
# The fault suite (issue 9): its CI subset here (a few minutes); `npm run test:faults` runs the full matrix.
if [ "${#faults[@]}" -gt 0 ]; then
  EKM_FAULTS_SCOPE="${EKM_FAULTS_SCOPE:-ci}" node --import tsx --test --test-concurrency=1 "${faults[@]}"
fi
