"""Static report on the "cuda" backend's kernel variants, without a GPU.

It needs no GPU and no driver, but it does need CUDA's compiler libraries,
NVVM and NVRTC (``libnvrtc``), which ``pip install "numba-cuda[cu13]"`` (or
``[cu12]``) installs; without them it says so and exits with status 2.
Compiles every variant (dtype x pixels x filters per thread, unit and
non-unit stride) to PTX for a compute capability with NVVM and, when CUDA's ``ptxas`` is on the PATH, assembles it
with the kernel's launch bounds to read the registers, spills and shared
memory a thread block uses.  When ``cuobjdump`` and ``nvdisasm`` are on the
PATH too (pip wheels ``nvidia-cuda-cuobjdump``, ``nvidia-cuda-nvdisasm``), it
finds the innermost machine-code loop that holds the FMAs (the interior path,
one kernel tap) and counts its instructions: with ``pixels * filters`` FMAs
among ``n`` issued instructions, the loop can reach at most that fraction of
the FMA peak (one instruction issues per scheduler per cycle).

    python bench/cuda_kernels.py              # sm_90 (H100, H200)
    python bench/cuda_kernels.py --cc 8.0     # sm_80 (A100)

NVVM may write a newer PTX ISA version than the installed ``ptxas`` reads;
the report then lowers the ``.version`` line to the one ptxas reads, which is
safe for this kernel (it uses no recent PTX instruction).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)

import numba
from numba import cuda, types

from convkit_cuda._blocks import FILTER_BLOCKS, PIXEL_BLOCKS
from convkit_cuda._kernels import LAUNCH_BOUNDS, correlate_function


def signature(dtype_name: str) -> tuple:
    value = types.Array(getattr(numba, dtype_name), 1, "C")
    table = types.Array(types.int64, 1, "C")
    triple = types.UniTuple(types.int64, 3)
    return (
        value,
        value,
        table,
        table,
        table,
        types.int64,
        types.int64,
        types.int64,
        triple,
        triple,
        triple,
        triple,
        triple,
        triple,
        triple,
        triple,
        triple,
        triple,
        types.boolean,
        value,
    )


def _lower_version(ptx: str, ptxas: str) -> str:
    version = subprocess.run(
        [ptxas, "--version"], capture_output=True, text=True, check=True
    ).stdout
    release = re.search(r"release (\d+)\.(\d+)", version)
    if not release:
        return ptx
    # ptxas of CUDA 12.x reads PTX ISA 8.x, of 13.x reads 9.x.
    isa = f"{int(release.group(1)) - 4}.{int(release.group(2))}"
    return re.sub(r"^\.version \S+", f".version {isa}", ptx, count=1, flags=re.MULTILINE)


def assemble(ptx: str, arch: str) -> tuple[dict[str, int], str | None] | None:
    """ptxas's resource report, and the machine code (SASS) when cuobjdump can print it."""
    ptxas = shutil.which("ptxas")
    if ptxas is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        source, binary = os.path.join(folder, "kernel.ptx"), os.path.join(folder, "kernel.cubin")
        with open(source, "w") as handle:
            handle.write(_lower_version(ptx, ptxas))
        done = subprocess.run(
            [ptxas, f"-arch={arch}", "-v", source, "-o", binary],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr.strip()[-500:], file=sys.stderr)
            return None
        sass = None
        if shutil.which("cuobjdump") and shutil.which("nvdisasm"):
            sass = (
                subprocess.run(
                    ["cuobjdump", "-sass", binary], capture_output=True, text=True, check=False
                ).stdout
                or None
            )

    def number(pattern: str) -> int:
        found = re.search(pattern, done.stderr)
        return int(found.group(1)) if found else 0

    return {
        "registers": number(r"Used (\d+) registers"),
        "spills": number(r"(\d+) bytes spill stores") + number(r"(\d+) bytes spill loads"),
        "shared": number(r"(\d+) bytes smem"),
    }, sass


