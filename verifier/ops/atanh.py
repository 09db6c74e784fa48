from verifier.ops._table import TableFunction


class Atanh(TableFunction):
    """f(x) = atanh(x); outside (-1, 1) gives 0 (NaN) or saturates (+-1):
    one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.arctanh(x))
