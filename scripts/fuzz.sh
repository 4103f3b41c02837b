#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for SECONDS each (default 60), on a copy of the
# committed seed corpus so that the repository's corpus does not grow; prints each target's
# executions. Stable toolchain, no sanitizer (-s none): libFuzzer's coverage guidance and the
# targets' own assertions. A crash leaves its input under fuzz/artifacts/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
cargo fuzz build -s none -O
for target in frame index readv segment; do
  work="$(mktemp -d)"
  cp -r "corpus/$target/." "$work/"
  log="$work.log"
  if ! cargo fuzz run -s none -O "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $target FAILED (input under fuzz/artifacts/$target)"
    exit 1
  fi
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  echo "fuzz: $target ok, $execs executions in ${seconds} s, corpus $(ls "$work" | wc -l) inputs"
  rm -rf "$work" "$log"
done
