#!/usr/bin/env bash
# The GPU part of benchmarks/bench_train.py, as one command for a machine with torch/transformers/peft but without
# trl/datasets/pydantic: install the wheels carried in .whl (../shared/gpu/fetch-wheels.sh + pydantic), smoke-test,
# fall back to the pinned transformers stack in .whl/hf if the machine's own one does not run it, then benchmark.
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
versions() { python3 -c "import torch, transformers, peft, trl, datasets; print('versions: torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'trl', trl.__version__, 'datasets', datasets.__version__)"; }
versions
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ -z "${SKIP_SMOKE:-}" ] && ! timeout 240 python3 benchmarks/bench_train.py --shape tiny --rows 16 > "$OUT/smoke.log" 2>&1; then
  tail -5 "$OUT/smoke.log"
  echo "smoke failed with the machine's transformers stack: installing the pinned one from .whl/hf"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/hf/*.whl || exit 1
  versions
fi
python3 benchmarks/bench_train.py --shape qwen0.5b --rows "${ROWS:-1024}" --json "$OUT/bench_train.json" 2>&1 \
  | grep -v "it/s\]\|examples/s\]" | tee "$OUT/bench_train.log"
