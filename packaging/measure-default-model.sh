#!/usr/bin/env bash
# Re-measures the bundled model with the commands the README quotes, after
# ./packaging/train-default-model.sh has installed a new models/default.amod:
#   - held-out reconstruction / samples / mixes / cycle / L_j   -> default-eval.json
#     (and, for models/default.amod, the same figures stored in the model file's metadata, where the
#     editor compares each photo's reconstruction with them)
#   - attribute probes, transfer in mixes, few-exemplar edits   -> default-report.json
#   - a grid of 32 random samples (seed 0), 8 per row           -> default-samples.png
#   - the editor's screenshots (docs/screenshots/), when automod-studio is built and xvfb is there
#
#   ./packaging/measure-default-model.sh [MODEL [OUT_DIR]]
#
# MODEL defaults to models/default.amod and OUT_DIR to models/. Any other MODEL (a run's latest.amod,
# say) is measured without touching the model file or the screenshots: an interim reading of a run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AUTOMOD_BUILD_DIR:-$ROOT/build}"
AUTOMOD="$BUILD/app/automod"
MODEL="${1:-$ROOT/models/default.amod}"
OUT="${2:-$ROOT/models}"
[ -x "$AUTOMOD" ] || { echo "measure-default-model.sh: $AUTOMOD is not built (cmake --build $BUILD --target automod)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "measure-default-model.sh: no model file at $MODEL" >&2; exit 1; }
mkdir -p "$OUT"
bundled=0
[ "$(realpath "$MODEL")" = "$(realpath "$ROOT/models/default.amod")" ] && bundled=1
store=()
[ "$bundled" = 1 ] && store=(--store)

log() { printf '\033[1m[measure]\033[0m %s\n' "$*" >&2; }
log "eval on the 32 held-out faces of resources/eval-faces"
"$AUTOMOD" eval "$MODEL" --data "$ROOT/resources/eval-faces" --held-out-fraction 0.5 --count 32 --seed 0 \
  "${store[@]}" -o "$OUT/default-eval.json"
log "attribute report"
"$AUTOMOD" report "$MODEL" --seed 0 -o "$OUT/default-report.json"
log "sample grid"
"$AUTOMOD" sample "$MODEL" --count 32 --cols 8 --seed 0 -o "$OUT/default-samples.png"
if [ "$bundled" = 1 ]; then
  if [ -x "$BUILD/app/automod-studio" ] && command -v xvfb-run >/dev/null; then
    log "screenshots"
    "$ROOT/packaging/screenshots.sh" "$BUILD"
  else
    log "automod-studio or xvfb-run missing: screenshots not retaken"
  fi
fi
log "written: $OUT/default-eval.json, $OUT/default-report.json, $OUT/default-samples.png"
