from verifier.ops._table import TableFunction


class Tan(TableFunction):
    """f(x) = tan(x); its poles saturate: one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.tan(x))
