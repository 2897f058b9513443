#!/usr/bin/env bash
# The release data plane built with profile-guided optimisation (PGO), in one command:
#
#   tests/load/pgo.sh
#
# 1. builds `modelgate-operator` and `modelgate-dataplane` instrumented
#    (`-Cprofile-generate`), and the load harness's `fast-upstream` and `loadgen` as usual;
# 2. trains them: the instrumented `modelgate-operator local` (compiler + data plane in one
#    process, as the load benchmark runs it) and `modelgate-dataplane --table-file` (as it
#    runs in a pod) each serve, in front of `fast-upstream`, chat completions at 64, 16 and 1
#    connections, streamed chat completions (SSE, chunked) at 16, and an 8 KiB prompt, plus
#    the model list, the health endpoints and the metrics scrape;
# 3. merges the profiles with the `llvm-profdata` of rustc's own LLVM version;
# 4. builds both again with the profile (`-Cprofile-use`) and copies them to OUT.
#
# The profile is made from the same sources in the same run, so it is never stale. PGO
# lays out the hot paths together and the cold ones apart: the proxy's instruction-cache
# misses and instructions per request both drop (BENCHMARKS.md). The images' data plane
# (dataplane/Dockerfile) and the load benchmark (tests/load/run.sh) are built this way;
# `cargo build --release` stays a plain optimised build.
#
# llvm-profdata: $LLVM_PROFDATA, else rustup's `llvm-tools` component, else Debian's
# `llvm-<major>` (installed here when missing and apt-get is there). The instrumented and
# optimised builds use their own target directories under <target dir>/pgo/ (RUSTFLAGS
# differ, so they would otherwise rebuild the plain ones).
#
# Settings (environment): OUT (<target dir>/pgo/bin), PORT_BASE (18680: four ports from it),
# TRAIN_SECONDS (3 per run).
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/load/bench-manifest.sh
source tests/load/bench-manifest.sh

PORT_BASE=${PORT_BASE:-18680}
TRAIN_SECONDS=${TRAIN_SECONDS:-3}

step() { printf '\n==> pgo: %s\n' "$*" >&2; }
die() {
    echo "pgo: $*" >&2
    exit 1
}

target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || die "cannot find cargo's target directory"
pgo="$target_dir/pgo"
OUT=${OUT:-$pgo/bin}
bin="$target_dir/release"

# ---- llvm-profdata, of rustc's LLVM major version ---------------------------------------
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[ -n "$llvm_major" ] || die "cannot read rustc's LLVM version (rustc -vV)"
find_profdata() {
    local host candidate
    if [ -n "${LLVM_PROFDATA:-}" ]; then
        echo "$LLVM_PROFDATA"
        return
    fi
    host=$(rustc -vV | sed -n 's/^host: //p')
    for candidate in "$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata" \
        "/usr/lib/llvm-$llvm_major/bin/llvm-profdata" \
        "$(command -v "llvm-profdata-$llvm_major" || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then
            echo "$candidate"
            return
        fi
    done
}
profdata=$(find_profdata)
if [ -z "$profdata" ] && command -v apt-get >/dev/null 2>&1; then
    step "apt-get install llvm-$llvm_major (llvm-profdata for rustc's LLVM $llvm_major)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "llvm-$llvm_major" >/dev/null
    profdata=$(find_profdata)
fi
[ -n "$profdata" ] || die "no llvm-profdata for LLVM $llvm_major: set LLVM_PROFDATA, or \
run 'rustup component add llvm-tools', or install Debian's llvm-$llvm_major"
"$profdata" merge --help >/dev/null 2>&1 || die "$profdata does not run"

# ---- builds -------------------------------------------------------------------------------
packages=(-p modelgate-operator -p modelgate-dataplane)
step "cargo build --release (fast-upstream, loadgen)"
cargo build --release --locked -p modelgate-tests --bin fast-upstream --bin loadgen

rm -rf "$pgo/raw" "$pgo/build-raw" "$pgo/train"
mkdir -p "$pgo/raw" "$pgo/build-raw" "$pgo/train/manifests" "$OUT"
step "cargo build --release, instrumented"
# Build scripts and proc macros are instrumented too (RUSTFLAGS reach them); what they
# write while the build runs them goes aside, not into the training profile.
LLVM_PROFILE_FILE="$pgo/build-raw/%p-%m.profraw" \
    RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$pgo/raw" CARGO_TARGET_DIR="$pgo/instrumented" \
    cargo build --release --locked "${packages[@]}"
gen="$pgo/instrumented/release"

# ---- training -----------------------------------------------------------------------------
work="$pgo/train"
p_upstream=$PORT_BASE
p_public=$((PORT_BASE + 1))
p_admin=$((PORT_BASE + 2))
p_metrics=$((PORT_BASE + 3))
if command -v ss >/dev/null 2>&1; then
    for p in $p_upstream $p_public $p_admin $p_metrics; do
        [ -z "$(ss -ltnH "sport = :$p")" ] || die "port $p is taken (set PORT_BASE)"
    done
