import equinox as eqx


class Converged(eqx.Module):
    r"""The steady-state stop: end the flow when the problem's relative excess loss
    $\sqrt{(L-L^\star)/(L(0)-L^\star)}$ falls below `rtol`, or when the scaled gradient
    $\|\nabla_\theta L\|\,\|\theta\| / (2 L_{\rm ref})$ falls below `gtol` (off by default:
    near a small initialisation the gradient is tiny although the flow has not started).

    The stop is relative, so it is reachable whatever the scale of data and parameters
    (an absolute loss threshold can sit below the floating-point floor of
    $w_+^D - w_-^D$ when both terms are large).

    **Arguments:**

    - `rtol`: relative excess-loss tolerance (default `1e-10`).
    - `gtol`: optional scaled-gradient tolerance, for problems with no interpolating solution
      that the model can reach (e.g. a low-rank factorisation of a full-rank target).
    """

    rtol: float = 1e-10
    gtol: float | None = None

    def __check_init__(self):
        if not (self.rtol > 0):
            raise ValueError(f"`Converged(rtol=...)` must be > 0, got {self.rtol}.")
        if self.gtol is not None and not (self.gtol > 0):
            raise ValueError(f"`Converged(gtol=...)` must be > 0 or None, got {self.gtol}.")
