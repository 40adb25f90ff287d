#!/usr/bin/env bash
# CI smoke: a real OpenAI-compatible server (`transformers serve`, CPU) on 127.0.0.1 serving tiny local models;
# `empathy eval` generates through it (openai-chat) and judges through it (openai backend). Stopped on exit.
set -euo pipefail
SMOKE="$(mktemp -d)"
SERVE_PID=""
cleanup() {
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$SMOKE"
}
trap cleanup EXIT
python - "$SMOKE" <<'PY'
import sys
from harness.llm.tiny import build_scripted_judge, build_tiny_model
root = sys.argv[1]
build_tiny_model(f"{root}/candidate", seed=1)
build_tiny_model(f"{root}/base", seed=2)
build_scripted_judge(f"{root}/judge")
PY
PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
transformers serve --host 127.0.0.1 --port "$PORT" --device cpu > "$SMOKE/serve.log" 2>&1 &
SERVE_PID=$!
python - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(180):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2)
        break
    except OSError:
        time.sleep(1)
else:
    sys.exit("transformers serve did not come up")
PY
URL="http://127.0.0.1:$PORT/v1"
empathy eval --model "$SMOKE/candidate" --model-backend openai-chat --base-url "$URL" --base-model "$SMOKE/base" \
  --judge "$SMOKE/judge" --judge-backend openai --judge-base-url "$URL" --limit 8 \
  --output "$SMOKE/out" --cache-dir "$SMOKE/cache"
python - "$SMOKE/out" <<'PY'
import sys
from harness.evaluate.runs import load_run
r = load_run(sys.argv[1]).result  # validated: every file, fingerprint and count checked
s = r.comparisons["vs_base"]
assert s.n_scored == 8 and r.judge.model.kind == "served", s
print("serve smoke ok:", {"win_rate": s.win_rate, "tie_rate": s.tie_rate, "n_scored": s.n_scored,
                          "n_unscored": s.n_unscored, "judge": r.judge.fingerprint})
PY
