from verifier.ops._table import TableFunction


class Sinh(TableFunction):
    """f(x) = sinh(x): one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.sinh(x))
