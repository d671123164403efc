"""Draw docs/_static/boundaries.png: one synthetic image blurred with each boundary.

    python docs/make_boundary_figure.py [--out PATH]

The image is made here (no downloads): a bright bar along the left edge, a
two-sample white line along the top edge, a disc touching it, a checkerboard in
the lower right corner and a dark right half.  A 41x41 Gaussian blur ("same")
reaches 20 samples past each edge, so each boundary rule shows in the border:
"fill" darkens it, "wrap" brings in the opposite side, "nearest" repeats the top
line 20 times (a bright band), "symm" reflects its two rows and "mirror" only one.
Needs matplotlib (the ``docs`` extra).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import convkit

BOUNDARIES = ("fill", "wrap", "symm", "mirror", "nearest")
OUT = Path(__file__).resolve().parent / "_static" / "boundaries.png"


def test_image(size: int = 192) -> np.ndarray:
    """The synthetic picture, values in [0, 1]."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.where(x < size / 2, 0.55, 0.15)
    image[:, : size // 12] = 1.0
    image[np.hypot(x - 0.6 * size, y - size / 10) < size / 7] = 0.9
    corner = (x > 0.65 * size) & (y > 0.65 * size)
    checks = ((x // (size / 16)).astype(int) + (y // (size / 16)).astype(int)) % 2
    image[corner] = checks[corner]
    image[:2] = 1.0
    return image


def gaussian(size: int = 41, sigma: float = 7.0) -> np.ndarray:
    """A normalized ``size`` x ``size`` Gaussian kernel."""
    t = np.arange(size) - size // 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"PNG to write (default {OUT})")
    arguments = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, kernel = test_image(), gaussian()
    panels = [("input", image)] + [
        (f'boundary="{name}"', convkit.convolve_nd(image, kernel, "same", boundary=name))
        for name in BOUNDARIES
    ]
    figure, axes = plt.subplots(2, 3, figsize=(9, 6.6), layout="constrained")
    for axis, (title, picture) in zip(axes.flat, panels, strict=True):
        axis.imshow(picture, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize=11, family="monospace")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.suptitle(
        "convolve_nd(image, 41x41 Gaussian, 'same', boundary=...)", fontsize=12, family="monospace"
    )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(arguments.out, dpi=80)
    plt.close(figure)
    print(f"wrote {arguments.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
