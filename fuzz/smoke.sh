#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30), starting from the committed seeds, and
# prints per target the executions and whether anything was found. Needs a nightly toolchain;
# installs cargo-fuzz with `cargo install --locked` when missing. Without nightly it says so and
# exits 0: the seeds are still replayed on stable by `cargo test` (tests/fuzz_seeds.rs).
#
# FUZZ_BUILD=dev builds the targets unoptimised, with overflow checks and debug assertions: a
# minute less to build, ten times fewer executions a second. CI's few seconds a target use it;
# the default (optimised) is for runs of minutes.
set -uo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
case "${FUZZ_BUILD:-release}" in
    dev) build=--dev ;;
    release) build=-O ;;
    *) echo "fuzz smoke: FUZZ_BUILD is dev or release" >&2; exit 2 ;;
esac
targets=(oauth_client token revoke error session_ops users_me token_sessions)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz smoke: no nightly toolchain here; skipped (seeds are replayed by cargo test)"
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz smoke: installing cargo-fuzz"
    if ! cargo install --locked cargo-fuzz >/dev/null 2>&1; then
        echo "fuzz smoke: cargo-fuzz could not be installed; skipped"
        exit 0
    fi
fi

echo "fuzz smoke: building targets (${FUZZ_BUILD:-release})"
if ! cargo +nightly fuzz build "$build" >build.log 2>&1; then
    tail -30 build.log
    echo "fuzz smoke: the targets do not build"
    exit 1
fi

failed=0
for target in "${targets[@]}"; do
    corpus="corpus/$target"
    mkdir -p "$corpus" "artifacts/$target"
    cp -n ../tests/fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    log="artifacts/$target/smoke.log"
    cargo +nightly fuzz run "$build" "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 >"$log" 2>&1
    status=$?
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        echo "fuzz smoke: $target: ${runs:-?} executions in ${seconds}s, ${cov:-cov: ?}, nothing found"
    else
        failed=1
        echo "fuzz smoke: $target: FOUND A FAILURE after ${runs:-?} executions (exit $status); reproducer in fuzz/artifacts/$target"
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5
    fi
done
exit "$failed"
