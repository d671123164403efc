#!/usr/bin/env bash
# Everything the "cuda" backend needs checked on a real GPU, in one command.
#
# For a session that is lent a GPU machine (the `device` tool): run from the
# repository root there, e.g.  `bash bench/gpu_session.sh`  (timeout 600 s).
# That machine has no network; its image already holds numpy, scipy, numba,
# numba-cuda, cupy, torch, pytest and hypothesis, so convkit installs with
# --no-deps and without build isolation; where its setuptools is too old to
# build convkit (the SPDX license field needs setuptools >= 77), the source
# tree is put on PYTHONPATH with hand-written package metadata, so that the
# entry points (the backends, the pytest plugin) are found all the same.
# Results go to $OUT (or gpu-out/):
#   info.txt       nvidia-smi and python -m convkit info (the GPU, the backends)
#   check.txt      the full conformance matrix on the GPU
#   pytest.txt     the cuda tests (real-GPU ones included)
#   sanitizer.txt  compute-sanitizer memcheck over the small matrix
#   results.md     bench/gpu.py: cuda vs cuDNN (TF32 off) and cupyx.scipy.signal
set -uo pipefail

install_convkit() {
    if python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . -e backends/cuda 2>/dev/null \
            && python3 -c "import convkit, convkit_cuda"; then
        return 0
    fi
    echo "pip could not build convkit here; using the source tree with hand-written metadata"
    local site
    site=$(mktemp -d)
    python3 - "$site" <<'PYTHON'
import pathlib, sys, tomllib

site = pathlib.Path(sys.argv[1])
for project in (pathlib.Path("pyproject.toml"), pathlib.Path("backends/cuda/pyproject.toml")):
    meta = tomllib.loads(project.read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    groups = dict(meta.get("entry-points", {}))
    if "scripts" in meta:
        groups["console_scripts"] = meta["scripts"]
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in points.items()) + "\n"
        for group, points in groups.items()))
PYTHON
    export PYTHONPATH="$PWD:$PWD/backends/cuda/src:$site${PYTHONPATH:+:$PYTHONPATH}"
    python3 -c "import convkit, convkit_cuda"
}

main() {
    local out=${OUT:-gpu-out}
    mkdir -p "$out"
    export PYTHONUNBUFFERED=1
    install_convkit || { echo "convkit could not be installed"; return 1; }
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
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