fi
command -v curl >/dev/null 2>&1 || die "curl is needed"

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# stop_gracefully PID SIGNAL: the profile is written when the process exits normally.
stop_gracefully() {
    local pid=$1 signal=$2 n
    kill "-$signal" "$pid" 2>/dev/null || true
    for n in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && die "pid $pid did not stop on SIG$signal"
    wait "$pid" 2>/dev/null || true
}

wait_ready() {
    local url=$1 pid=$2 i
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || die "a training process exited during startup (logs: $work)"
        if curl -sf -o /dev/null -m 2 -X POST -H 'content-type: application/json' \
            -d '{"model":"bench","messages":[{"role":"user","content":"hi"}]}' "$url"; then
            return 0
        fi
        sleep 0.1
    done
    die "not ready within 30s: $url (logs: $work)"
}

# train LABEL: the workload, against the data plane on $p_public.
train() {
    local label=$1 url="http://127.0.0.1:$p_public/v1/chat/completions" big
    big=$(head -c 8192 /dev/zero | tr '\0' 'a')
    "$bin/loadgen" --url "$url" -c 64 -d "$TRAIN_SECONDS" --warmup 0 >"$work/$label-64.json"
    "$bin/loadgen" --url "$url" -c 16 -d "$TRAIN_SECONDS" --warmup 0 >"$work/$label-16.json"
    "$bin/loadgen" --url "$url" -c 1 -d "$TRAIN_SECONDS" --warmup 0 >"$work/$label-1.json"
    "$bin/loadgen" --url "$url" -c 16 -d "$TRAIN_SECONDS" --warmup 0 \
        --body '{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}' \
        >"$work/$label-stream.json"
    "$bin/loadgen" --url "$url" -c 16 -d "$TRAIN_SECONDS" --warmup 0 \
        --body "{\"model\":\"bench\",\"messages\":[{\"role\":\"user\",\"content\":\"$big\"}]}" \
        >"$work/$label-big.json"
    for path in v1/models v1/models/bench health health/readiness health/liveliness; do
        curl -sf -o /dev/null -m 5 "http://127.0.0.1:$p_public/$path" ||
            die "GET /$path failed during training ($label)"
    done
    curl -sf -o /dev/null -m 5 "http://127.0.0.1:$p_metrics/metrics" ||
        die "the metrics scrape failed during training ($label)"
    local run
    for run in "$work/$label"-*.json; do
        grep -q '"errors":0' "$run" || die "training requests failed ($run)"
    done
}

"$bin/fast-upstream" --listen "127.0.0.1:$p_upstream" >"$work/upstream.log" 2>&1 &
pids+=($!)
bench_manifest "$work/manifests/bench.yaml" "127.0.0.1:$p_upstream"

step "training modelgate-operator local"
LLVM_PROFILE_FILE="$pgo/raw/operator-%p-%m.profraw" MODELGATE_LOG=warn \
    "$gen/modelgate-operator" local -f "$work/manifests" --listen "127.0.0.1:$p_public" \
    --metrics-listen "127.0.0.1:$p_metrics" >"$work/operator-local.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_ready "http://127.0.0.1:$p_public/v1/chat/completions" "$pid"
train operator-local
stop_gracefully "$pid" INT

step "training modelgate-dataplane --table-file"
LLVM_PROFILE_FILE="$pgo/build-raw/check-%p-%m.profraw" \
    "$gen/modelgate-operator" check -f "$work/manifests" --print-table >"$work/table.json"
LLVM_PROFILE_FILE="$pgo/raw/dataplane-%p-%m.profraw" MODELGATE_LOG=warn \
    "$gen/modelgate-dataplane" --table-file "$work/table.json" \
    --listen "127.0.0.1:$p_public" --admin-listen "127.0.0.1:$p_admin" \
    --metrics-listen "127.0.0.1:$p_metrics" >"$work/dataplane.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_ready "http://127.0.0.1:$p_public/v1/chat/completions" "$pid"
train dataplane
stop_gracefully "$pid" TERM

ls "$pgo"/raw/operator-*.profraw "$pgo"/raw/dataplane-*.profraw >/dev/null 2>&1 ||
    die "the training wrote no profile (logs: $work)"
step "llvm-profdata merge ($profdata)"
"$profdata" merge -o "$pgo/modelgate.profdata" "$pgo"/raw/*.profraw

# ---- the optimised build ------------------------------------------------------------------
step "cargo build --release, with the profile"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$pgo/modelgate.profdata" \
    CARGO_TARGET_DIR="$pgo/optimised" cargo build --release --locked "${packages[@]}"
for b in modelgate-operator modelgate-dataplane; do
    install -m 0755 "$pgo/optimised/release/$b" "$OUT/$b"
done
step "done: $OUT/modelgate-operator, $OUT/modelgate-dataplane"
