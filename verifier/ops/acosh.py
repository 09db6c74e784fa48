from verifier.ops._table import TableFunction


class Acosh(TableFunction):
    """f(x) = acosh(x); below 1 (NaN in float) gives 0: one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.arccosh(x))
