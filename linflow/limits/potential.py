r"""Separable potentials $\Phi(\beta) = \sum_i\varphi_i(\beta_i)$: the implicit bias of a
diagonal-like parametrisation, and the mirror map of its reduced flow.

Along the gradient flow of such a parametrisation on any loss of $X\beta$, the predictor is
an explicit function of the dual point $s = X^\top\nu$: $\beta(t) = \nabla\Phi^*(s(t))$
(Woodworth et al. 2020, proof of Thm 1; Yun et al. 2021, Thm 5). Its limit on a regression
problem is therefore $\arg\min\Phi(\beta)$ s.t. $X\beta = y$ (`linflow.limits.dual_minimise`).

A potential carries, in log space:

- `primal(s)`: $\beta = \nabla\Phi^*(s)$;
- `curvature(s)`: $\nabla^2\Phi^*(s)$ (diagonal), positive;
- `conjugate(s)`: $\Phi^*(s) - \Phi^*(0)$ (the dual objective's terms);
- `value(beta)`: $\Phi(\beta)$ (up to an additive constant), with $\nabla\Phi(\beta) = s$.

Its scale $\alpha$ enters only as a prefactor: $\beta_i = \alpha^{P} e^{m_i} g_i(s_i)$ with
`power` $P$ and a fixed shape $g_i$, so the dual solver can continue in $\alpha$ from the kernel
regime (large $\alpha$) by evaluating `dual_terms(s, log_scale)` at other scales. A *bounded*
potential ($g_i$ has poles, e.g. the hypentropy at depth $D \ge 3$) has a normalised distance to
its domain's boundary `gap(s)` in $(0, 1]$ that shrinks like $\alpha^{\text{gap\_power}}$ at a
fixed $\beta$ on the support, and $g_i$ blows up like $\text{gap}^{-P/\text{gap\_power}}$.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class AbstractPotential(eqx.Module):
    r"""A separable potential $\Phi$ with its conjugate's gradient $\beta = \nabla\Phi^*(s)$ in
    log space (module doc).

    Subclasses give the static `power` ($P$: $\beta \propto \alpha^P$ at a fixed $s$) and
    `gap_power` (0 for potentials defined on all of $\mathbb R^d$) and implement `log_scale`,
    `log_amplitude`, `dual_terms` and `value`; bounded ones also `gap`, `gap_rate` and
    `side`.
    """

    @property
    @abc.abstractmethod
    def power(self) -> int:
        """$P$: $\\beta \\propto \\alpha^P$ at a fixed $s$ (static)."""

    @property
    @abc.abstractmethod
    def gap_power(self) -> int:
        """0 for potentials defined on all of $\\mathbb R^d$; else the power of $\\alpha$ the
        gaps to the boundary scale with on the support (static)."""

    @abc.abstractmethod
    def log_scale(self) -> Float[Array, ""]:
        r"""$\log\alpha$, the scale the solver continues in."""

    @abc.abstractmethod
    def log_amplitude(self) -> Float[Array, "..."]:
        r"""$m_i$: the coordinate prefactors $\beta_i = \alpha^P e^{m_i} g_i(s_i)$ (shape `()` or
        `(d,)`); they set the kernel regime's scale."""

    @abc.abstractmethod
    def dual_terms(
        self, s: Float[Array, " d"], log_scale: Float[Array, ""]
    ) -> tuple[Float[Array, " d"], Float[Array, " d"], Float[Array, " d"]]:
        r"""$(\beta, \psi, \psi'')$ at $s$ for the potential rescaled to
        $\alpha = e^{\text{log\_scale}}$: $\beta = \psi'(s)$, $\psi = \Phi^*(s) - \Phi^*(0)$ and the
        curvature $\psi''(s) > 0$. Off the domain $\beta$ is NaN and $\psi = +\infty$."""

    @abc.abstractmethod
    def value(self, beta: Float[Array, " d"]) -> Float[Array, ""]:
        r"""$\Phi(\beta)$ (up to an additive constant)."""

    @property
    def bounded(self) -> bool:
        """Whether the conjugate's domain is bounded (poles of $\\beta(s)$)."""
        return self.gap_power > 0

    def two_sided(self) -> Bool[Array, " d"]:
        r"""Whether $|\beta_i(s_i)| \to \infty$ at both ends of $s_i$'s domain, coordinate-wise.

        Then $\beta_i$ converges only where $s_i$ does: a dual coordinate that keeps drifting
        means a coordinate still escaping (`AbstractFlowSystem.mirror_coordinates`). A
        one-sided coordinate ($w_-(0) = 0$, say) tends to $\beta_i = 0$ as $s_i \to \pm\infty$,
        a steady state its dual coordinate never reaches. Default: every coordinate
        two-sided."""
        return jnp.ones(jnp.shape(self.log_amplitude()), bool)

    def primal(self, s: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""$\beta = \nabla\Phi^*(s)$."""
        return self.dual_terms(s, self.log_scale())[0]

    def conjugate(self, s: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""$\Phi^*(s) - \Phi^*(0)$ coordinate-wise."""
        return self.dual_terms(s, self.log_scale())[1]

    def curvature(self, s: Float[Array, " d"]) -> Float[Array, " d"]:
        r"""$\partial\beta_i/\partial s_i$."""
        return self.dual_terms(s, self.log_scale())[2]

    def gap(self, s: Float[Array, " d"]) -> Float[Array, " d"]:
        """The normalised distance of each $s_i$ to the domain's boundary, in $[0, 1]$ (1 for
        unbounded potentials)."""
        return jnp.ones_like(s)

    def gap_rate(self, s: Float[Array, " d"]) -> Float[Array, " d"]:
        """$|\\partial\\,\\text{gap}_i/\\partial s_i|$ (0 for unbounded potentials)."""
        return jnp.zeros_like(s)

    def side(self, s: Float[Array, " d"]) -> Float[Array, " d"]:
        """The sign of $\\beta_i$ near the nearer boundary of $s_i$'s domain."""
        return jnp.sign(s)

    def room(self, s: Float[Array, " d"], ds: Float[Array, " d"]) -> Float[Array, " d"]:
        """The normalised distance to the boundary in the direction of `ds` (for the
        fraction-to-the-boundary rule; symmetric domains by default)."""
        gap = self.gap(s)
        return jnp.where(ds * self.side(s) > 0, gap, 2 - gap)

    def rounding(self, s: Float[Array, " d"]) -> Float[Array, " d"]:
        """The rounding magnitude of $\\beta$ that the dual point $s$ itself carries (beyond
        $|\\beta|$; zero unless the potential's coordinates lose digits near its boundary)."""
        return jnp.zeros_like(s)

    def boundary_scale(self, X: Float[Array, "n d"]) -> Float[Array, ""] | None:
        """The typical size of $\\nu$ at which a coordinate reaches the domain's boundary, or
        `None` (unbounded potentials, or none known)."""
        return None
