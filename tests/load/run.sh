#!/usr/bin/env bash
# The load benchmark (BENCHMARKS.md, "Data plane: load benchmark"), in one command:
#
#   tests/load/run.sh
#
# Builds the release binaries (Modelgate's with profile-guided optimisation, as the images
# ship it: tests/load/pgo.sh), installs nginx (Debian package) when missing, starts a fast
# mock upstream (`fast-upstream`), nginx as a plain reverse proxy in front of it, and the
# Modelgate data plane (`modelgate-operator local` on a one-deployment manifest pointing at
# the same upstream), then measures with `loadgen`, in the same run:
# - saturation (closed loop) at 1, 16 and 64 connections against the upstream directly,
#   nginx and Modelgate, in ROUNDS interleaved rounds: requests/s, p50, p99, and the CPU
#   each request cost the server;
# - a fixed rate (open loop, 2000 req/s over 64 connections) against all three;
# - saturation at 64 connections with an 8 KiB prompt (the per-byte cost of the proxy);
# - Modelgate's memory with a 10,000-deployment fleet loaded, both as `operator local`
#   (compiler + data plane in one process) and as the `modelgate-dataplane` binary fed the
#   compiled table (`--table-file`), as it runs in a pod, at start and after 8 table pushes;
# and prints the Markdown tables (requests/s, latency, ratios and added latency against
# direct and against nginx, the targets) that go into BENCHMARKS.md.
#
# CPU layout (LAYOUT=split, the default, on a 2-CPU machine):
#   CPU 0: loadgen (one runtime thread) + fast-upstream (one runtime thread)
#   CPU 1: the proxy under test, alone — nginx with 1 worker process, or Modelgate, whose
#          runtime sizes itself from the CPUs it may use (one: a current-thread runtime)
# Each proxy gets one whole core and the same neighbours, so the comparison is per core.
# LAYOUT=float pins nothing (nginx `worker_processes auto`, Modelgate 2 runtime threads):
# everything competes for both CPUs, as on a busy node.
#
# Settings (environment): DURATION (s per measured run, 10), WARMUP (s before each, 1),
# LEVELS ("1 16 64"), RATE (2000), RATE_CONNS (64), BIG_BODY_KB (8: one more saturation
# run at 64 connections with a prompt that size; 0: none), DEPLOYMENTS (10000), PORT_BASE
# (18080: six ports from it), LAYOUT (split|float), ROUNDS (3: each saturation run is
# repeated, the targets interleaved, and the report gives the medians and, at 64
# connections, the ratio to nginx in each round), PGO (1: Modelgate built by
# tests/load/pgo.sh; 0: a plain `cargo build --release`), SKIP_BUILD=1, SKIP_RSS=1.
# Output: the report on stdout; results.jsonl, report.md and every log in
# <target dir>/load-bench/. Everything listens on 127.0.0.1; every process started here is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/load/nginx-conf.sh
source tests/load/nginx-conf.sh
# shellcheck source=tests/load/bench-manifest.sh
source tests/load/bench-manifest.sh

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
LEVELS=${LEVELS:-"1 16 64"}
RATE=${RATE:-2000}
RATE_CONNS=${RATE_CONNS:-64}
BIG_BODY_KB=${BIG_BODY_KB:-8}
DEPLOYMENTS=${DEPLOYMENTS:-10000}
PORT_BASE=${PORT_BASE:-18080}
LAYOUT=${LAYOUT:-split}
ROUNDS=${ROUNDS:-3}
PGO=${PGO:-1}

step() { printf '\n==> %s\n' "$*" >&2; }
die() {
    echo "load benchmark: $*" >&2
    exit 1
}

p_upstream=$PORT_BASE
p_modelgate=$((PORT_BASE + 1))
p_nginx=$((PORT_BASE + 2))
p_metrics=$((PORT_BASE + 3))
p_fleet=$((PORT_BASE + 4))
p_fleet_admin=$((PORT_BASE + 5))

cpus=$(nproc)
case $LAYOUT in
    split)
        if [ "$cpus" -lt 2 ]; then
            echo "only $cpus CPU: LAYOUT=split needs 2, using LAYOUT=float" >&2
            LAYOUT=float
        fi
        ;;
    float) ;;
    *) die "LAYOUT must be split or float" ;;
esac
if [ "$LAYOUT" = split ]; then
    cpu_client=0     # loadgen + fast-upstream
    cpu_proxy=1      # nginx or Modelgate
    nginx_workers=1
else
    cpu_client=""
    cpu_proxy=""
    nginx_workers=auto
fi

# Runs "$@" pinned to the CPUs in $1 (nothing pinned when empty).
pin() {
    local set=$1
    shift
    if [ -n "$set" ]; then
        taskset -c "$set" "$@"
    else
        "$@"
    fi
}

