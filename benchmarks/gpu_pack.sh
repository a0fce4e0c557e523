#!/usr/bin/env bash
# Prepares the git-ignored folders that carry benchmarks/gpu.py's inputs to a GPU machine, one
# folder per call of the device tool, each (with the working tree that travels beside it) under
# its 64 MiB limit. See benchmarks/gpu_steps.md for the calls that use them.
#   usage: benchmarks/gpu_pack.sh [SHARED_DATASETS_DIR]    (default ../shared/datasets)
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-../shared/datasets}
limit=$((64 * 1024 * 1024))
py=${PYTHON:-.venv/bin/python}
[ -x "$py" ] || py=python3
for f in cifar-10-binary.tar.gz.part0 cifar-10-binary.tar.gz.part1 cifar-10-binary.tar.gz.part2 \
         cifar10-official sr-train-bsds-layout.tgz sr-eval-set5-set14.tgz; do
  [ -f "$src/$f" ] || { echo "error: $src/$f is missing (pass the folder holding the shared datasets)" >&2; exit 1; }
done
rm -rf .gpubench
mkdir -p .gpubench/p0 .gpubench/p1 .gpubench/p2 .gpubench/run
git check-ignore -q .gpubench || { echo "error: .gpubench/ is not git-ignored (see .gitignore)" >&2; exit 1; }
for i in 0 1 2; do cp "$src/cifar-10-binary.tar.gz.part$i" ".gpubench/p$i/"; done
cp "$src/sr-train-bsds-layout.tgz" "$src/sr-eval-set5-set14.tgz" "$src/cifar10-official" .gpubench/run/
# airbench 0.1.8 is an sdist on PyPI: build its pure-Python wheel here (it needs only torch/torchvision)
"$py" -m pip wheel --quiet --disable-pip-version-check --no-deps airbench==0.1.8 -w .gpubench/run 2>&1 \
  | grep -v "^WARNING: Location" || true
ls .gpubench/run/airbench-0.1.8-py3-none-any.whl >/dev/null
(cd .gpubench/run && md5sum sr-train-bsds-layout.tgz sr-eval-set5-set14.tgz > MD5SUMS)

# What travels in every call: tracked and untracked-not-ignored files.
tree=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
status=0
printf '%-16s %10s %10s\n' folder MiB "MiB+tree"
for d in p0 p1 p2 run; do
  size=$(du -sb ".gpubench/$d" | cut -f1)
  total=$((size + tree))
  printf '%-16s %10.1f %10.1f\n' ".gpubench/$d" "$(echo "$size / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)"
  [ "$total" -le "$limit" ] || { echo "error: .gpubench/$d with the tree is over 64 MiB" >&2; status=1; }
done
printf 'working tree that travels with each: %.1f MiB\n' "$(echo "$tree / 1048576" | bc -l)"
exit $status
