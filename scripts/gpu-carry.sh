#!/usr/bin/env bash
# Prepare what bench/bench_gpu.py needs on a GPU machine that has no network.
#
# The GPU image already holds torch (CUDA), transformers, peft, accelerate, nvidia-ml-py,
# psutil, pandas, pyarrow, matplotlib and pillow (Python 3.12); rich and typing-extensions
# travel too, at the versions textual and pydantic need. This fetches, once,
# the wheels of labdeck's other dependencies for that Python into .whl/ (ignored), and
# copies the embedded model's config and tokenizer into .cache-carry/ (ignored): its
# 540 MB of float32 weights do not fit what travels, so on the GPU the checks that use
# the embedded model load its architecture and tokenizer with random weights (the
# paths, shapes and speeds are the same; the texts are not).
#
#   scripts/gpu-carry.sh            # wheels + model files (bitsandbytes included)
#   NO_BNB=1 scripts/gpu-carry.sh   # without bitsandbytes (check nf4 then reports it missing)
#
# Then, in one device call (carry: .whl and .cache-carry; timeout_s 540 leaves a short rerun):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 \
#     LABDECK_CACHE=$PWD/.cache-carry && set -o pipefail && \
#     python3 bench/bench_gpu.py --budget 420 --out $OUT/gpu.md --screenshots $OUT 2>&1 \
#     | tee $OUT/bench_gpu.log
# and copy gpu.md into docs/ and the two PNGs into docs/screenshots/ here. vLLM does not
# travel (its wheels are several hundred MB, over what a call carries): the vllm check
# runs only where the image has it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .whl .cache-carry
WHEELS=(
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  textual==8.2.8 textual-plotext==1.0.1 plotext==5.3.2 mdit-py-plugins==0.7.0
  platformdirs==4.14.9 tomli-w==1.2.0 typing-extensions==4.16.0 rich==14.3.4
  linkify-it-py uc-micro-py
)
[ -n "${NO_BNB:-}" ] || WHEELS+=(bitsandbytes==0.50.2)
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d .whl "${WHEELS[@]}"
# The embedded model's config and tokenizer (not its weights), from the local cache.
"$PY" - <<'PY'
import shutil
from pathlib import Path

from labdeck.backend.models import EMBEDDED_ALIAS, SOURCE_FILE, ensure_embedded

src = ensure_embedded()
dest = Path(".cache-carry") / "arch" / EMBEDDED_ALIAS
dest.mkdir(parents=True, exist_ok=True)
for f in src.iterdir():
    if f.is_file() and f.suffix != ".safetensors" and f.name != SOURCE_FILE:
        shutil.copy2(f, dest / f.name)
print(f"{dest}: {', '.join(sorted(p.name for p in dest.iterdir()))}")
PY
du -sh .whl .cache-carry
