#!/usr/bin/env bash
# Trains (or continues training) the bundled default model: preset faces-64 on 20 000 synthetic faces
# (automod make-faces, seed 0). Resumable: the run's latest checkpoint is kept in models/faces-64-run/
# so that training can continue across sessions and machines; when the run finishes, its EMA model
# becomes models/default.amod.
#
#   ./packaging/train-default-model.sh [extra automod train options, e.g. --max-images 200000]
#   INSTALL_INTERIM=1 ./packaging/train-default-model.sh --max-images 210000   # install a 32 px snapshot
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AUTOMOD_BUILD_DIR:-$ROOT/build}"
RUN="${AUTOMOD_RUN_DIR:-$ROOT/build/runs/faces-64}"
KEEP="$ROOT/models/faces-64-run"
mkdir -p "$RUN"
resume=()
if [ -f "$KEEP/latest.amod" ] && [ ! -f "$RUN/latest.amod" ]; then
  cp "$KEEP/latest.amod" "$KEEP/config.json" "$KEEP/log.jsonl" "$RUN/"
fi
[ -f "$RUN/latest.amod" ] && resume=(--resume)
status=0
# The command's last stdout line says how the run ended ("status": "finished" or "stopped").
result="$("$BUILD/app/automod" train --faces 20000 --preset faces-64 --out "$RUN" --seed 0 "${resume[@]}" "$@")" ||
  status=$?
printf '%s\n' "$result"
mkdir -p "$KEEP"
cp "$RUN/latest.amod" "$RUN/config.json" "$RUN/log.jsonl" "$KEEP/"
# The bundled model is the run's model without its training state (automod export), installed only
# when the run finished (its length, or --max-images): a stopped run (Ctrl-C) leaves it alone. Until
# the 64 px stage has faded in, INSTALL_INTERIM=1 installs the latest stable stage (e.g. 32 px).
if [ "$status" -eq 0 ] && grep -q '"status":"finished"' <<<"$result" &&
   { "$BUILD/app/automod" info "$RUN/latest.amod" | grep -q '"stage": 4' || [ "${INSTALL_INTERIM:-0}" = 1 ]; }; then
  "$BUILD/app/automod" export "$RUN/latest.amod" "$ROOT/models/default.amod"
fi
exit "$status"
