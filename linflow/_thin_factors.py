r"""Wide factorisations integrated as a thin factorisation in their initial row space.

For `TwoLayer(U, V)` and `Symmetric(U)` on *any* problem, the flow moves the stacked factors
$Z$ ($q \times h$: $Z = [U; V]$, $q = d_1 + d_2$, or $Z = U$, $q = n$) by a $q \times q$
matrix that depends on the predictor only,

$$\dot Z = -S(g)\,Z,\qquad g = \nabla L(\Theta),$$

with $S = [[0, g], [g^\top, 0]]$ for $Z = [U; V]$ and $S = g + g^\top$ for $Z = U$. So the rows
of $Z(t)$ stay in the row space of $Z(0)$. With $F$ ($h \times q$, orthonormal columns) from
$Z(0)^\top = FR$ (QR), $Z(0) = Z(0)FF^\top$, and the factors are

$$Z(t) = N(t)\,F^\top,\qquad N = ZF\ (q \times q),\qquad \dot N = -S(g)\,N,$$

where $\Theta = UV^\top = N_UN_V^\top$ (or $UU^\top = NN^\top$): $N$ follows the gradient flow
of the *same* factorisation with width $q$, started at $Z(0)F$. The state has $q^2$ entries
against the $qh$ parameters: smaller whenever the width exceeds $q$ (matrix sensing and
completion with many hidden units; e.g. $d_1 = d_2 = 6$, $h = 500$: 144 states instead of
6,000). `FlowSolution.final` and `sol.models` are the user's own model, $Z(t) = N(t)F^\top$
exactly at every save, for any start (a rank-deficient or zero $Z(0)$ included: its rows lie
in the span of $F$ all the same).

Since $F$ is orthonormal, $N$ is $Z$ in an orthonormal basis of its row space: the thin flow
has the parameter flow's conditioning, step sizes and stiffness, and `linflow.Auto` chooses
its solver as for the parameters. (Integrating instead the propagator $M$, $Z(t) = M(t)Z(0)$,
measures errors in coordinates skewed by $Z(0)$; from a small initialisation an explicit
solver's derivatives then grow without bound on the stiff end of the flow, and implicit
solvers stall there.)

Derivatives with respect to the start pass through the QR factor $F$, which follows the start
smoothly where it has full row rank $q$ (any generic start): there $Z = ZFF^\top$ holds for
every start nearby, so derivatives of every order are the parameter flow's. At a start of
deficient row rank (zero factors; `linflow.spectral_init` and `linflow.balanced_init` at
widths above $q$; the smallest singular value below $\sqrt\varepsilon$ of the largest) a
perturbed start leaves the span of $F$, and derivatives with respect to the start come out
NaN, never a wrong number: differentiate `form="full"` there. Derivatives with respect to the
problem's data are exact from any start.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._adjoint import poison_tangent
from ._system import AbstractFlowSystem, gradient_field
from .models._base import AbstractModel


class ThinFactorSystem(AbstractFlowSystem):
    r"""A wide factorisation (`TwoLayer` or `Symmetric`, width $h$ above its $q$ stacked
    rows) integrated as the same factorisation of width $q$ in the row space of its start
    (module docstring): the state is the thin model $N = ZF$, its field the thin model's
    gradient flow, and the wide model $Z = NF^\top$.

    **Fields:**

    - `thin`: the model at $t = 0$ in the frame, every factor $A \mapsto AF$ (width $q$).
    - `back`: $F^\top$, shape `(q, h)`: the wide factors are $N(t)F^\top$. (Where $h \le q$,
      as the row-space form of `linflow.lifted.TwoLayerRowSpaceSystem` may have, $F$ is
      $h \times h$ orthogonal and $N$ is $q \times h$.)
    """

    thin: AbstractModel
    back: Float[Array, "q h"]
    name = "thin"

    @classmethod
    def build(cls, model: AbstractModel) -> "ThinFactorSystem":
        """The thin form of `model`, whose array leaves are its factors, each of shape
        `(rows, h)`."""
        Z0 = jnp.concatenate(jax.tree.leaves(eqx.filter(model, eqx.is_array)), axis=0)
        frame = row_space_basis(Z0)
        return cls(_times(model, frame), frame.T)

    @staticmethod
    def is_smaller(q: int, h: int) -> bool:
        """Whether the width-$q$ factorisation has fewer states than the width-$h$ one
        ($h > q$)."""
        return h > q

    def initial_state(self):
        return self.thin

    def vector_field(self, t, y, problem):
        del t
        return gradient_field(y, problem)

    def to_model(self, y):
        return _times(y, self.back)

    def predictor(self, y):
        return y.predictor()

    def predictor_magnitude(self, y, predictor):
        del predictor
        return y.predictor_magnitude()

    @property
    def is_reduced(self) -> bool:
        # The same manifold of minimisers as the parameter flow (any rotation of the
        # factors' columns): no isolated steady state for `linflow.ImplicitAdjoint`.
        return False


def row_space_basis(A: Float[Array, "q h"]) -> Float[Array, "h r"]:
    r"""$Q$ of $A^\top = QR$: orthonormal columns ($r = \min(q, h)$) whose span contains the
    row space of $A$ whatever its rank, so $A = AQQ^\top$.

    Where $A$ has full row rank $q < h$, $Q$ follows $A$ smoothly and $A' = A'QQ^\top$ holds
    for every $A'$ nearby, so derivatives through it are exact; where it does not (smallest
    singular value at most $\sqrt\varepsilon$ of the largest), a perturbed $A$ leaves the
    span of $Q$, and the derivative of $Q$ is NaN, never a wrong number. Where $h \le q$, $Q$
    is square and orthogonal, the identity holds for every $A$, and $Q$ carries no
    derivative."""
    Q = jnp.linalg.qr(A.T)[0]
    if Q.shape[0] == Q.shape[1]:
        return jax.lax.stop_gradient(Q)
    s = jnp.linalg.svd(jax.lax.stop_gradient(A), compute_uv=False)
    return poison_tangent(Q, s[-1] > jnp.sqrt(jnp.finfo(A.dtype).eps) * s[0])


def _times(model, B):
    """`model` with every factor (array leaf) multiplied by `B` on the right."""
    return jax.tree.map(lambda A: A @ B if eqx.is_array(A) else A, model)
