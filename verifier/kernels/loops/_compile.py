"""Lazy compilation for the loops: numba (and LLVM) load on the first call of a loop, never on import."""

_INLINED: list[str] = []  # helpers the loops call, made numba functions (inlined) when a loop of their module compiles


def compiled(function):
    """`function` compiled by numba on its first call (nogil, cached on disk); plain Python until then. The
    helpers marked `inlined` that its module holds become numba functions first (in that module's namespace)."""
    dispatcher = None

    def call(*args):
        nonlocal dispatcher
        if dispatcher is None:
            from numba import njit

            namespace = function.__globals__
            for name in _INLINED:
                if name in namespace and not hasattr(namespace[name], "py_func"):
                    namespace[name] = njit(inline="always")(namespace[name])
            dispatcher = njit(nogil=True, cache=True)(function)
        return dispatcher(*args)

    call.__name__, call.__doc__, call.py_func = function.__name__, function.__doc__, function
    return call


def inlined(function):
    """Marks a helper that compiled loops call: inlined into them by numba."""
    _INLINED.append(function.__name__)
    return function
