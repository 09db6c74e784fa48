"""Deterministic fixed-point ONNX: compile a model to an integer program, run it bit-identically anywhere.

    from verifier import compile_model, InferenceSession, Program, execute_job, JobOutcome
"""

from verifier.compiler import compile_model
from verifier.job import JobOutcome, execute_job
from verifier.program import Program, TensorInfo
from verifier.session import FixedResult, InferenceSession

__all__ = ["compile_model", "InferenceSession", "Program", "TensorInfo", "FixedResult", "execute_job", "JobOutcome"]
