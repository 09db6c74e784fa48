"""The InferenceMarket contract and its Python binding: the only place that knows the ABI.

    from contracts import deploy_market, MarketClient, make_commitment, MarketError, DEFAULT_PARAMS
    from contracts.chain import EmbeddedChain
"""

from contracts.binding import (
    DEFAULT_PARAMS,
    DEFAULT_REDUNDANCY,
    Event,
    Job,
    JobStatus,
    MarketClient,
    TxReceipt,
    deploy_market,
    make_commitment,
)
from contracts.errors import MarketError

__all__ = [
    "DEFAULT_PARAMS",
    "DEFAULT_REDUNDANCY",
    "Event",
    "Job",
    "JobStatus",
    "MarketClient",
    "MarketError",
    "TxReceipt",
    "deploy_market",
    "make_commitment",
]
