#!/usr/bin/env bash
# A short run of every fuzz target from its committed seeds (CI's fuzz step; see README.md).
# FUZZ_SECONDS per target (default 15). Each target reads its seeds (corpus/<target>, read only)
# and writes what it finds to a scratch corpus; a crash fails the step and leaves its input
# under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS="${FUZZ_SECONDS:-15}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/omnidesk-fuzz-target}"
started=$(date +%s)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

cargo +nightly fuzz build -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  # The WeChat replay cache keeps every fresh nonce by design (the clock is stopped), so
  # LeakSanitizer would scan the whole heap after each input: 3 runs a second instead of 2,000.
  leaks=1
  case "$target" in wechat_*) leaks=0 ;; esac
  if ! cargo +nightly fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -detect_leaks="$leaks" \
    >"$scratch/$target.log" 2>&1; then
    tail -n 60 "$scratch/$target.log"
    echo "FATAL: fuzz target $target failed; its input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$target.log" | grep -o '[0-9]*$' || true)
  echo "$target: ${execs:-?} runs in ${FUZZ_SECONDS} s"
done
echo "fuzz step: $(($(date +%s) - started)) s"
