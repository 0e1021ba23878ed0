import numpy as np
from jaxtyping import PRNGKeyArray

from .factorization import TwoLayer
from .inits import gaussian_init


def scaled_gaussian(key: PRNGKeyArray, shape, width: int, alpha: float) -> TwoLayer:
    r"""$U(0)\in\mathbb R^{d_1\times k}$, $V(0)\in\mathbb R^{d_2\times k}$ with i.i.d.
    $\mathcal N(0,\alpha^2)$ entries (Woodworth et al. 2020, Sec. 6 and Fig. 5).

    The predictor $U(0)V(0)^\top$ then has entries of size $\sigma = \alpha^2\sqrt k$ and the
    lifted matrix (`linflow.lifted_matrix`) is $\approx \alpha^2 k\,I$: the regime is set by
    $\alpha^2 k = \sigma\sqrt k$ (rich for $\alpha^2k \ll 1$, kernel for $\alpha^2 k\gg 1$).

    **Arguments:** `key`; `shape` = `(d1, d2)`; `width` $k\ge1$; `alpha` $\ge 0$.

    **Returns:** a `linflow.TwoLayer` (the same draw as
    `linflow.gaussian_init(key, d1, d2, width, alpha, alpha)`).
    """
    if int(width) != width or int(width) < 1:
        raise ValueError(f"`width` must be a positive integer (the width k), got {width!r}.")
    try:
        d1, d2 = (int(s) for s in shape)
    except (TypeError, ValueError) as e:
        raise ValueError(f"`shape` must be a pair of positive ints, got {shape!r}.") from e
    if d1 < 1 or d2 < 1:
        raise ValueError(f"`shape` must be a pair of positive ints, got {shape!r}.")
    if not (np.isfinite(float(alpha)) and float(alpha) >= 0):
        raise ValueError(f"`alpha` must be a finite number >= 0, got {alpha!r}.")
    return gaussian_init(key, d1, d2, int(width), alpha, alpha)
