from verifier.ops._table import TableFunction


class Sin(TableFunction):
    """f(x) = sin(x) (rotary position embeddings compute it from positions at run time):
    one table (docs/fixed-point-nonlinear.md, "Tables")."""

    function = staticmethod(lambda x, m: m.sin(x))
