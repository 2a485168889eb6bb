#!/usr/bin/env bash
# Prepares what benchmarks/device_check.py needs on an accelerator machine without network:
# wheels of faiss-cpu and ml_collections in .whl/ (for CPython 3.12, x86-64 Linux) and one DAVIS
# sequence in .devdata/davis/ (both git-ignored, about 23 MB together).
#
#   benchmarks/device_check_bundle.sh [DAVIS_ROOT] [SEQUENCE]
#
# Defaults: ../shared/data/davis2016-sample and blackswan. There, from the repository root:
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site:$PWD python3 benchmarks/device_check.py --davis_root=.devdata/davis \
#       --out=device_check.md
set -euo pipefail
cd "$(dirname "$0")/.."
davis=${1:-../shared/data/davis2016-sample}
sequence=${2:-blackswan}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  faiss-cpu ml_collections
for kind in JPEGImages Annotations; do
  mkdir -p ".devdata/davis/$kind/480p"
  cp -r "$davis/$kind/480p/$sequence" ".devdata/davis/$kind/480p/"
done
du -sh .whl .devdata
