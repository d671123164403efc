#!/usr/bin/env bash
# Everything the "cuda" backend needs checked on a real GPU, in one command.
#
# For a session that is lent a GPU machine (the `device` tool): run from the
# repository root there, e.g.  `bash bench/gpu_session.sh`  (timeout 600 s).
# That machine has no network; its image already holds numpy, scipy, numba,
# numba-cuda, cupy, torch, pytest and hypothesis, so convkit installs with
# --no-deps and without build isolation, built by the image's own setuptools:
# pip checks it against what pyproject.toml declares and the install fails,
# saying which version it found, where it is too old.
# Results go to $OUT (or gpu-out/):
#   info.txt       nvidia-smi, versions and python -m convkit info (the GPU, the backends)
#   pytest.txt     the cuda tests that need a GPU (device arrays, streams, host traffic)
#   check.txt      the full conformance matrix on the GPU (pytest-xdist, WORKERS processes)
#   bench.txt, results.md, results.json
#                  bench/gpu.py: cuda vs cuDNN (TF32 off) and cupyx.scipy.signal
#   profile.txt    bench/gpu_profile.py: the kernels' own time against the whole call
#   sanitizer.txt  compute-sanitizer memcheck over the GPU tests and the float32 fast matrix
# STEPS picks steps (default: "pytest check bench profile sanitizer").
# Each step's time limit can be changed: PYTEST_LIMIT, CHECK_LIMIT, BENCH_LIMIT,
# PROFILE_LIMIT, SANITIZER_LIMIT (seconds), BENCH_BUDGET (seconds of repeats per implementation).
set -uo pipefail

install_convkit() {
    python3 -m pip install -q --no-deps --no-index --no-build-isolation --check-build-dependencies \
        -e . -e backends/cuda && python3 -c "import convkit, convkit_cuda"
}

# Each step has its own time limit, so that one slow step cannot cost the others (a lent
# machine gives one command 10 minutes at most); what a step printed stays in $OUT.
step() {
    local limit=$1 file=$2
    shift 2
    echo "== $* (at most ${limit} s)" | tee -a "$file"
    local started=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >>"$file" 2>&1
    local status=$?
    echo "== exit $status after $((SECONDS - started)) s" | tee -a "$file"
    tail -12 "$file"
}

main() {
    local out=${OUT:-gpu-out}
    mkdir -p "$out"
    export PYTHONUNBUFFERED=1
    install_convkit || { echo "convkit could not be installed; pip's error above says why (an image whose" \
        "setuptools is older than the setuptools>=77 that pyproject.toml requires needs a newer one)"; return 1; }
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>&1 | tee "$out/info.txt"
    python3 -c "import numpy, numba, numba_cuda, cupy, torch; print('numpy', numpy.__version__, 'numba',
numba.__version__, 'numba-cuda', numba_cuda.__version__, 'cupy', cupy.__version__, 'torch', torch.__version__)" \
        2>&1 | tee -a "$out/info.txt"
    python3 -m convkit info 2>&1 | tee -a "$out/info.txt"
    local steps=" ${STEPS:-pytest check bench profile sanitizer} "
    if [[ $steps == *" pytest "* ]]; then
        step "${PYTEST_LIMIT:-60}" "$out/pytest.txt" python3 -m pytest -q -s -rs -p no:cacheprovider \
            backends/cuda/tests/test_cuda_gpu.py tests/test_device_arrays.py backends/cuda/tests/test_cuda_backend.py -k "not simulator"
    fi
    # The full matrix in parallel processes (pytest-xdist is in the GPU image): most of its
    # time is compiling kernel variants, one CPU core each.
    if [[ $steps == *" check "* ]]; then
        step "${CHECK_LIMIT:-170}" "$out/check.txt" python3 -m pytest -q -rf -p no:cacheprovider \
            -n "${WORKERS:-14}" tests/test_matrix.py --convkit-backend cuda --convkit-full
    fi
    if [[ $steps == *" bench "* ]]; then
        step "${BENCH_LIMIT:-190}" "$out/bench.txt" python3 bench/gpu.py --out "$out" \
            --budget "${BENCH_BUDGET:-0.2}"
    fi
    if [[ $steps == *" profile "* ]]; then
        step "${PROFILE_LIMIT:-90}" "$out/profile.txt" python3 bench/gpu_profile.py
    fi
    if [[ $steps == *" sanitizer "* ]] && command -v compute-sanitizer >/dev/null; then
        step "${SANITIZER_LIMIT:-80}" "$out/sanitizer.txt" compute-sanitizer --tool memcheck --error-exitcode 3 \
            python3 -m pytest -q -x -p no:cacheprovider backends/cuda/tests/test_cuda_gpu.py tests/test_matrix.py \
            --convkit-backend cuda -k "float32 and not properties"
    fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
