from verifier.ops._table import TableFunction


class Cos(TableFunction):
    """f(x) = cos(x) (rotary position embeddings compute it from positions at run time):
    one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.cos(x))
