#!/usr/bin/env bash
# Everything the "cuda" backend needs checked on a real GPU, in one command.
#
# For a session that is lent a GPU machine (the `device` tool): run from the
# repository root there, e.g.  `bash bench/gpu_session.sh`  (timeout 600 s).
# That machine has no network; its image already holds numpy, scipy, numba,
# numba-cuda, cupy, torch, pytest and hypothesis, so convkit installs with
# --no-deps and without build isolation.  Results go to $OUT (or gpu-out/):
#   info.txt       python -m convkit info (the GPU, the backends)
#   check.txt      the full conformance matrix on the GPU
#   pytest.txt     the cuda tests (real-GPU ones included)
#   sanitizer.txt  compute-sanitizer memcheck over the small matrix
#   results.md     bench/gpu.py: cuda vs cuDNN (TF32 off) and cupyx.scipy.signal
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . -e backends/cuda 2>&1 | tail -3
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/info.txt"
python3 -m convkit info 2>&1 | tee -a "$out/info.txt"
python3 -m convkit check cuda --full 2>&1 | tail -15 | tee "$out/check.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda_gpu.py tests/test_cuda_backend.py \
    tests/test_device_arrays.py 2>&1 | tail -15 | tee "$out/pytest.txt"
if command -v compute-sanitizer >/dev/null; then
    compute-sanitizer --tool memcheck --error-exitcode 3 python3 -m convkit check cuda --small 2>&1 \
        | tail -15 | tee "$out/sanitizer.txt"
fi
python3 bench/gpu.py --out "$out" 2>&1 | tail -20