def inner_loop(sass: str) -> tuple[int, int, int, int]:
    """(instructions, FMAs, shared loads, local-memory (spill) accesses) of the hot loop.

    The loops are the ranges of backward branches; of those holding FMAs, the
    hot one is the loop whose instructions are most often FMAs (the interior
    path's loop over kernel columns, which the compiler may unroll).
    """
    code = [
        (int(address, 16), text.strip())
        for address, text in re.findall(
            r"^\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", sass, flags=re.MULTILINE
        )
    ]
    best = (0, 0, 0, 0)
    for address, text in code:
        branch = re.search(r"\bBRA\s+(?:`\(\.L_x_\d+\)\s*)?(0x[0-9a-f]+)", text)
        if not branch or int(branch.group(1), 16) > address:
            continue
        target = int(branch.group(1), 16)
        body = [line for where, line in code if target <= where <= address]
        fma = sum(bool(re.search(r"\b[DF]FMA\b", line)) for line in body)
        if fma and fma / len(body) > (best[1] / best[0] if best[0] else 0):
            best = (
                len(body),
                fma,
                sum(bool(re.search(r"\bLDS\b", line)) for line in body),
                sum(bool(re.search(r"\b(?:LDL|STL)\b", line)) for line in body),
            )
    return best


def missing_compiler(cc: tuple[int, int]) -> str | None:
    """Why CUDA's compilers cannot build PTX for ``cc`` here, or None when they can."""

    def probe(values):
        values[0] = 1.0

    try:
        cuda.compile_ptx(probe, (types.Array(types.float32, 1, "C"),), cc=cc)
    except Exception as error:  # noqa: BLE001 - any failure to compile means: the toolchain is missing
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cc", default="9.0", help="compute capability, e.g. 9.0 (H100) or 8.0 (A100)"
    )
    arguments = parser.parse_args(argv)
    major, minor = (int(part) for part in arguments.cc.split("."))
    arch = f"sm_{major}{minor}"
    missing = missing_compiler((major, minor))
    if missing:
        print(
            f"bench/cuda_kernels.py needs CUDA's compiler libraries (NVVM and NVRTC; no GPU): they "
            f"could not compile a test kernel for compute capability {arguments.cc} ({missing}). "
            'Install them with: pip install "numba-cuda[cu13]" (or [cu12] for a CUDA 12 toolkit).',
            file=sys.stderr,
        )
        return 2
    print(
        f"launch bounds {LAUNCH_BOUNDS}; loop = the hot loop (interior path, kernel columns, as unrolled)"
    )
    print(
        f"{'dtype':8} {'stride':>6} {'pixels':>6} {'filters':>7} {'registers':>9} {'spills':>6} {'smem':>6} "
        f"{'loop':>5} {'fma':>4} {'lds':>4} {'ldl/stl':>7} {'fma share':>9}"
    )
    for dtype_name in ("float32", "float64"):
        for unit_stride in (True, False):
            for pixels in PIXEL_BLOCKS:
                for filters in FILTER_BLOCKS:
                    function = correlate_function(dtype_name, pixels, filters, 16, unit_stride)
                    ptx, _ = cuda.compile_ptx(
                        function,
                        signature(dtype_name),
                        cc=(major, minor),
                        launch_bounds=LAUNCH_BOUNDS,
                    )
                    assembled = assemble(ptx, arch)
                    if assembled is None:
                        print(
                            f"{dtype_name:8} {'1' if unit_stride else 's':>6} {pixels:6d} {filters:7d}  "
                            "(no ptxas: PTX only)"
                        )
                        continue
                    resources, sass = assembled
                    loop, fma, lds, local = inner_loop(sass) if sass else (0, 0, 0, 0)
                    share = f"{fma / loop:9.0%}" if loop else f"{'-':>9}"
                    print(
                        f"{dtype_name:8} {'1' if unit_stride else 's':>6} {pixels:6d} {filters:7d} "
                        f"{resources['registers']:9d} {resources['spills']:6d} {resources['shared']:6d} "
                        f"{loop:5d} {fma:4d} {lds:4d} {local:7d} {share}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
