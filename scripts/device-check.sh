#!/usr/bin/env bash
# device-check.sh: issue 15's checks on the GPU machine, in one call (prepare with
# scripts/device-pack.sh; carry .device, dist and build/Release). Unpacks node and the production
# dependencies, finds NCCL and cuBLAS in the machine's Python environment, then runs
# scripts/device-check.mjs, which writes $OUT/device-check.json (and prints it). Also runs here,
# without a GPU, to test the script itself: the report then says which checks had no device.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
NODE="${NODE:-$(command -v node || true)}"
if [[ -z "$NODE" || ! -x "$NODE" ]]; then
  xz -dc .device/node.xz > /tmp/pleat-node && chmod +x /tmp/pleat-node && NODE=/tmp/pleat-node
fi
if [[ ! -d node_modules ]]; then
  xz -dc .device/node_modules.tar.xz | tar -xf -
fi
# NCCL and cuBLAS from NVIDIA's Python packages (site-packages/nvidia/*/lib), when present.
nccl="$(find /opt /usr /root -xdev -name 'libnccl.so.2*' -type f 2>/dev/null | head -1 || true)"
[[ -n "$nccl" ]] && export PLEAT_NCCL_LIB="$nccl"
cublas_dir="$(dirname "$(find /opt /usr /root -xdev -name 'libcublas.so*' -type f 2>/dev/null | head -1 || echo /nonexistent/x)")"
[[ -d "$cublas_dir" ]] && export LD_LIBRARY_PATH="$cublas_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# PyTorch for the MoE layer comparison: the image's environment, else whatever python3 is.
[[ -z "${PLEAT_PYTHON:-}" && -x /opt/torch/.venv/bin/python ]] && export PLEAT_PYTHON=/opt/torch/.venv/bin/python
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "nvidia-smi: none"; } > "$OUT/nvidia-smi.txt"
timeout 420 "$NODE" scripts/device-check.mjs "$OUT/device-check.json"
status=$?
cat "$OUT/device-check.json" 2>/dev/null
exit $status
