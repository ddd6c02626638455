#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository (crates/*/fuzz), one after the other, for
# N seconds each (default 600), and prints a summary table: target, seconds, executions,
# coverage, result. Exits 1 if any target crashed, leaked, timed out or failed to build.
#
#   tests/fuzz-all.sh            # 600 s per target
#   tests/fuzz-all.sh 60         # a quick pass
#   tests/fuzz-all.sh 600 tagbus # only targets whose "crates/<crate>/fuzz <target>" contains "tagbus"
#   tests/fuzz-all.sh 600 "config/fuzz rows"   # one target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --version 0.13.2 --locked`); on the stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks the sanitizer flags cargo-fuzz passes. Every crate's
# fuzz/ directory is its own workspace (not built by `cargo clippy --workspace`). Seeds are
# read from fuzz/corpus/<target> (committed); new inputs go to fuzz/work/<target> and crashes
# to fuzz/artifacts/<target> (both ignored by git). Builds share target/fuzz. Runs niced.
# Extra libFuzzer flags: FUZZ_FLAGS (default "-timeout=30 -rss_limit_mb=2048").
set -u -o pipefail

secs=${1:-600}
filter=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir="$root/target/fuzz"
logs="$target_dir/logs"
mkdir -p "$logs"
flags=${FUZZ_FLAGS:--timeout=30 -rss_limit_mb=2048}
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || {
    echo "cargo-fuzz not found: cargo install cargo-fuzz --version 0.13.2 --locked" >&2
    exit 2
}

summary=()
failed=0
for manifest in "$root"/crates/*/fuzz/Cargo.toml; do
    dir=$(dirname "$manifest")
    rel=${dir#"$root"/}
    for t in $(cd "$dir" && cargo fuzz list); do
        [[ -n "$filter" && "$rel $t" != *"$filter"* ]] && continue
        mkdir -p "$dir/work/$t" "$dir/corpus/$t"
        log="$logs/$(basename "$(dirname "$dir")")-$t.log"
        echo "== $rel $t: ${secs}s, log $log" >&2
        start=$(date -u +%FT%TZ)
        # shellcheck disable=SC2086
        (cd "$dir" && nice -n 10 cargo fuzz run --target-dir "$target_dir" "$t" \
            "work/$t" "corpus/$t" -- -max_total_time="$secs" $flags) >"$log" 2>&1
        rc=$?
        runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $2 " runs, " $5 " s"}')
        cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
        if [[ $rc -eq 0 ]]; then
            result=ok
        else
            result="FAILED (rc $rc): $(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|SUMMARY: [^ ]+ [^ ]+|error(\[E[0-9]+\])?: .*' "$log" || true)"
            failed=1
        fi
        summary+=("$(printf '| %s %s | %s | %s | %s | %s |' "$rel" "$t" "$start" "${runs:-?}" "${cov:-?}" "$result")")
    done
done

echo
echo "| target | started (UTC) | executions, duration | coverage | result |"
echo "|---|---|---|---|---|"
printf '%s\n' "${summary[@]}"
exit $failed
