"""Matrix factorisations: two-layer $UV^\\top$, symmetric $UU^\\top$, deep $W_L\\cdots W_1$."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._base import AbstractModel


class TwoLayer(AbstractModel):
    r"""A two-layer linear network with predictor $\Theta = UV^\top$.

    With `linflow.Regression(X, Y)` the loss is $\tfrac12\|Y - XUV^\top\|_F^2$ (Min et al. 2021,
    eq. (1)); with a factorisation problem it is $\tfrac12\|Y - UV^\top\|_F^2$ (Tarmoun et al.
    2021). For any loss of $\Theta$, the flow $\dot U = -\nabla_\Theta L\, V$,
    $\dot V = -\nabla_\Theta L^\top U$ conserves the imbalance $U^\top U - V^\top V$.

    **Fields:**

    - `U`: shape `(D, h)` (input dimension $D$, width $h$).
    - `V`: shape `(m, h)` (output dimension $m$).
    """

    U: Float[Array, "D h"]
    V: Float[Array, "m h"]

    def __check_init__(self):
        if self.U.ndim != 2 or self.V.ndim != 2:
            raise ValueError(
                f"`U` and `V` must be matrices, got shapes {tuple(self.U.shape)} and "
                f"{tuple(self.V.shape)}."
            )
        if self.U.shape[1] != self.V.shape[1]:
            raise ValueError(
                f"`U` (shape {tuple(self.U.shape)}) and `V` (shape {tuple(self.V.shape)}) must "
                "have the same number of columns (the width h)."
            )
        if self.U.shape[1] == 0:
            raise ValueError("The width h (columns of `U` and `V`) must be >= 1.")

    @property
    def width(self) -> int:
        return self.U.shape[1]

    def predictor(self) -> Float[Array, "D m"]:
        return self.U @ self.V.T

    def imbalances(self) -> dict[str, tuple[Array, Array]]:
        return {"imbalance": (self.U.T @ self.U, self.V.T @ self.V)}

    def reachable_optimum(self, problem) -> Float[Array, "D m"] | None:
        """The best predictor of rank at most the width, `problem.best_of_rank(width)`
        (Eckart–Young on a `Factorization`), where the problem knows it."""
        return problem.best_of_rank(self.width)

    def flow_system(self, problem):
        r"""Thin factors in the row space of $X$ (`linflow.lifted.TwoLayerRowSpaceSystem`,
        exact, $q^2$ states with $q = n + m$) where it applies and is smaller than the $(D + m)h$
        parameters (regression with a matrix target and $n < D$); else, on any problem, the
        same factorisation of width $q = D + m$ in the row space of the stacked factors
        (`linflow.lifted.ThinFactorSystem`, exact, $q^2$ states) where the width exceeds $q$;
        the parameters otherwise. `form="full"` forces the parameters."""
        from .._thin_factors import ThinFactorSystem
        from ..lifted import TwoLayerRowSpaceSystem

        if TwoLayerRowSpaceSystem.is_smaller(self, problem):
            return TwoLayerRowSpaceSystem.build(self, problem.X)
        if ThinFactorSystem.is_smaller(self.U.shape[0] + self.V.shape[0], self.width):
            return ThinFactorSystem.build(self)
        return super().flow_system(problem)


class Symmetric(AbstractModel):
    r"""A symmetric factorisation with predictor $UU^\top$ (Tarmoun et al. 2021, Sec. 3).

    **Fields:**

    - `U`: shape `(n, k)`.
    """

    U: Float[Array, "n k"]

    def __check_init__(self):
        if self.U.ndim != 2 or self.U.shape[1] == 0:
            raise ValueError(f"`U` must be a matrix with >= 1 column, got {tuple(self.U.shape)}.")

    def predictor(self) -> Float[Array, "n n"]:
        return self.U @ self.U.T

    def reachable_optimum(self, problem) -> Float[Array, "n n"] | None:
        """The best PSD predictor of rank at most $k$, `problem.best_psd_of_rank(k)` (the top
        positive eigenpairs of the target's symmetric part on a `Factorization`), where the
        problem knows it."""
        return problem.best_psd_of_rank(self.U.shape[1])

    def flow_system(self, problem):
        r"""The same factorisation of width $n$ in the row space of $U$
        (`linflow.lifted.ThinFactorSystem`, exact, $n^2$
        states) where the width $k$ exceeds $n$; the parameters otherwise. `form="full"`
        forces the parameters."""
        from .._thin_factors import ThinFactorSystem

        if ThinFactorSystem.is_smaller(*self.U.shape):
            return ThinFactorSystem.build(self)
        return super().flow_system(problem)


class DeepLinear(AbstractModel):
    r"""A deep linear network with predictor $W_L \cdots W_1$ (layers listed input first).

    The flow conserves the layer-wise imbalances $W_{l+1}^\top W_{l+1} - W_l W_l^\top$
    (Arora et al. 2018; used by Yun et al. 2021, Thm 7).

    **Fields:**

    - `layers`: a tuple $(W_1, \dots, W_L)$, $W_l$ of shape `(d_l, d_{l-1})`.
    """

    layers: tuple[Float[Array, "..."], ...]

    def __init__(self, layers):
        layers = tuple(jnp.asarray(w) for w in layers)
        if len(layers) < 1:
            raise ValueError("`layers` must hold at least one matrix.")
        for i, w in enumerate(layers):
            if w.ndim != 2:
                raise ValueError(f"`layers[{i}]` must be a matrix, got shape {tuple(w.shape)}.")
        for i in range(len(layers) - 1):
            if layers[i + 1].shape[1] != layers[i].shape[0]:
                raise ValueError(
                    f"`layers[{i + 1}]` has {layers[i + 1].shape[1]} columns but `layers[{i}]` "
                    f"has {layers[i].shape[0]} rows: consecutive layers must compose."
                )
        self.layers = layers

    @property
    def depth(self) -> int:
        return len(self.layers)

    def predictor(self) -> Float[Array, "out in"]:
        out = self.layers[0]
        for w in self.layers[1:]:
            out = w @ out
        return out

    def imbalances(self) -> dict[str, tuple[Array, Array]]:
        return {
            f"imbalance_{i + 1}": (
                self.layers[i + 1].T @ self.layers[i + 1],
                self.layers[i] @ self.layers[i].T,
            )
            for i in range(len(self.layers) - 1)
        }


del eqx
