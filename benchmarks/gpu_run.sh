#!/usr/bin/env bash
# The last device call (benchmarks/gpu_steps.md): join and check the CIFAR-10 parts copied to
# /tmp/gpubench by the three calls before, unpack the SR sets, install the airbench wheel, run
# benchmarks/gpu.py, and leave its results under $OUT.
#   usage (on the GPU machine): bash benchmarks/gpu_run.sh [extra gpu.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
store=/tmp/gpubench
out=${OUT:-$store/out}
mkdir -p "$store/data" "$out"
began=$(date +%s)
bash .gpubench/run/cifar10-official "$store" "$store"/cifar-10-binary.tar.gz.part{0,1,2}
tar -xzf "$store/cifar-10-binary.tar.gz" -C "$store/data"
(cd .gpubench/run && md5sum -c --quiet MD5SUMS)
tar -xzf .gpubench/run/sr-train-bsds-layout.tgz -C "$store/data"
tar -xzf .gpubench/run/sr-eval-set5-set14.tgz -C "$store/data"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$store/site" \
  .gpubench/run/airbench-0.1.8-py3-none-any.whl
export PYTHONPATH="$store/site" PYTHONUNBUFFERED=1
echo "inputs ready in $(($(date +%s) - began)) s"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
status=0
timeout "${LIMIT:-570}" python3 benchmarks/gpu.py --data "$store/data" --out "$out/gpu-results.txt" \
  --budget "${BUDGET:-480}" "$@" 2> >(tee "$out/gpu-stderr.txt" | grep -v 'it/s\]\|s/it\]' >&2) || status=$?
echo "gpu.py exit status $status after $(($(date +%s) - began)) s"
exit $status
