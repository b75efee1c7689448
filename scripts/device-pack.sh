#!/usr/bin/env bash
# device-pack.sh: prepares what the GPU machine needs for scripts/device-check.sh (it has no Node
# and no registry; ../shared/reference/toolchain.md section 9). Run here after `npm ci` (which
# builds dist/ and build/Release/*.node, pleat_cuda for sm_90 where nvcc is found):
#   .device/node.xz               this machine's node binary
#   .device/node_modules.tar.xz   production dependencies only (npm ci --omit=dev in a copy)
# Then carry .device, dist and build/Release with the checkout (64 MiB in all) and run
#   bash scripts/device-check.sh     on the GPU machine (results under $OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d node_modules ]] || { echo "device-pack: run npm ci first" >&2; exit 2; }
# The builds as of this checkout (incremental: seconds when nothing changed), so what travels is
# the checkout's code and not an older build of it.
npm run -s build > /dev/null
[[ -f build/Release/pleat_cuda.node ]] || echo "device-pack: build/Release/pleat_cuda.node is missing (no nvcc at install): the GPU checks will report it" >&2
mkdir -p .device
xz -T2 -9 -c "$(command -v node)" > .device/node.xz
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cp package.json package-lock.json "$scratch/"
(cd "$scratch" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund > /dev/null)
tar -C "$scratch" -cf - node_modules | xz -T2 -9 > .device/node_modules.tar.xz
du -ch .device dist build/Release | tail -1 | sed 's/^/device-pack: carry size (.device, dist, build\/Release) /'
