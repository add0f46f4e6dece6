#!/usr/bin/env bash
# GPU checks in one go, from the repository root: the CUDA tests, the step times of
# bench/gpu_step.py, bench/gpu.py (multistep rounds of four steps against one step a round),
# then a long prompt joining running streams (bench/long_prompt.py; step times and long
# prompt appended to the tests' log).
# Expects the wheels of the web stack (with uvloop and httptools, which uvicorn[standard]
# brings and uvicorn then uses), aiohttp (the load generator's client) and pytest-asyncio in
# .whl/, the models in
# .cache/models/, and OUT naming the folder for logs and results (default bench/results).
#
#     OUT=/tmp/out bash bench/gpu_run.sh
#
# Exits non-zero when the tests or the benchmark failed; a failing test does not stop the
# benchmark. About 8 minutes in all (tests 120 s, step times 60 s, benchmark up to 310 s, long
# prompt 50 s): run it with a device timeout of 600 s.

set -u
set -o pipefail        # a pipeline's status is its first failing command's, not tee's

OUT=${OUT:-bench/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_DISABLE_PROGRESS_BARS=1 TQDM_DISABLE=1

echo "== install wheels"
if ! python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl; then
    echo "wheel install failed"; exit 2
fi
export PYTHONPATH=/tmp/site:$PWD/src

echo "== machine"
nvidia-smi || echo "nvidia-smi failed"
python3 - <<'PY'
import importlib.metadata as md
import platform
import sys

import torch

print("python", platform.python_version(), sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
for dist in ("transformers", "tokenizers", "accelerate", "gguf", "fastapi", "starlette",
             "pydantic", "pydantic-settings", "uvicorn", "uvloop", "httptools", "httpx",
             "openai", "aiohttp", "pytest",
             "pytest-asyncio", "numpy"):
    try:
        print(dist, md.version(dist))
    except md.PackageNotFoundError:
        print(dist, "MISSING")
PY
ls -l .cache/models/ || echo "no .cache/models"

echo "== tests/gpu"
timeout -k 10 130 python3 -m pytest -q -p no:cacheprovider tests/gpu 2>&1 \
    | tee "$OUT/gpu-tests.log"
tests_rc=$?
echo "== tests/gpu exit code $tests_rc"

echo "== bench/gpu_step.py"
timeout -k 10 60 python3 bench/gpu_step.py --rows 1,64,256 2>&1 | tee -a "$OUT/gpu-tests.log"
echo "== bench/gpu_step.py exit code $?"

echo "== bench/gpu.py"
timeout -k 15 310 python3 bench/gpu.py --out "$OUT" --warmup 3 --duration 6 --pause 1 --budget-s 290 --graphs on,onestep --profile-s 5 2>&1 | tee "$OUT/gpu-bench.log"
bench_rc=$?
echo "== bench/gpu.py exit code $bench_rc"

echo "== bench/long_prompt.py"
timeout -k 10 50 python3 bench/long_prompt.py --device cuda --dtype bfloat16 --streams 64 \
    --length 8192 2>&1 | tee -a "$OUT/gpu-tests.log"
echo "== bench/long_prompt.py exit code $?"

echo "== done: tests $tests_rc, bench $bench_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
