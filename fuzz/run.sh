#!/usr/bin/env bash
# Runs every cargo-fuzz target (or those named) for SECONDS each, one after another at the
# lowest CPU priority, then minimises each corpus and drops inputs over 64 KiB, and prints
# a table of runs, coverage, peak RSS and outcome.
#
#   fuzz/run.sh [SECONDS] [TARGET...]        # SECONDS defaults to 180
#   SKIP_BUILD=1 fuzz/run.sh ...             # run what the last `cargo fuzz build` made
#
# Everything is built once, up front (`cargo fuzz build`: release, AddressSanitizer), and
# the built binaries are run directly, so every target fuzzes the same snapshot of the
# code. Each target reads its committed corpus (fuzz/corpus/<target>/, where new inputs
# are written) and the repository's fixtures for it as seeds; crashes go to
# fuzz/artifacts/<target>/; logs and the table to fuzz/target/run/. Exits non-zero when a
# target crashed, leaked, timed out or ran out of memory.
set -euo pipefail

cd "$(dirname "$0")"
seconds=${1:-180}
shift || true
export RUSTC_BOOTSTRAP=1

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# Seeds: fixtures written from each provider's documentation and the repository's own.
seeds_for() {
    case "$1" in
        anthropic_*) echo ../dataplane/tests/fixtures/anthropic ;;
        gemini_request | gemini_response) echo ../dataplane/tests/fixtures/gemini ;;
        bedrock_request | bedrock_response) echo ../dataplane/tests/fixtures/bedrock ;;
        request_head) echo ../dataplane/tests/fixtures/anthropic ../dataplane/tests/fixtures/gemini ;;
        routing_table) echo ../dataplane/api/tests/fixtures ;;
        litellm_import) echo ../operator/tests/fixtures/litellm ;;
        json_valid) echo ../dataplane/tests/fixtures/anthropic ../dataplane/tests/fixtures/gemini ../dataplane/tests/fixtures/bedrock ;;
    esac
}

if [ -z "${SKIP_BUILD:-}" ]; then
    nice -n 19 cargo fuzz build
fi
bin_dir=target/x86_64-unknown-linux-gnu/release
log_dir=target/run
mkdir -p "$log_dir"
table="$log_dir/table.md"
{
    echo "| target | runs | coverage | corpus (files) | peak RSS | result |"
    echo "| --- | ---: | ---: | ---: | ---: | --- |"
} >"$table"

failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$log_dir/$t.log"
    echo "== $t: ${seconds}s" >&2
    # shellcheck disable=SC2046 # the seed directories are separate arguments
    if nice -n 19 "$bin_dir/$t" "corpus/$t" $(seeds_for "$t") \
        -artifact_prefix="artifacts/$t/" -max_total_time="$seconds" -rss_limit_mb=1024 \
        -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        result="no crash"
    else
        result="FAILED (see $log and artifacts/$t/)"
        failed=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    # Minimise: keep only inputs that add coverage; then drop anything over 64 KiB.
    rm -rf "corpus/$t.min"
    mkdir -p "corpus/$t.min"
    nice -n 19 "$bin_dir/$t" -merge=1 "corpus/$t.min" "corpus/$t" >>"$log" 2>&1
    rm -rf "corpus/$t"
    mv "corpus/$t.min" "corpus/$t"
    find "corpus/$t" -type f -size +64k -delete
    files=$(find "corpus/$t" -type f | wc -l)
    echo "| \`$t\` | ${runs:-?} | ${cov:-?} | $files | ${rss:-?} MB | $result |" >>"$table"
done
cat "$table"
exit "$failed"
