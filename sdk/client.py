"""The requester's entry point: log in, upload a model, submit jobs, verify results.

    client = Client.login(gateway_url, rpc_url, private_key, market_address)
    model = client.upload_model("model.onnx", calibration={"x": x_calib})
    job = client.submit(model, {"x": x}, redundancy=3, fee=10**16)
    job.track_progress()
    outputs = job.result(verify=True)
"""

from dataclasses import dataclass
from pathlib import Path

from sdk.errors import ChainError, ConfigError
from sdk.gateway_client import GatewayClient
from sdk.job import Job
from sdk.verify import Verification, verify_job

# k = 3 suits low-value jobs and small networks; for high-value jobs pass contracts.DEFAULT_REDUNDANCY (13),
# which keeps a wrong finalization below 1e-9 at a 0.2 dishonest share (docs/protocol.md, security table).
DEFAULT_REDUNDANCY = 3
DEFAULT_FEE_WEI = 10**16


@dataclass(frozen=True)
class UploadedModel:
    program: object  # verifier.Program
    hash: str


class Client:
    def __init__(self, gateway_url: str, *, token: str | None = None, rpc=None, private_key=None,
                 market_address: str | None = None):
        """`rpc`: a JSON-RPC URL or a connected web3.Web3; `private_key`: hex key or eth_account LocalAccount
        (needed only to send transactions); `token`: a gateway token (from Client.login or the /login page)."""
        self.gateway = GatewayClient(gateway_url, token)
        self.w3 = _connect(rpc) if rpc is not None else None
        self.account = _account(private_key) if private_key is not None else None
        self.market_address = market_address
        self._market = None

    @classmethod
    def login(cls, gateway_url: str, rpc, private_key, market_address: str | None = None) -> "Client":
        """Sign in with Ethereum at the gateway with `private_key` and return a client holding the token."""
        client = cls(gateway_url, rpc=rpc, private_key=private_key, market_address=market_address)
        chain_id = int(client.w3.eth.chain_id) if client.w3 is not None else None
        client.gateway.login(client.account, chain_id=chain_id)
        return client

    def close(self) -> None:
        self.gateway.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def token(self) -> str | None:
        return self.gateway.token

    @property
    def market(self):
        """contracts.MarketClient for this client's account (reads work without one)."""
        if self._market is None:
            if self.w3 is None or self.market_address is None:
                raise ConfigError("no chain configured: pass rpc=... and market_address=...")
            from contracts import MarketClient

            self._market = MarketClient(self.w3, self.market_address, self.account)
        return self._market

    # -- models and jobs
    def upload_model(self, model, calibration=None, *, matmul_bits: int = 16) -> UploadedModel:
        """Compile (an .onnx path or ModelProto) or load (a .vfp path, program bytes, a Program) the model,
        upload the program bytes and return them with their hash. `calibration`: input name -> array of
        representative inputs (a bare array for a single-input model); `matmul_bits`: compile_model's
        operand width of products (8: faster, at 8-bit accuracy)."""
        program = _as_program(model, calibration, matmul_bits)
        if not self.gateway.has_blob(program.hash):
            self.gateway.put_blob(program.to_bytes())
        return UploadedModel(program, program.hash)

    def submit(self, model: UploadedModel, feeds: dict, *, redundancy: int = DEFAULT_REDUNDANCY,
               fee: int = DEFAULT_FEE_WEI) -> Job:
        """Upload the canonical input bytes, send submitJob with the fee, and assign if the seed block is
        already there (Job.track_progress assigns later otherwise)."""
        from verifier import InferenceSession

        if not isinstance(model, UploadedModel):
            model = self.upload_model(model)
        input_hash = self.gateway.put_blob(InferenceSession(model.program).encode_inputs(feeds))
        self._require_account("submit a job")
        job_id = _chain_call(self.market.submit_job, model.hash, input_hash, redundancy, fee)
        job = Job(self, job_id, program=model.program)
        job.advance()
        return job

    def job(self, job_id: int) -> Job:
        return Job(self, int(job_id))

    def verify(self, job_id: int, *, recompute: bool = False, raise_on_failure: bool = True) -> Verification:
        """Check the job against the chain: Finalized, program/input/output bytes hash to the on-chain
        hashes, and (recompute=True) local re-execution gives the on-chain result. The first failed check
        raises its specific VerificationError unless raise_on_failure=False."""
        verification = _chain_call(verify_job, self.market, self.gateway, job_id, recompute=recompute)
        return verification.raise_for_failure() if raise_on_failure else verification

    def _require_account(self, action: str) -> None:
        if self.account is None:
            raise ConfigError(f"a private key is needed to {action} (it signs the transaction)")


def _chain_call(function, *args, **kwargs):
    """Run a chain operation, turning a decoded revert into ChainError (other SDK errors pass through)."""
    from contracts import MarketError

    try:
        return function(*args, **kwargs)
    except MarketError as exc:
        raise ChainError(f"the market reverted: {exc}", exc) from exc


def _connect(rpc):
    if isinstance(rpc, str):
        from web3 import Web3

        return Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 60}))
    return rpc


def _account(key):
    if isinstance(key, (str, bytes)):
        from eth_account import Account

        try:
            return Account.from_key(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError("the private key is not a valid 32-byte secp256k1 key") from exc
    return key


def _as_program(model, calibration, matmul_bits: int = 16):
    from verifier import Program, compile_model

    if isinstance(model, Program):
        return model
    if isinstance(model, (bytes, bytearray)) and Program.is_program(bytes(model)):
        return Program.from_bytes(bytes(model))
    if isinstance(model, (str, Path)) and Path(model).suffix == ".vfp":
        return Program.load(model)
    if calibration is not None and not isinstance(calibration, dict):
        calibration = {_single_input_name(model): calibration}
    return compile_model(model, calibration=calibration, matmul_bits=matmul_bits)


def _single_input_name(model) -> str:
    """The one run-time input of an ONNX model, for calibration given as a bare array."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    constants = {init.name for init in proto.graph.initializer}
    names = [value.name for value in proto.graph.input if value.name not in constants]
    if len(names) != 1:
        raise ConfigError(f"the model has inputs {names}: give calibration as a dict of input name -> array")
    return names[0]
