from verifier.ops._table import TableFunction


class Asinh(TableFunction):
    """f(x) = asinh(x): one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.arcsinh(x))
