#!/usr/bin/env bash
# device-check.sh: issue 15's checks on the GPU machine, in one call (prepare with
# scripts/device-pack.sh; carry .device, dist and build/Release). Unpacks node and the production
# dependencies (xz, or Python's lzma where the machine has no xz), finds NCCL and cuBLAS in the
# machine's Python environment, then runs scripts/device-check.mjs, which writes
# $OUT/device-check.json after every check (and prints it at the end). Also runs here, without a
# GPU, to test the script itself: the report then says the device checks had no device.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
# The image's Python environment first (NVIDIA's pip packages, PyTorch for the MoE layer timing).
[[ -d /opt/torch/.venv/bin ]] && export PATH="/opt/torch/.venv/bin:$PATH"
unxz() { # unxz FILE: its decompressed bytes on stdout
  if command -v xz > /dev/null; then xz -dc "$1"; else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"; fi
}
NODE="${NODE:-$(command -v node || true)}"
if [[ -z "$NODE" || ! -x "$NODE" ]]; then
  unxz .device/node.xz > /tmp/pleat-node && chmod +x /tmp/pleat-node && NODE=/tmp/pleat-node
fi
if [[ ! -d node_modules ]]; then
  unxz .device/node_modules.tar.xz | tar -xf -
fi
if [[ ! -x "$NODE" ]]; then
  echo "device-check: no node (neither on PATH nor unpacked from .device/node.xz)" | tee "$OUT/device-check.failed"
  exit 2
fi
# NCCL and cuBLAS: NVIDIA's Python packages (site-packages/nvidia/*/lib) first, then the system;
# never the toolkit's link-time stubs.
find_lib() { # find_lib PATTERN: the first real file of that name
  local dirs=(/opt/torch/.venv/lib/python3*/site-packages/nvidia /usr/local/lib/python3*/dist-packages/nvidia /opt /usr /root)
  local d
  for d in "${dirs[@]}"; do
    [[ -d "$d" ]] || continue
    local hit
    hit="$(find "$d" -xdev -name "$1" -type f -not -path '*/stubs/*' -print -quit 2> /dev/null)"
    if [[ -n "$hit" ]]; then
      echo "$hit"
      return
    fi
  done
}
nccl="$(find_lib 'libnccl.so.2*')"
[[ -n "$nccl" && -z "${PLEAT_NCCL_LIB:-}" ]] && export PLEAT_NCCL_LIB="$nccl"
cublas="$(find_lib 'libcublas.so*')"
[[ -n "$cublas" ]] && export LD_LIBRARY_PATH="$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[[ -z "${PLEAT_PYTHON:-}" ]] && export PLEAT_PYTHON="$(command -v python3 || echo python3)"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2> /dev/null || echo "nvidia-smi: none"
  echo "node: $NODE; PLEAT_NCCL_LIB: ${PLEAT_NCCL_LIB:-unset}; cuBLAS: ${cublas:-not found}; python: $PLEAT_PYTHON"
} > "$OUT/nvidia-smi.txt"
# The script's own budget (400 s) skips the checks that would start after it; this bound is for
# a check that hangs (the report on disk holds every check finished before).
timeout 440 "$NODE" scripts/device-check.mjs "$OUT/device-check.json"
status=$?
cat "$OUT/device-check.json" 2> /dev/null
exit $status
