#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 300) each, corpora seeded from the legacy
# fixtures. cargo-fuzz needs nightly features; on the stable toolchain RUSTC_BOOTSTRAP=1
# enables them. Crashes land in fuzz/artifacts/<target>/; keep each as a regression test.
#   cargo install cargo-fuzz && fuzz/run.sh 300
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
fixtures=../tests/fixtures/legacy
export RUSTC_BOOTSTRAP=1
seed() {
    local dir=corpus/$1; shift
    mkdir -p "$dir"
    local i=0
    for file in "$@"; do
        while IFS= read -r line; do
            i=$((i + 1))
            printf '%s' "$line" > "$dir/seed-$i"
        done < "$file"
    done
}
seed event_body "$fixtures/data/_observer/ops.jsonl"
seed verdict_body "$fixtures/verdicts.ndjson"
seed outcome_body "$fixtures/data/_kb/outcomes.jsonl"
seed import_line "$fixtures/data/_kb/outcomes.jsonl" "$fixtures/data/_observer/ops.jsonl"
mkdir -p corpus/ndjson_batch corpus/codec_decode
cp "$fixtures/verdicts.ndjson" corpus/ndjson_batch/seed-verdicts
cp "$fixtures/data/_kb/outcomes.jsonl" corpus/ndjson_batch/seed-outcomes
printf '\x01\x05\x03abc\x00\x02{}' > corpus/codec_decode/seed-1
for target in event_body verdict_body outcome_body ndjson_batch import_line codec_decode; do
    echo "== $target: ${seconds}s"
    cargo fuzz run -O "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
        | grep -E '^(stat::|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|artifact)' || true
done
