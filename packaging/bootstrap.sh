#!/usr/bin/env bash
# Automodulator Studio: set up a fresh Debian 12 machine in one command.
#
#   ./packaging/bootstrap.sh run    install what is missing, build, open the editor on the bundled
#                                   model and sample photos (without a display: run the same job
#                                   headless and write the results to ./out/)
#   ./packaging/bootstrap.sh test   install what is missing, build, run every test (ctest), then build
#                                   the fuzz targets with clang and run each for 60 s (skip with
#                                   AUTOMOD_SKIP_FUZZ=1; `test -L fast` runs that subset only)
#   ./packaging/bootstrap.sh build  install and build only
#   ./packaging/bootstrap.sh fuzz   the fuzz targets only (build-fuzz/)
#
# Idempotent and non-interactive: packages are installed only when missing, `apt-get update` runs
# only when a missing package cannot be found in the current lists. Builds go to ./build (override
# with AUTOMOD_BUILD_DIR) with ccache and precompiled LibTorch headers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AUTOMOD_BUILD_DIR:-$ROOT/build}"
MODE="${1:-run}"
shift || true

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # engine
  libtorch-dev libopenblas0-pthread nlohmann-json3-dev libcli11-dev
  libgloo-dev  # Gloo headers for LibTorch's ProcessGroupGloo (distributed training)
  libopencv-dev libdlib-dev libdlib-data
  # editor
  qt6-base-dev qt6-svg-dev qt6-charts-dev libqt6opengl6-dev qt6-qpa-plugins fonts-dejavu-core
  # data and test assets
  python-matplotlib-data python3-imageio dataset-fashion-mnist opencv-data
  # synthetic faces (npm packages in packaging/faces) and headless screenshots
  nodejs xvfb xauth
  clang-14 libclang-rt-14-dev  # libFuzzer + AddressSanitizer/UBSan for the fuzz targets (tests/fuzz)
)

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Node.js may come from elsewhere (e.g. NodeSource) with npm bundled: accept any working node+npm.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    local keep=()
    for p in "${missing[@]}"; do [ "$p" = nodejs ] || keep+=("$p"); done
    missing=("${keep[@]}")
  elif ! command -v npm >/dev/null; then
    missing+=(npm)
  fi
  if [ ${#missing[@]} -eq 0 ]; then
    log "all packages present"
    return
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local need_update=0
  for p in "${missing[@]}"; do
    apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]' || need_update=1
  done
  if [ "$need_update" -eq 1 ]; then
    log "apt-get update (a package is not in the current lists)"
    as_root apt-get update -qq
  fi
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_npm() {
  local dir="$ROOT/packaging/faces"
  [ -f "$dir/package.json" ] || return 0
  if [ -d "$dir/node_modules" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    return 0
  fi
  log "installing the synthetic-face renderer (npm packages in packaging/faces)"
  if [ -f "$dir/package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  else
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
}

build() {
  local jobs
  jobs="$(nproc)"
  if [ ! -f "$BUILD/build.ninja" ]; then
    log "configuring $BUILD"
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${AUTOMOD_CMAKE_ARGS:-} >/dev/null
  fi
  log "building ($jobs jobs, ccache)"
  export CCACHE_BASEDIR="$ROOT" CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
  cmake --build "$BUILD" -j "$jobs"
}

sample_photos() {
  # Sample photos: the repository's own, and public-domain photos from Debian packages.
  for f in "$ROOT"/resources/samples/*.png \
           /usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg \
           /usr/lib/python3/dist-packages/imageio/resources/images/astronaut.png; do
    [ -f "$f" ] && printf '%s\n' "$f"
  done
}

run_editor() {
  local studio="$BUILD/app/automod-studio" photos=()
  mapfile -t photos < <(sample_photos)
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ -x "$studio" ]; then
    log "opening Automodulator Studio"
    exec "$studio" "${photos[@]}" "$@"
  fi
  local out="$ROOT/out"
  log "no display: running the editor's main job headless into $out"
  if [ -x "$studio" ]; then
    QT_QPA_PLATFORM=offscreen "$studio" --headless --out "$out" "${photos[@]}" "$@"
  else
    "$BUILD/app/automod" reconstruct default "${photos[@]}" -o "$out"
  fi
  log "results written to $out"
}

# The fuzz targets (tests/fuzz: model files, images, JSON, torch.save checkpoints) in their own
# clang build with AddressSanitizer and UBSan, then their seed check and a 60 s run of each.
fuzz() {
  if ! command -v clang++-14 >/dev/null; then
    log "clang++-14 is missing: the fuzz targets are not built"
    return 0
  fi
  local fb="${AUTOMOD_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
  if [ ! -f "$fb/build.ninja" ]; then
    log "configuring $fb (clang 14, libFuzzer, ASan + UBSan)"
    CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$fb" -G Ninja -DAUTOMOD_FUZZ=ON -DAUTOMOD_BUILD_GUI=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  fi
  log "building the fuzz targets"
  export CCACHE_BASEDIR="$ROOT" CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
  cmake --build "$fb" --target automod_fuzzers -j "$(nproc)"
  log "running the fuzz targets (seeds, then 60 s each)"
  ctest --test-dir "$fb" -L fuzz --output-on-failure -j "$(nproc)"
}

case "$MODE" in
  run)
    install_packages; install_npm; build; run_editor "$@" ;;
  test)
    install_packages; install_npm; build
    log "running the test suite"
    (cd "$BUILD" && ctest --output-on-failure -j "$(nproc)" "$@")
    # The whole suite (no ctest arguments given) includes the fuzz targets' short runs.
    if [ $# -eq 0 ] && [ "${AUTOMOD_SKIP_FUZZ:-0}" != 1 ]; then fuzz; fi ;;
  fuzz)
    install_packages; fuzz ;;
  build)
    install_packages; install_npm; build ;;
  *)
    echo "usage: $0 run|test|build|fuzz" >&2; exit 2 ;;
esac
