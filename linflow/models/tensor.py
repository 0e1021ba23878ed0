r"""Linear tensor networks (Yun, Krishnan, Mobahi, ICLR 2021, Sec. 3 and App. A).

A linear tensor network computes $f(x;\Theta) = \mathcal M(x)\circ(v_1,\dots,v_L)$, a
multilinear form of the layer vectors $v_l\in\mathbb R^{k_l}$ with a data tensor
$\mathcal M(x)$ linear in $x$ (eq. (6)). So $f(x;\Theta) = x^\top\beta(\Theta)$ and the
model's predictor is $\beta\in\mathbb R^d$. Three architectures are implemented:

- diagonal, eq. (11): $f = (x\odot w_1\odot\cdots\odot w_{L-1})^\top w_L$, so
  $\beta = w_1\odot\cdots\odot w_L$;
- circular convolution, eq. (12): $f = (\cdots((x\star w_1)\star w_2)\cdots\star w_{L-1})^\top w_L$
  with $[a\star b]_i = \sum_{j=1}^{k} a_{(i+j-1)\bmod d}\, b_j$, filters $w_l\in\mathbb R^{k_l}$
  ($k_L = d$). In the DFT domain $\hat\beta = \prod_l \hat w_l$ (filters zero-padded to $d$),
  i.e. $\beta = w_1 * \cdots * w_L$, the circular convolution of all filters;
- fully connected, eq. (10): $f = x^\top W_1\cdots W_{L-1} w_L$, $v_l = \operatorname{vec}(W_l)$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import as_float_array, check_count, check_depth, check_positive
from .._fourier import dft_matrix as dft_matrix, is_even as is_even
from ._base import AbstractModel


KINDS = ("diagonal", "convolution", "fully_connected")
_FFT_MIN_D = 64


def _check_depth(depth) -> int:
    return check_depth(depth)


def _check_d(d) -> int:
    return check_count(d, "d")


def _check_kind(kind) -> str:
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}, got {kind!r}.")
    return kind


class TensorNet(AbstractModel):
    r"""A linear tensor network $f(x;\Theta) = \mathcal M(x)\circ(v_1,\dots,v_L) = x^\top\beta$
    (Yun et al. 2021, eq. (6)), in one of three architectures (`kind`):

    - `"diagonal"` (eq. (11)): `layers[l]` of shape `(d,)`, $\beta = w_1\odot\cdots\odot w_L$.
    - `"convolution"` (eq. (12), circular): `layers[l]` of shape `(k_l,)` with $k_l \le d$ and
      $k_L = d$; $\beta = w_1 * \cdots * w_L$ (circular convolution of the zero-padded filters).
    - `"fully_connected"` (eq. (10)): `layers[l]` of shape `(d_l, d_{l+1})` for $l < L$
      ($d_1 = d$) and `layers[-1]` of shape `(d_L,)`; $\beta = W_1\cdots W_{L-1}w_L$.

    The gradient flow of any loss of $\beta$ conserves the quantities in `conserved()`: the
    per-coordinate imbalances $[U_l^\top v_l]_j^2 - [U_{l+1}^\top v_{l+1}]_j^2$ of the
    orthogonal decomposition (App. F.2.1: diagonal with $U_l = I$, full-length convolution in
    the DFT domain), the layer norms' imbalances $\|v_l\|^2 - \|v_{l+1}\|^2$ (any multilinear
    model), and for fully connected networks $W_l^\top W_l - W_{l+1}W_{l+1}^\top$ (App. H).

    Construct with the factories `diagonal`, `convolution`, `fully_connected` (random
    directions from an explicit key), `from_directions` (given $\bar v_l$: Thm 6, Thm 7) or
    `from_eta` ($v_l = \alpha U_l\eta$, $v_L = 0$: Thm 5, Cor. 5-6).

    **Fields:**

    - `layers`: the tuple $(v_1,\dots,v_L)$ (matrices $W_l$ for fully connected layers).
    - `kind`: `"diagonal"`, `"convolution"` or `"fully_connected"` (static).
    """

    layers: tuple[Float[Array, "..."], ...]
    kind: str = eqx.field(static=True)

    def __init__(self, layers, kind: str):
        kind = _check_kind(kind)
        if not isinstance(layers, (tuple, list)):
            raise TypeError(f"`layers` must be a tuple of arrays, got {type(layers).__name__}.")
        if len(layers) < 2:
            raise ValueError(
                f"`layers` must hold at least 2 arrays (depth L >= 2), got {len(layers)}."
            )
        layers = tuple(as_float_array(v, f"layers[{i}]") for i, v in enumerate(layers))
        L = len(layers)
        if kind in ("diagonal", "convolution"):
            for i, v in enumerate(layers):
                if v.ndim != 1 or v.shape[0] == 0:
                    raise ValueError(
                        f"`layers[{i}]` of a {kind} network must be a non-empty vector, got "
                        f"shape {tuple(v.shape)}."
                    )
            d = layers[-1].shape[0]
            for i, v in enumerate(layers[:-1]):
                if kind == "diagonal" and v.shape[0] != d:
                    raise ValueError(
                        f"All layers of a diagonal network must have shape ({d},); "
                        f"`layers[{i}]` has shape {tuple(v.shape)}."
                    )
                if kind == "convolution" and v.shape[0] > d:
                    raise ValueError(
                        f"Filter `layers[{i}]` has size {v.shape[0]} > d = {d} (the last "
                        "layer's size): circular convolution filters need k_l <= d."
                    )
        else:
            for i, W in enumerate(layers[:-1]):
                if W.ndim != 2:
                    raise ValueError(
                        f"`layers[{i}]` of a fully connected network must be a matrix, got "
                        f"shape {tuple(W.shape)}."
                    )
            if layers[-1].ndim != 1:
                raise ValueError(
                    f"The last layer `layers[{L - 1}]` of a fully connected network must be a "
                    f"vector w_L, got shape {tuple(layers[-1].shape)}."
                )
            for i in range(L - 1):
                nxt = layers[i + 1].shape[0]
                if layers[i].shape[1] != nxt:
                    raise ValueError(
                        f"`layers[{i}]` has {layers[i].shape[1]} columns but `layers[{i + 1}]` "
                        f"has {nxt} rows: consecutive layers must compose."
                    )
        self.layers = layers
        self.kind = kind

    # ------------------------------------------------------------------ factories
    @classmethod
    def diagonal(
        cls, key: PRNGKeyArray, d: int, depth: int, alpha, *, zero_last: bool = True
    ) -> "TensorNet":
        r"""A depth-$L$ diagonal network (eq. (11)) with $w_l(0) = \alpha\bar w_l$,
        $\bar w_l\sim\mathcal N(0, I_d)$ for $l < L$ and $\bar w_L = 0$ (or Gaussian if
        `zero_last=False`). With $\bar w_L = 0$ the conditions of Thm 2 / Cor. 2 hold with
        probability one (Remark 1)."""
        d, depth = _check_d(d), _check_depth(depth)
        sizes = [(d,)] * depth
        return cls._random(key, sizes, alpha, "diagonal", zero_last)

    @classmethod
    def convolution(
        cls,
        key: PRNGKeyArray,
        d: int,
        depth: int,
        alpha,
        filter_sizes: tuple[int, ...] | None = None,
        *,
        zero_last: bool = True,
    ) -> "TensorNet":
        r"""A depth-$L$ circular convolutional network (eq. (12)) with filters
        $w_l(0) = \alpha\bar w_l\in\mathbb R^{k_l}$, $\bar w_l$ Gaussian with variance $1/k_l$
        for $l < L$, $\bar w_L = 0$ (or Gaussian if `zero_last=False`).

        **Arguments:**

        - `filter_sizes`: `None` for full-length filters ($k_l = d$, Cor. 3, 6), or a tuple
          $(k_1,\dots,k_{L-1})$ with $1\le k_l\le d$ (Cor. 4's small filters); $k_L = d$.
        """
        d, depth = _check_d(d), _check_depth(depth)
        if filter_sizes is None:
            ks = [d] * (depth - 1)
        else:
            ks = list(filter_sizes)
            if len(ks) != depth - 1:
                raise ValueError(
                    f"`filter_sizes` must hold depth - 1 = {depth - 1} sizes (k_1..k_(L-1); "
                    f"k_L = d), got {len(ks)}."
                )
            for i, k in enumerate(ks):
                if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d:
                    raise ValueError(
                        f"`filter_sizes[{i}]` must be an integer in [1, d] = [1, {d}], got {k!r}."
                    )
        sizes = [(int(k),) for k in ks] + [(d,)]
        return cls._random(key, sizes, alpha, "convolution", zero_last)

    @classmethod
    def fully_connected(
        cls,
        key: PRNGKeyArray,
        d: int,
        depth: int,
        alpha,
        widths: tuple[int, ...] | None = None,
        *,
        zero_last: bool = True,
    ) -> "TensorNet":
        r"""A depth-$L$ fully connected network $x^\top W_1\cdots W_{L-1}w_L$ (eq. (10)) with
        $W_l(0) = \alpha\bar W_l$, entries of $\bar W_l$ i.i.d. $\mathcal N(0, 1/d_l)$,
        $w_L(0) = 0$ (or Gaussian if `zero_last=False`).

        **Arguments:**

        - `widths`: hidden widths $(d_2,\dots,d_L)$ (default all $d$).
        """
        d, depth = _check_d(d), _check_depth(depth)
        ws = [d] * (depth - 1) if widths is None else [int(w) for w in widths]
        if len(ws) != depth - 1 or any(w < 1 for w in ws):
            raise ValueError(
                f"`widths` must hold depth - 1 = {depth - 1} positive widths, got {widths!r}."
            )
        dims = [d] + ws
        sizes = [(dims[i], dims[i + 1]) for i in range(depth - 1)] + [(dims[-1],)]
        return cls._random(key, sizes, alpha, "fully_connected", zero_last)

    @classmethod
    def _random(cls, key, sizes, alpha, kind, zero_last):
        alpha = check_positive(alpha, "alpha")
        dtype = jnp.result_type(float)
        keys = jr.split(key, len(sizes))
        layers = []
        for i, (k, shape) in enumerate(zip(keys, sizes)):
            if zero_last and i == len(sizes) - 1:
                layers.append(jnp.zeros(shape, dtype))
            else:
                layers.append(alpha * jr.normal(k, shape, dtype) / np.sqrt(shape[0]))
        return cls(tuple(layers), kind)

    @classmethod
    def from_directions(cls, kind: str, directions, alpha) -> "TensorNet":
        r"""The network with $v_l(0) = \alpha\bar v_l$ for given initial directions
        $\bar v_l$ (Yun et al., Sec. 2.1): e.g. Thm 6's $(\bar v_1, \bar v_2)$ or Thm 7's
        $(\bar W_1,\dots,\bar W_{L-1},\bar w_L)$.

        **Arguments:**

        - `kind`: `"diagonal"`, `"convolution"` or `"fully_connected"`.
        - `directions`: the tuple $(\bar v_1,\dots,\bar v_L)$, shapes as in `layers`.
        - `alpha`: the initial scale $\alpha > 0$.
        """
        alpha = check_positive(alpha, "alpha")
        if not isinstance(directions, (tuple, list)):
            raise TypeError(f"`directions` must be a tuple of arrays, got {type(directions)}.")
        return cls(tuple(alpha * as_float_array(v, "directions") for v in directions), kind)

    @classmethod
    def from_eta(cls, kind: str, eta, depth: int, alpha) -> "TensorNet":
        r"""Theorem 5's initialisation $v_l(0) = \alpha U_l\eta$ for $l < L$, $v_L(0) = 0$.

        - `"diagonal"` ($U_l = I$, Cor. 5): $w_l(0) = \alpha\eta$.
        - `"convolution"`, full length ($U_l = F^*$, Cor. 6): $w_l(0) = \alpha F^*\eta$; $\eta$
          must be real and *even* ($\eta_{j+2} = \eta_{d-j}$), so that the filters are real
          and even and Cor. 6 applies.

        Theorem 5 needs $|\eta_j| \ge \lambda > 0$ for every $j$ (loss converges to zero).

        **Arguments:**

        - `kind`: `"diagonal"` or `"convolution"`.
        - `eta`: shape `(d,)`, the initial direction in the transformed space.
        - `depth`: $L \ge 2$.
        - `alpha`: the initial scale.
        """
        depth = _check_depth(depth)
        alpha = check_positive(alpha, "alpha")
        eta = as_float_array(eta, "eta", ndim=1)
        if kind == "diagonal":
            v = alpha * eta
        elif kind == "convolution":
            if not is_even(eta):
                raise ValueError(
                    "`eta` must be even (eta[j+1] == eta[d-1-j] for 0-based j; Yun et al., "
                    "Cor. 6) for a real convolutional initialisation v_l = alpha F^* eta."
                )
            F = dft_matrix(eta.shape[0])
            v = alpha * jnp.real(jnp.conj(F) @ eta.astype(F.dtype))
        else:
            raise ValueError(
                f"`from_eta` needs kind 'diagonal' or 'convolution' (Thm 5 needs an orthogonal "
                f"decomposition), got {kind!r}; use `from_directions` for fully connected "
                "networks (Thm 7)."
            )
        return cls(tuple([v] * (depth - 1) + [jnp.zeros_like(v)]), kind)

    # ------------------------------------------------------------------ structure
    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def d(self) -> int:
        """The input dimension $d$."""
        if self.kind == "fully_connected":
            return self.layers[0].shape[0]
        return self.layers[-1].shape[0]

    @property
    def full_length(self) -> bool:
        """Whether every convolution filter has length $d$ (always true for diagonal nets)."""
        return all(v.shape == self.layers[-1].shape for v in self.layers)

    def vectors(self) -> tuple[Float[Array, " k"], ...]:
        r"""The layer vectors $v_l$ of the tensor formulation ($v_l = \operatorname{vec}(W_l)$,
        column-major, for fully connected layers)."""
        return tuple(jnp.ravel(v, order="F") for v in self.layers)

    def with_vectors(self, vectors) -> "TensorNet":
        """The same architecture with layer vectors $v_l$ (inverse of `vectors()`)."""
        layers = tuple(
            jnp.reshape(jnp.asarray(v), w.shape, order="F") for v, w in zip(vectors, self.layers)
        )
        return TensorNet(layers, self.kind)

    def output(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        r"""$f(x;\Theta)$ computed layer by layer from the definitions (eqs. (10)-(12)), not
        through $\beta$."""
        if self.kind == "diagonal":
            h = x
            for w in self.layers[:-1]:
                h = h * w
            return h @ self.layers[-1]
        if self.kind == "convolution":
            d = self.d
            h = x
            for w in self.layers[:-1]:
                k = w.shape[0]
                idx = (np.arange(d)[:, None] + np.arange(k)[None, :]) % d
                h = h[idx] @ w
            return h @ self.layers[-1]
        h = x
        for W in self.layers[:-1]:
            h = h @ W
        return h @ self.layers[-1]

    def data_tensor(self, x: Float[Array, " d"]) -> Float[Array, "..."]:
        r"""The data tensor $\mathcal M(x)\in\mathbb R^{k_1\times\cdots\times k_L}$ with
        $f(x;\Theta) = \mathcal M(x)\circ(v_1,\dots,v_L)$ (eq. (6)): the mixed $L$-th
        derivative of the multilinear $f$ in $(v_1,\dots,v_L)$ (for fully connected networks;
        the explicit $[\mathcal M]_{j\cdots j} = x_j$ and
        $[\mathcal M]_{j_1\cdots j_L} = x_{(\sum_l j_l - L + 1)\bmod d}$ of Sec. 3 for
        diagonal and convolutional ones). Size $\prod_l k_l$: for small
        networks (tests, Thm 3 and Thm 6)."""
        x = jnp.asarray(x)
        if self.kind == "diagonal":
            d, L = self.d, self.depth
            flat = jnp.zeros(d**L, x.dtype).at[np.arange(d) * sum(d**i for i in range(L))]
            return flat.set(x).reshape((d,) * L)
        if self.kind == "convolution":
            shape = tuple(v.shape[0] for v in self.layers)
            return x[np.indices(shape).sum(axis=0) % self.d]
        vs = self.vectors()

        def f(*v):
            return self.with_vectors(v).output(x)

        fn = f
        for i in range(self.depth):
            fn = jax.jacfwd(fn, argnums=i)
        return fn(*vs)

    # ------------------------------------------------------------------ AbstractModel
    def predictor(self) -> Float[Array, " d"]:
        if self.kind == "diagonal":
            out = self.layers[0]
            for w in self.layers[1:]:
                out = out * w
            return out
        if self.kind == "convolution":
            d = self.d
            if d > _FFT_MIN_D:
                spec = jnp.fft.fft(self.layers[0], n=d)
                for w in self.layers[1:]:
                    spec = spec * jnp.fft.fft(w, n=d)
                return jnp.real(jnp.fft.ifft(spec))
            # Small d: the O(d k) gather beats an FFT's dispatch cost (measured 400x inside
            # a jitted GD scan at d = 2 on CPU).
            out = self.layers[-1]
            for w in reversed(self.layers[:-1]):
                k = w.shape[0]
                idx = (np.arange(d)[:, None] - np.arange(k)[None, :]) % d
                out = out[idx] @ w
            return out
        out = self.layers[-1]
        for W in reversed(self.layers[:-1]):
            out = W @ out
        return out

    def imbalances(self) -> dict[str, tuple[Array, Array]]:
        L = self.depth
        out = {}
        if self.kind == "diagonal":
            for i in range(L - 1):
                out[f"imbalance_{i + 1}"] = (self.layers[i] ** 2, self.layers[i + 1] ** 2)
            return out
        if self.kind == "convolution":
            for i in range(L - 1):
                out[f"norm_imbalance_{i + 1}"] = (
                    jnp.sum(self.layers[i] ** 2),
                    jnp.sum(self.layers[i + 1] ** 2),
                )
            if self.full_length:
                for i in range(L - 1):
                    a = jnp.abs(jnp.fft.fft(self.layers[i])) ** 2
                    b = jnp.abs(jnp.fft.fft(self.layers[i + 1])) ** 2
                    out[f"dft_imbalance_{i + 1}"] = (a, b)
            return out
        for i in range(L - 2):
            W, Wn = self.layers[i], self.layers[i + 1]
            out[f"imbalance_{i + 1}"] = (W.T @ W, Wn @ Wn.T)
        W, w = self.layers[L - 2], self.layers[L - 1]
        out[f"imbalance_{L - 1}"] = (W.T @ W, jnp.outer(w, w))
        return out
