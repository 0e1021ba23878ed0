"""Analytic limits and closed forms: pure functions, each citing the result it implements."""
