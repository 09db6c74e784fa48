from verifier.ops._table import TableFunction


class Asin(TableFunction):
    """f(x) = asin(x); outside [-1, 1] (NaN in float) gives 0: one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.arcsin(x))
