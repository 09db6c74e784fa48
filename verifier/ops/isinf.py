from verifier.ops._elementwise import NeverTrue


class IsInf(NeverTrue):
    """Integers are never infinite (feeds with inf are refused; results saturate): y = 0, plain int64."""
