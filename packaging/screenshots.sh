#!/usr/bin/env bash
# Takes a screenshot of each tab of the real automod-studio under Xvfb (Debian's xvfb), with the
# bundled model and the sample photos, into docs/screenshots/. Usage:
#   packaging/screenshots.sh [BUILD_DIR]      (default: build)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
studio="$build/app/automod-studio"
out="$here/docs/screenshots"
[[ -x "$studio" ]] || { echo "screenshots.sh: $studio not built (cmake --build $build --target automod-studio)" >&2; exit 1; }
command -v xvfb-run >/dev/null || { echo "screenshots.sh: install xvfb (apt-get install xvfb)" >&2; exit 1; }
mkdir -p "$out"
samples=()
if [[ -d "$here/resources/samples" ]]; then
  while IFS= read -r -d '' f; do samples+=("$f"); done < <(find "$here/resources/samples" -maxdepth 1 -type f \
    \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.webp' \) -print0 | sort -z | head -z -n 3)
fi
# --screenshots DIR makes the app load the photos, wait for the mix, grab each tab and quit.
xvfb-run -a -s "-screen 0 1280x860x24" "$studio" --screenshots "$out" "${samples[@]}"
ls -l "$out"