# ---- processes: started in the background, all stopped on exit --------------------------
pids=()
cleanup() {
    local pid n
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for n in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    pids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CPUS CMD...: starts CMD in the background (log in $work/NAME.log); sets
# $started to its pid (taskset execs the command, so the pid is the command's own).
start() {
    local name=$1 set=$2
    shift 2
    if [ -n "$set" ]; then
        taskset -c "$set" "$@" >"$work/$name.log" 2>&1 &
    else
        "$@" >"$work/$name.log" 2>&1 &
    fi
    started=$!
    pids+=("$started")
}

# stop PID: stops one process started here.
stop() {
    local pid=$1 n keep=()
    kill -TERM "$pid" 2>/dev/null || true
    for n in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for n in "${pids[@]}"; do
        [ "$n" = "$pid" ] || keep+=("$n")
    done
    pids=("${keep[@]}")
}

# wait_ready NAME PID URL [MODEL] [SECONDS]: waits (bounded) until a chat completion for MODEL
# at URL answers 200.
wait_ready() {
    local name=$1 pid=$2 url=$3 model=${4:-bench} limit=${5:-30} i
    for i in $(seq 1 $((limit * 10))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -20 "$work/$name.log" >&2 || true
            die "$name exited during startup (log: $work/$name.log)"
        fi
        if curl -sf -o /dev/null -m 2 -X POST -H 'content-type: application/json' \
            -d "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" "$url"; then
            return 0
        fi
        sleep 0.1
    done
    tail -20 "$work/$name.log" >&2 || true
    die "$name not ready within ${limit}s (log: $work/$name.log)"
}

# cpu_busy SECONDS: how busy all CPUs were over the next SECONDS, in percent (from
# /proc/stat) — taken while this benchmark's processes are idle, it is the machine's
# background load.
cpu_busy() {
    local a b
    a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5}' /proc/stat)
    sleep "$1"
    b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5}' /proc/stat)
    echo "$a $b" | awk '{busy = $3 - $1; idle = $4 - $2; printf "%.0f", 100 * busy / (busy + idle)}'
}

port_free() {
    [ -z "$(ss -ltnH "sport = :$1" 2>/dev/null)" ]
}

# rss_of PID LABEL: one `{"kind":"rss"}` line for the report.
rss_of() {
    local pid=$1 label=$2 rss hwm
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    printf '{"kind":"rss","label":"%s","deployments":%d,"rss_kib":%d,"hwm_kib":%d}\n' \
        "$label" "$DEPLOYMENTS" "$rss" "$hwm"
}

# ---- build and tools --------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    step "cargo build --release (loadgen, fast-upstream, load-report)"
    cargo build --release --locked -p modelgate-tests --bins
    if [ "$PGO" = 1 ]; then
        step "tests/load/pgo.sh (operator and data plane, profile-guided)"
        tests/load/pgo.sh
    else
        step "cargo build --release (operator, data plane)"
        cargo build --release --locked -p modelgate-operator -p modelgate-dataplane
    fi
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target_dir" ] || die "cannot find cargo's target directory"
bin="$target_dir/release"
if [ "$PGO" = 1 ]; then
    mg_bin="$target_dir/pgo/bin"
    mg_build="profile-guided (tests/load/pgo.sh)"
else
    mg_bin="$bin"
    mg_build="plain release (PGO=0)"
fi
for b in "$bin/loadgen" "$bin/fast-upstream" "$bin/load-report" \
    "$mg_bin/modelgate-operator" "$mg_bin/modelgate-dataplane"; do
    [ -x "$b" ] || die "$b is missing (run without SKIP_BUILD)"
done

PATH="$PATH:/usr/sbin:/sbin"
if ! command -v nginx >/dev/null 2>&1; then
    step "apt-get install nginx"
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null
fi
for tool in curl taskset ss awk pgrep; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done

work="$target_dir/load-bench"
rm -rf "$work"
mkdir -p "$work"
results="$work/results.jsonl"
: >"$results"
for p in $p_upstream $p_modelgate $p_nginx $p_metrics $p_fleet $p_fleet_admin; do
    port_free "$p" || die "port $p is taken (set PORT_BASE)"
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy_before=$(cpu_busy 3)
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# ---- the servers --------------------------------------------------------------------------
step "starting fast-upstream :$p_upstream, nginx :$p_nginx, Modelgate :$p_modelgate (layout $LAYOUT)"
start upstream "$cpu_client" "$bin/fast-upstream" --listen "127.0.0.1:$p_upstream"
pid_upstream=$started
wait_ready upstream "$pid_upstream" "http://127.0.0.1:$p_upstream/v1/chat/completions"

