#!/usr/bin/env bash
# Runs every bench and redraws the charts: `bash benches/regenerate.sh` from anywhere.
#
# Criterion keeps its medians in target/criterion/, hit_ratio writes target/bench-data/
# hit_ratio.csv, and the last step (benches/charts.rs) draws benches/charts/*.svg from them.
# What each bench prints (the markdown tables of memory, hit_ratio, peers_concurrency and the
# async stampede, criterion's summaries) is also kept in target/bench-data/<bench>.txt.
# hit_instructions is not run: it is read with valgrind (see its header).
set -euo pipefail
cd "$(dirname "$0")/.."

out="${CARGO_TARGET_DIR:-target}/bench-data"
mkdir -p "$out"
start=$SECONDS
step_start=$SECONDS

step() {
    echo "regenerate: $1 done in $((SECONDS - step_start)) s" | tee -a "$out/regenerate.log"
    step_start=$SECONDS
}

: >"$out/regenerate.log"

# Build everything first, so the timings below are the benches alone. The benches are the
# workspace member `memoflight-benches` (benches/Cargo.toml), a default member: plain
# `cargo bench` from the root builds them.
cargo bench --no-run
step "build"

for bench in hit_path memory hit_ratio peers peers_string peers_concurrency store_mix; do
    cargo bench --bench "$bench" 2>&1 | tee "$out/$bench.txt"
    step "$bench"
done
cargo bench --bench peers_async 2>&1 | tee "$out/peers_async.txt"
step "peers_async"

# RedisStore against cached's Redis cache; says it skipped without redis-server on PATH.
cargo bench --bench redis 2>&1 | tee "$out/redis.txt"
step "redis"
# DiskStore against cached's redb store, in the temporary directory.
cargo bench --bench disk 2>&1 | tee "$out/disk.txt"
step "disk"

cargo bench --bench charts 2>&1 | tee "$out/charts.txt"
step "charts"

echo "regenerate: everything in $((SECONDS - start)) s ($(nproc) cores)" | tee -a "$out/regenerate.log"
