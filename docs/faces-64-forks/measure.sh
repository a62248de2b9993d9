#!/usr/bin/env bash
# Measures one checkpoint of the faces-64 run the way docs/training-at-cpu-budgets.md ("The bundled
# model's last 180 k images") compares them: both decoders (EMA, training) on the 32 held-out
# faces of resources/eval-faces and on 256 held-out faces of the run's own 20 000 (automod make-faces,
# seed 0), seed 0. Usage: docs/faces-64-forks/measure.sh LABEL CHECKPOINT   -> docs/faces-64-forks/LABEL-*.json
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
A="${AUTOMOD_BUILD_DIR:-$ROOT/build}/app/automod"
OUT="$ROOT/docs/faces-64-forks"
for dec in ema training; do
  "$A" -q eval "$2" --decoder "$dec" --data "$ROOT/resources/eval-faces" --held-out-fraction 0.5 --count 32 --seed 0 \
    -o "$OUT/$1-$dec-eval32.json" >/dev/null
  "$A" -q eval "$2" --decoder "$dec" --faces 20000 --count 256 --seed 0 -o "$OUT/$1-$dec-faces256.json" >/dev/null
done