nginx_conf "$work/nginx" "$nginx_workers" "127.0.0.1:$p_upstream" "127.0.0.1:$p_nginx" on
start nginx "$cpu_proxy" nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e stderr
pid_nginx=$started
wait_ready nginx "$pid_nginx" "http://127.0.0.1:$p_nginx/v1/chat/completions"
# The master only supervises; the workers (its children) do the work.
nginx_pids="$pid_nginx $(pgrep -P "$pid_nginx" | tr '\n' ' ')"

bench_manifest "$work/manifests/bench.yaml" "127.0.0.1:$p_upstream"
metrics_flag=()
if "$mg_bin/modelgate-operator" local --help | grep -q -- --metrics-listen; then
    # Metrics on, as in a pod: every request is counted and timed.
    metrics_flag=(--metrics-listen "127.0.0.1:$p_metrics")
fi
MODELGATE_LOG=warn start modelgate "$cpu_proxy" "$mg_bin/modelgate-operator" local \
    -f "$work/manifests" --listen "127.0.0.1:$p_modelgate" "${metrics_flag[@]}"
pid_modelgate=$started
wait_ready modelgate "$pid_modelgate" "http://127.0.0.1:$p_modelgate/v1/chat/completions"

# ---- the runs -----------------------------------------------------------------------------
# measure LABEL URL CONNECTIONS [RATE] [BODY]: one loadgen run, appended to results.jsonl.
measure() {
    local label=$1 url=$2 conns=$3 rate=${4:-} body=${5:-} watch=() line
    case $label in
        direct) watch=(--watch-pid "$pid_upstream") ;;
        nginx) for p in $nginx_pids; do watch+=(--watch-pid "$p"); done ;;
        modelgate) watch=(--watch-pid "$pid_modelgate") ;;
    esac
    # The benchmark's other processes: not counted as noise. The upstream's CPU per
    # request is the yardstick each proxy's is divided by (the machine's speed drifts).
    watch+=(--upstream-pid "$pid_upstream")
    for p in $nginx_pids $pid_modelgate; do
        watch+=(--bench-pid "$p")
    done
    local args=(--url "$url" -c "$conns" -d "$DURATION" --warmup "$WARMUP" --label "$label" "${watch[@]}")
    if [ -n "$rate" ]; then
        args+=(--rate "$rate")
    fi
    if [ -n "$body" ]; then
        args+=(--body "$body")
    fi
    if ! line=$(pin "$cpu_client" "$bin/loadgen" "${args[@]}" 2>>"$work/loadgen.log"); then
        echo "$line" >>"$work/loadgen.log"
        die "loadgen failed against $label (log: $work/loadgen.log)"
    fi
    echo "$line" >>"$results"
    # A progress line: the few fields that matter.
    printf '%-10s c=%-3s %-11s %s\n' "$label" "$conns" "${rate:+rate=$rate}${body:+big body}" \
        "$(echo "$line" | grep -oE '"(rps|p50_us|p99_us|errors|watched_busy_pct|other_cpu_pct)":[0-9.]+' | tr '\n' ' ')" >&2
}

declare -A url=(
    [direct]="http://127.0.0.1:$p_upstream/v1/chat/completions"
    [nginx]="http://127.0.0.1:$p_nginx/v1/chat/completions"
    [modelgate]="http://127.0.0.1:$p_modelgate/v1/chat/completions"
)
targets=(direct nginx modelgate)

step "saturation: ${DURATION}s per run after ${WARMUP}s of warm-up, connections: $LEVELS, $ROUNDS round(s)"
# Rounds interleave the targets (direct, nginx, Modelgate, then again), so a slow spell
# of the machine falls on all of them; the report takes each figure's median.
for _ in $(seq "$ROUNDS"); do
    for c in $LEVELS; do
        for t in "${targets[@]}"; do
            measure "$t" "${url[$t]}" "$c"
        done
    done
done

step "fixed rate: $RATE req/s over $RATE_CONNS connections"
for t in "${targets[@]}"; do
    measure "$t" "${url[$t]}" "$RATE_CONNS" "$RATE"
done

if [ "$BIG_BODY_KB" -gt 0 ]; then
    # A realistic prompt instead of a one-word one: what the proxy does per byte of body.
    step "saturation with a ${BIG_BODY_KB} KiB prompt, 64 connections"
    filler=$(printf 'lorem ipsum dolor sit amet %.0s' $(seq 1 $((BIG_BODY_KB * 1024 / 27))))
    big_body="{\"model\":\"bench\",\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"Summarise: $filler\"}],\"max_tokens\":256,\"temperature\":0.2}"
    for _ in $(seq "$ROUNDS"); do
        for t in "${targets[@]}"; do
            measure "$t" "${url[$t]}" 64 "" "$big_body"
        done
    done
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
busy_after=$(cpu_busy 3)

