#!/usr/bin/env bash
# The refinement trade-off of docs/refinement.md: for each setting, reconstruction and mix SWD on the
# bundled model's held-out faces (automod eval) and attribute transfer / edits on synthetic faces
# (automod report), collected into docs/refinement/results.json; then the plot (plot.mjs).
#   docs/refinement/tradeoff.sh [build-dir]        (about 8 minutes per setting on 2 cores)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-$root/build}/app/automod"
out="$here/runs"
mkdir -p "$out"
# label | steps | extra flags (on top of --refine STEPS)
settings=(
  "encoder|0|"
  "codes only|100|--refine-offsets false"
  "offsets, decay 0|100|--refine-offsets true --refine-offset-lr 0.03 --refine-offset-decay 0"
  "offsets, decay 1 (default)|100|--refine-offsets true --refine-offset-lr 0.03 --refine-offset-decay 1"
  "offsets, decay 10|100|--refine-offsets true --refine-offset-lr 0.03 --refine-offset-decay 10"
)
for s in "${settings[@]}"; do
  IFS='|' read -r label steps flags <<<"$s"
  tag="$(echo "$label" | tr -c 'a-z0-9\n' '_')"
  if [ ! -s "$out/$tag-eval.json" ]; then
    # shellcheck disable=SC2086
    "$bin" --quiet eval "$root/models/default.amod" --data "$root/resources/eval-faces" --held-out-fraction 0.5 \
      --count 32 --seed 0 --refine "$steps" $flags -o "$out/$tag-eval.json" >/dev/null
  fi
  if [ ! -s "$out/$tag-report.json" ]; then
    # shellcheck disable=SC2086
    "$bin" --quiet report "$root/models/default.amod" --seed 0 --refine "$steps" $flags \
      -o "$out/$tag-report.json" >/dev/null
  fi
  echo "$label|$steps|$flags|$tag"
done | python3 -c '
import json, sys
rows = []
for line in sys.stdin:
    label, steps, flags, tag = line.rstrip("\n").split("|")
    e = json.load(open(f"'"$out"'/{tag}-eval.json"))
    r = json.load(open(f"'"$out"'/{tag}-report.json"))
    edits = [x for x in r["attribute_edits"] if "target_flip_rate" in x]
    rows.append({
        "label": label, "steps": int(steps), "flags": flags, "offsets": "offsets true" in flags, "default": "(default)" in label,
        "psnr": e["reconstruction"]["psnr_db"], "ssim": e["reconstruction"]["ssim"],
        "swd": e["swd_x1e3"]["mixes"]["average"],
        "swd_per_scale": {k: e["swd_x1e3"]["mixes"][k]["average"] for k in ("coarse", "intermediate", "fine")},
        "seconds_per_photo": e.get("refine", {}).get("seconds_per_image", 0.0),
        "follow": r["attribute_transfer"]["score"],
        "flip": sum(x["target_flip_rate"] for x in edits) / len(edits),
        "flip_per_edit": {"%s %s %g" % (x["attribute"], x["scale"], x["strength"]): x["target_flip_rate"] for x in edits},
        "other_change": sum(x["readable_other_attribute_change_rate"] for x in edits) / len(edits),
    })
json.dump({"settings": rows}, open("'"$here"'/results.json", "w"), indent=1)
for x in rows:
    print("%-22s PSNR %.2f SSIM %.3f SWD %.1f follow %.3f flip %.3f other %.3f %.2f s/photo" % (
        x["label"], x["psnr"], x["ssim"], x["swd"], x["follow"], x["flip"], x["other_change"], x["seconds_per_photo"]))
'
node "$here/plot.mjs" "$here/results.json" "$here/tradeoff.png"
