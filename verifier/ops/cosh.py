from verifier.ops._table import TableFunction


class Cosh(TableFunction):
    """f(x) = cosh(x): one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.cosh(x))