# ---- memory with a large fleet ------------------------------------------------------------
if [ "${SKIP_RSS:-0}" != 1 ]; then
    step "memory: $DEPLOYMENTS deployments"
    stop "$pid_modelgate"
    stop "$pid_nginx"
    mkdir -p "$work/fleet"
    tests/load/gen-manifest.sh "$DEPLOYMENTS" "http://127.0.0.1:$p_upstream/v1" \
        >"$work/fleet/deployments.yaml"
    last_model=$(printf 'model-%05d' $(((DEPLOYMENTS - 1) / 5)))

    # settle NAME PID URL: health checks' first round (spread over 5 s), then traffic to a
    # few groups, then the memory figure.
    settle() {
        local name=$1 pid=$2 base=$3 m
        sleep 7
        for m in model-00000 "$last_model"; do
            pin "$cpu_client" "$bin/loadgen" --url "$base/v1/chat/completions" --model "$m" \
                -c 16 -d 2 --warmup 0.5 --label "$name" >>"$work/fleet-loadgen.log" \
                2>&1 || die "traffic to $name failed (log: $work/fleet-loadgen.log)"
        done
    }

    # 1. `operator local`: compiler and data plane in one process, as a user runs it.
    MODELGATE_LOG=warn start fleet-local "$cpu_proxy" "$mg_bin/modelgate-operator" local \
        -f "$work/fleet" --listen "127.0.0.1:$p_fleet"
    pid=$started
    wait_ready fleet-local "$pid" "http://127.0.0.1:$p_fleet/v1/chat/completions" model-00000 120
    settle fleet-local "$pid" "http://127.0.0.1:$p_fleet"
    rss_of "$pid" "modelgate-operator local" >>"$results"
    stop "$pid"

    # 2. The data plane binary on the compiled table, as in a pod (the table holds no
    # credentials, so the redacted print is the whole table).
    "$mg_bin/modelgate-operator" check -f "$work/fleet" --print-table 2>"$work/check.log" |
        sed -n '/^{/,$p' >"$work/fleet-table.json" || die "check failed (log: $work/check.log)"
    [ -s "$work/fleet-table.json" ] || die "no table printed (log: $work/check.log)"
    dp_metrics=()
    if "$mg_bin/modelgate-dataplane" --help | grep -q -- --metrics-listen; then
        dp_metrics=(--metrics-listen "127.0.0.1:$p_metrics")
    fi
    echo "load-bench-token" >"$work/admin-token"
    MODELGATE_LOG=warn start fleet-dataplane "$cpu_proxy" "$mg_bin/modelgate-dataplane" \
        --table-file "$work/fleet-table.json" --listen "127.0.0.1:$p_fleet" \
        --admin-listen "127.0.0.1:$p_fleet_admin" --admin-token-file "$work/admin-token" \
        "${dp_metrics[@]}"
    pid=$started
    wait_ready fleet-dataplane "$pid" "http://127.0.0.1:$p_fleet/v1/chat/completions" model-00000 120
    settle fleet-dataplane "$pid" "http://127.0.0.1:$p_fleet"
    rss_of "$pid" "modelgate-dataplane --table-file" >>"$results"
    # 3. The same process after 8 pushes of the table under later revisions, one a second
    # (each a whole swap: decode, new router, health checks restarted), 30 s later (the
    # allocator returns freed pages over about that time).
    for i in 2 3 4 5 6 7 8 9; do
        sed "0,/\"revision\": [0-9]*/s//\"revision\": $i/" "$work/fleet-table.json" | gzip -c |
            curl -sf -X PUT --data-binary @- -H "Authorization: Bearer load-bench-token" \
                "http://127.0.0.1:$p_fleet_admin/v1/routing-table" >/dev/null ||
            die "push $i to fleet-dataplane failed"
        sleep 1
    done
    sleep 30
    rss_of "$pid" "modelgate-dataplane --table-file, after 8 pushes" >>"$results"
    stop "$pid"
fi

# ---- the report ---------------------------------------------------------------------------
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- dataplane operator 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes in dataplane/ or operator/"
fi
{
    echo "Load benchmark, $started_at, $(nproc) CPUs ($cpu_model), nginx $(nginx -v 2>&1 | sed 's|.*/||'), commit $commit, Modelgate build: $mg_build"
    echo "Layout: $LAYOUT$([ "$LAYOUT" = split ] && echo " (CPU 0: loadgen + fast-upstream; CPU 1: the proxy; nginx 1 worker, Modelgate 1 runtime thread)"); ${DURATION}s per run after ${WARMUP}s warm-up; saturation runs: $ROUNDS interleaved round(s)"
    echo "Machine load: load average (1/5/15 min) $load_before before, $load_after after the latency runs; background CPU use (3 s, all CPUs, benchmark idle) ${busy_before}% before, ${busy_after}% after"
    "$bin/load-report" "$results"
} | tee "$work/report.md"
echo "(results: $results; report: $work/report.md; logs: $work/)" >&2
