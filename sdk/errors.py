"""Exceptions the SDK raises. Catch VinferError for all of them.

    VinferError
    ├── ConfigError                 no token, gateway, RPC or market configured where one is needed
    ├── GatewayError                the gateway answered with an error (.status, .error, .detail)
    │   ├── AuthenticationError     401/403: login rejected, token missing, invalid or expired
    │   ├── BlobNotFoundError       404: the gateway has no blob under that hash
    │   └── UploadRejectedError     413/422: too large, over quota, not a valid program
    ├── ChainError                  a transaction reverted or the chain could not be read (.market_error)
    ├── JobFailedError              the job ended Unresolved: no supermajority, fee refunded
    ├── JobOutcomeError             the job finalized on the deterministic error outcome (.code, .reason)
    ├── JobTimeoutError             the job was not final when the wait ran out
    └── VerificationError           chain and data disagree (.check names the check, .verification has all)
        ├── JobNotFinalizedError    the job is not Finalized on chain, so it has no result yet
        ├── ContentMismatchError    fetched bytes do not hash to the on-chain hash (.what: program/input/output)
        └── ResultMismatchError     re-executing locally gives another result hash than the chain's
"""

__all__ = [
    "VinferError", "ConfigError", "GatewayError", "AuthenticationError", "BlobNotFoundError", "UploadRejectedError",
    "ChainError", "JobFailedError", "JobOutcomeError", "JobTimeoutError", "VerificationError", "JobNotFinalizedError",
    "ContentMismatchError", "ResultMismatchError",
]


class VinferError(Exception):
    """Base of every error the SDK raises."""


class ConfigError(VinferError):
    pass


class GatewayError(VinferError):
    def __init__(self, status: int, error: str, detail: str):
        self.status, self.error, self.detail = status, error, detail
        super().__init__(f"gateway answered {status} {error}: {detail}")


class AuthenticationError(GatewayError):
    pass


class BlobNotFoundError(GatewayError):
    pass


class UploadRejectedError(GatewayError):
    pass


class ChainError(VinferError):
    def __init__(self, message: str, market_error: Exception | None = None):
        self.market_error = market_error
        super().__init__(message)


class JobFailedError(VinferError):
    def __init__(self, job_id: int, message: str):
        self.job_id = job_id
        super().__init__(message)


class JobOutcomeError(VinferError):
    """The workers agreed the program cannot run on this input (docs/fixed-point.md, "Job outcome")."""

    def __init__(self, job_id: int, code: int, reason: str):
        self.job_id, self.code, self.reason = job_id, code, reason
        super().__init__(f"job {job_id} finalized on the error outcome (code {code}): {reason}")


class JobTimeoutError(VinferError):
    def __init__(self, job_id: int, message: str):
        self.job_id = job_id
        super().__init__(message)


class VerificationError(VinferError):
    def __init__(self, check: str, message: str, verification=None):
        self.check, self.verification = check, verification
        super().__init__(message)


class JobNotFinalizedError(VerificationError):
    pass


class ContentMismatchError(VerificationError):
    def __init__(self, what: str, expected: str, actual: str, verification=None):
        self.what, self.expected, self.actual = what, expected, actual
        super().__init__(what, f"the {what} bytes hash to {actual}, but the chain says {expected}", verification)


class ResultMismatchError(VerificationError):
    def __init__(self, expected: str, actual: str, verification=None):
        self.expected, self.actual = expected, actual
        super().__init__("recompute", f"re-executing the job locally gives result {actual}, "
                                      f"but the chain finalized {expected}", verification)
