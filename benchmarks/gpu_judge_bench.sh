#!/usr/bin/env bash
# The GPU part of issue 12 as one command, for a machine with torch/transformers/peft but without lm-eval/trl/
# datasets/pydantic: install the wheels carried in .whl (../shared/gpu/fetch-wheels.sh + pydantic), then
#   1. benchmarks/bench_judge.py: Qwen2.5-0.5B/1.5B/7B-shaped judges, ~512-token pairwise prompts, logits mode
#      (plain and prefix reuse, auto batch size) against the best raw prefill rate over batch sizes, and generate;
#   2. benchmarks/bench_e2e.py: a 0.5B-shaped candidate (base and direct built on the fly) with a 7B-shaped judge
#      on 250 dialogues, end to end.
# Figures go to $OUT. Budget: about 8 minutes on one H200 (7B weights are built on the device in bf16).
set -o pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers; print('versions: torch', torch.__version__, 'transformers', transformers.__version__)"
timeout 420 python3 benchmarks/bench_judge.py --shapes "${SHAPES:-0.5b,1.5b,7b}" --pairs "${PAIRS:-256}" \
  --json "$OUT/bench_judge.json" 2>&1 | grep -v "it/s\]\|━" | tee "$OUT/bench_judge.log"
timeout 240 python3 benchmarks/bench_e2e.py --candidate 0.5b --judge 7b --dialogues "${DIALOGUES:-250}" \
  --json "$OUT/bench_e2e.json" 2>&1 | grep -v "it/s\]\|━" | tail -40 | tee "$OUT/bench_e2e.log"
