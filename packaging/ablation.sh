#!/usr/bin/env bash
# The paper's Table 1 in miniature: four models trained on the same synthetic faces with
# the same budget and seed — the architecture alone (no L_j, L1 reconstruction), + L_j, + the
# robust loss, + both — then `automod eval` (SWD of samples and of mixes, PSNR/SSIM, cycle
# consistency, entanglement) and `automod report` (attribute transfer, attribute edits) on
# each. Writes OUT/<variant>/{latest.amod,eval.json,report.json,log.jsonl} and OUT/ablation.md.
#
#   ./packaging/ablation.sh [OUT] [extra automod train options, e.g. --max-images 20000]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AUTOMOD_BUILD_DIR:-$ROOT/build}"
AUTOMOD="$BUILD/app/automod"
OUT="${1:-$ROOT/build/ablation}"
shift || true
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/automod"
FACES="$CACHE/faces-n20000-s64-seed0"  # the default model's training faces (train-default-model.sh)
mkdir -p "$OUT"
[ -f "$FACES/attributes.jsonl" ] || "$AUTOMOD" make-faces --count 20000 --size 64 --seed 0 --out "$FACES"

base="$ROOT/resources/presets/ablation-16.json"
variant() {  # name layer reconstruction
  local name=$1 layer=$2 rec=$3 dir="$OUT/$1"
  shift 3
  mkdir -p "$dir"
  sed -e "s/\"name\": \"ablation-16\"/\"name\": \"ablation-16-$name\"/" \
      -e "s/\"layer\": 1.0/\"layer\": $layer/" \
      -e "s/\"reconstruction\": \"robust\"/\"reconstruction\": \"$rec\"/" "$base" > "$dir/preset.json"
  if [ ! -f "$dir/done" ]; then
    local resume=()
    [ -f "$dir/latest.amod" ] && resume=(--resume)
    "$AUTOMOD" train --data "$FACES" --preset "$dir/preset.json" --out "$dir" --seed 0 "${resume[@]}" "$@"
    touch "$dir/done"
  fi
  [ -f "$dir/eval.json" ] || "$AUTOMOD" eval "$dir/latest.amod" --data "$FACES" --count 1000 --seed 0 -o "$dir/eval.json" > /dev/null
  [ -f "$dir/report.json" ] || "$AUTOMOD" report "$dir/latest.amod" --seed 0 -o "$dir/report.json" > /dev/null
}
variant arch 0.0 l1 "$@"
variant lj 1.0 l1 "$@"
variant robust 0.0 robust "$@"
variant both 1.0 robust "$@"

python3 - "$OUT" <<'PY'
import json, sys, os
out = sys.argv[1]
rows = [("arch", "architecture alone (L1, no L_j)"), ("lj", "+ L_j"), ("robust", "+ robust loss"), ("both", "+ both (the paper)")]
lines = ["| variant | SWD samples ×10³ | SWD mixes ×10³ | PSNR dB | SSIM | cycle cos | entanglement | attribute transfer (chance 0.5) | its ceiling | its readable rate |",
         "|---|---|---|---|---|---|---|---|---|---|"]
reports = {}
fmt = lambda v, f="%.3f": "–" if v is None else f % v
for key, label in rows:
    e = json.load(open(os.path.join(out, key, "eval.json")))
    t = reports[key] = json.load(open(os.path.join(out, key, "report.json")))["attribute_transfer"]
    def g(*path):
        v = e
        for p in path: v = v[p]
        return v
    none = not t["scored_attributes"]
    lines.append("| %s | %.1f | %.1f | %.2f | %.3f | %.3f | %.4f | %s | %s | %s |" % (
        label, g("swd_x1e3", "samples", "average"), g("swd_x1e3", "mixes", "average"), g("reconstruction", "psnr_db"),
        g("reconstruction", "ssim"), g("cycle_consistency_cos"), g("layer_entanglement", "mean"),
        fmt(t["score"]), fmt(None if none else t["mean_ceiling"], "%.2f"), fmt(None if none else t["mean_readable_rate"], "%.2f")))
# Per attribute: home scale (how far each range swap moves the probe), follow rate among readable
# home-scale mixes, and the attribute's weight in the score.
lines += ["", "| attribute | " + " | ".join(label for _, label in rows) + " |", "|---|" + "---|" * len(rows)]
for name in sorted(reports["both"]["attributes"]):
    cells = []
    for key, _ in rows:
        a = reports[key]["attributes"][name]
        moves = " / ".join("%+.2f" % a["home_evidence"][s]["moves_probe"] for s in ("coarse", "intermediate", "fine")
                           if s in a["home_evidence"])
        cells.append("%s (%s): %s, w %.2f" % (a["home_scale"], moves, fmt(a["follow_rate"], "%.2f"), a["weight"]))
    lines.append("| %s | %s |" % (name.replace("_", " "), " | ".join(cells)))
open(os.path.join(out, "ablation.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
