"""An independent high-precision reference for the depth-D (D >= 3) hypentropy minimiser.

Pure Python `decimal` arithmetic (60 significant digits): damped Newton on the dual
F(nu) = sum_i psi_i((X^T nu)_i) - y^T nu, continued in alpha from the kernel regime. At 60
digits the gaps 1 - |z_i| ~ 1e-24 of tiny alpha are resolved, which float64 cannot do, so this
checks the float64 solver (and its error estimate) where it is hardest. Only for tiny problems.
"""

from decimal import Decimal, getcontext


getcontext().prec = 60


def _pow(x, e):
    return (e * x.ln()).exp()


def _solve(A, b):
    n = len(b)
    M = [row[:] + [b[i]] for i, row in enumerate(A)]
    for k in range(n):
        piv = max(range(k, n), key=lambda i: abs(M[i][k]))
        M[k], M[piv] = M[piv], M[k]
        for i in range(k + 1, n):
            f = M[i][k] / M[k][k]
            for j in range(k, n + 1):
                M[i][j] -= f * M[k][j]
    x = [Decimal(0)] * n
    for i in reversed(range(n)):
        x[i] = (M[i][n] - sum(M[i][j] * x[j] for j in range(i + 1, n))) / M[i][i]
    return x


def hypentropy_minimiser_decimal(X, y, alpha, depth, stages=40, newton=80):
    """beta (as floats) minimising Q^D_alpha s.t. X beta = y, w0 = 1, in 60-digit arithmetic."""
    D = depth
    n, d = len(X), len(X[0])
    Xd = [[Decimal(float(v)) for v in row] for row in X]
    yd = [Decimal(float(v)) for v in y]
    p = Decimal(D) / Decimal(D - 2)
    r = Decimal(2) / Decimal(D - 2)
    one = Decimal(1)

    def terms(nu, cD):
        z = [sum(Xd[k][i] * nu[k] for k in range(n)) for i in range(d)]
        if any(abs(zi) >= one for zi in z):
            return None
        beta = [cD * (_pow(one - zi, -p) - _pow(one + zi, -p)) for zi in z]
        curv = [cD * p * (_pow(one - zi, -p - 1) + _pow(one + zi, -p - 1)) for zi in z]
        psi = [cD / r * (_pow(one - zi, -r) + _pow(one + zi, -r) - 2) for zi in z]
        F = sum(psi) - sum(yd[k] * nu[k] for k in range(n))
        g = [sum(Xd[k][i] * beta[i] for i in range(d)) - yd[k] for k in range(n)]
        return F, g, curv, beta

    a_target = Decimal(alpha)
    a0 = max(a_target, Decimal(10))
    nu = [Decimal(0)] * n
    for st in range(1, stages + 1):
        frac = Decimal(st) / Decimal(stages)
        a = (a0.ln() + frac * (a_target.ln() - a0.ln())).exp()
        cD = _pow(a, Decimal(D))
        F, g, curv, beta = terms(nu, cD)
        for _ in range(newton):
            gn = sum(gi * gi for gi in g).sqrt()
            if gn < Decimal("1e-40"):
                break
            H = [
                [sum(Xd[k][i] * curv[i] * Xd[m][i] for i in range(d)) for m in range(n)]
                for k in range(n)
            ]
            step = _solve(H, [-gi for gi in g])
            t = one
            slope = sum(gi * si for gi, si in zip(g, step))
            while True:
                trial = [nu[k] + t * step[k] for k in range(n)]
                out = terms(trial, cD)
                if out is not None and (
                    out[0] <= F + Decimal("1e-4") * t * slope
                    # F is flat to 60 digits near the optimum: accept a smaller gradient.
                    or sum(gi * gi for gi in out[1]).sqrt() < (1 - t / 4) * gn
                ):
                    break
                t /= 2
                if t < Decimal("1e-30"):
                    raise RuntimeError("decimal reference: line search failed")
            nu = trial
            F, g, curv, beta = out
    return [float(b) for b in beta]
