#!/usr/bin/env bash
# Budget or method? (docs/training-at-cpu-budgets.md) The paper presets' training settings and the
# CPU recipe, on the ablation-16 schedule and model (4 -> 16 px, cpu-32 widths, 128-d latent), the
# same synthetic faces and seed, at 40 k and 160 k images; then `automod eval` on each. Writes
# OUT/<variant>/{latest.amod,eval.json,log.jsonl} and OUT/budget-or-method.md. Resumable.
#
#   ./packaging/budget-or-method.sh [OUT] [extra automod train options, e.g. --threads 1]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AUTOMOD_BUILD_DIR:-$ROOT/build}"
AUTOMOD="$BUILD/app/automod"
OUT="${1:-$ROOT/build/budget-or-method}"
shift || true
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/automod"
FACES="$CACHE/faces-n20000-s64-seed0"  # the default model's training faces (train-default-model.sh)
mkdir -p "$OUT"
[ -f "$FACES/attributes.jsonl" ] || "$AUTOMOD" make-faces --count 20000 --size 64 --seed 0 --out "$FACES"

variant() {  # name
  local name=$1 dir="$OUT/$1"
  shift
  mkdir -p "$dir"
  if [ ! -f "$dir/done" ]; then
    local resume=()
    [ -f "$dir/latest.amod" ] && resume=(--resume)
    "$AUTOMOD" train --data "$FACES" --preset "$ROOT/docs/budget-or-method/$name.json" --out "$dir" --seed 0 \
      "${resume[@]}" "$@"
    touch "$dir/done"
  fi
  [ -f "$dir/eval.json" ] || "$AUTOMOD" eval "$dir/latest.amod" --data "$FACES" --count 1000 --seed 0 -o "$dir/eval.json" > /dev/null
  # The same with the training decoder: an EMA of decay 0.999 without warm-up still holds part of its
  # random start after a short run, so this separates the averaging from the optimisation.
  [ -f "$dir/eval-training.json" ] || "$AUTOMOD" eval "$dir/latest.amod" --decoder training --data "$FACES" --count 1000 \
    --seed 0 -o "$dir/eval-training.json" > /dev/null
}
for v in paper-40k cpu-40k paper-160k cpu-160k; do variant "$v" "$@"; done

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = [("paper-40k", "paper settings, 40 k"), ("cpu-40k", "CPU recipe, 40 k"),
        ("paper-160k", "paper settings, 160 k"), ("cpu-160k", "CPU recipe, 160 k")]
lines = ["| run | decoder | cycle cos | PSNR dB | SSIM | SWD samples ×10³ | SWD mixes ×10³ | entanglement |",
         "|---|---|---|---|---|---|---|---|"]
for key, label in rows:
    for decoder, name in (("EMA", "eval.json"), ("training", "eval-training.json")):
        e = json.load(open(os.path.join(out, key, name)))
        lines.append("| %s | %s | %.3f | %.2f | %.3f | %.1f | %.1f | %.4f |" % (
            label, decoder, e["cycle_consistency_cos"], e["reconstruction"]["psnr_db"], e["reconstruction"]["ssim"],
            e["swd_x1e3"]["samples"]["average"], e["swd_x1e3"]["mixes"]["average"], e["layer_entanglement"]["mean"]))
open(os.path.join(out, "budget-or-method.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
