"""Shape aliases shared across linflow (jaxtyping strings)."""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Float, PyTree


Scalar: TypeAlias = Float[Array, ""]
ScalarLike: TypeAlias = float | Float[ArrayLike, ""]
Vector: TypeAlias = Float[Array, " d"]
Targets: TypeAlias = Float[Array, " n"] | Float[Array, "n m"]
Design: TypeAlias = Float[Array, "n d"]
Predictor: TypeAlias = Float[Array, "..."]
Params: TypeAlias = PyTree[Float[Array, "..."]]
