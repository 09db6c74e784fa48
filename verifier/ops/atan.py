from verifier.ops._table import TableFunction


class Atan(TableFunction):
    """f(x) = atan(x): one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.arctan(x))
