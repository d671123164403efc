"""Recover a blur kernel from blurred, noisy images by gradient descent in PyTensor.

The model is one convolution layer, ``convkit.pytensor.conv2d``: PyTensor differentiates
the mean squared error with respect to the kernel through convkit's gradient, and a
shared variable takes plain gradient steps.  Run it as ``python recover_blur_kernel.py``.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

import convkit
import convkit.pytensor


def gaussian_kernel(size: int = 5, width: float = 1.0) -> np.ndarray:
    """A normalized Gaussian blur, as a ``(1, 1, size, size)`` filter bank."""
    offsets = np.arange(size) - size // 2
    profile = np.exp(-0.5 * (offsets / width) ** 2)
    kernel = np.outer(profile, profile)
    return (kernel / kernel.sum())[None, None]


def recover(steps: int = 30, learning_rate: float = 0.4, seed: int = 0):
    """Blur random images with a known kernel, add noise, and fit the kernel back.

    Returns the fitted kernel, the true one and the loss after each step.
    """
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((4, 1, 32, 32))
    true_kernel = gaussian_kernel()
    observed = convkit.conv2d(images, true_kernel, border_mode="half")
    observed += 0.01 * rng.standard_normal(observed.shape)

    kernel = pytensor.shared(np.zeros_like(true_kernel), name="kernel")
    x, y = pt.tensor4("x"), pt.tensor4("y")
    predicted = convkit.pytensor.conv2d(x, kernel, border_mode="half")
    loss = pt.mean((predicted - y) ** 2)
    step = pytensor.function(
        [x, y], loss, updates=[(kernel, kernel - learning_rate * pytensor.grad(loss, kernel))]
    )
    losses = [float(step(images, observed)) for _ in range(steps)]
    return kernel.get_value(), true_kernel, losses


if __name__ == "__main__":
    fitted, true_kernel, losses = recover()
    print(f"loss {losses[0]:.2e} -> {losses[-1]:.2e}")
    print(f"largest kernel error {np.abs(fitted - true_kernel).max():.1e}")
