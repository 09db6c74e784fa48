// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Events and custom errors of the InferenceMarket
/// @notice Kept apart from the implementation (as OpenZeppelin does with its error interfaces) so that
/// consumers and off-chain decoders can depend on them alone.
interface IInferenceMarket {
    /// @notice Job lifecycle, in this order (the numeric values are part of the interface).
    enum JobStatus {
        None,
        Submitted,
        Committing,
        Revealing,
        Finalized,
        Unresolved
    }

    /// @notice What `getJob` returns.
    struct JobView {
        address requester;
        bytes32 programHash;
        bytes32 inputHash;
        uint8 redundancy;
        uint256 fee;
        JobStatus status;
        uint8 round;
        bytes32 resultHash;
        uint64 commitDeadline;
        uint64 revealDeadline;
        uint64 seedBlock;
        uint16 roundSize;
        uint16 committed;
        uint16 revealed;
    }

    // ---- events: past tense, emitted right after the state change ----
    event WorkerRegistered(address indexed worker, uint256 amount, uint256 stake);
    event WorkerDeactivated(address indexed worker, uint256 stake);
    event UnbondRequested(address indexed worker, uint256 availableAt);
    event StakeWithdrawn(address indexed worker, uint256 amount);
    event JobSubmitted(
        uint256 indexed jobId,
        address indexed requester,
        bytes32 programHash,
        bytes32 inputHash,
        uint8 redundancy,
        uint256 fee
    );
    event Reseeded(uint256 indexed jobId, uint256 seedBlock);
    event WorkerAssigned(uint256 indexed jobId, address indexed worker, uint8 round);
    event Committed(uint256 indexed jobId, address indexed worker, uint8 round);
    event Revealed(uint256 indexed jobId, address indexed worker, bytes32 resultHash);
    event Escalated(uint256 indexed jobId, uint8 round, uint256 size);
    /// @param reason 1 = revealed a result other than the final one, 2 = silent (no commit or no reveal)
    event Slashed(uint256 indexed jobId, address indexed worker, uint256 amount, uint8 reason);
    event Rewarded(uint256 indexed jobId, address indexed worker, uint256 amount);
    event JobFinalized(uint256 indexed jobId, bytes32 resultHash);
    event JobUnresolved(uint256 indexed jobId);
    event Withdrawn(address indexed account, uint256 amount);

    // ---- errors, with the context a caller needs to understand them ----
    error InvalidParameter(string name);
    error ZeroValue();
    error ValueTooLarge(uint256 value, uint256 max);
    error StakeBelowMinimum(uint256 stake, uint256 minStake);
    error NotRegistered(address worker);
    error AlreadyUnbonding(address worker);
    error NotUnbonding(address worker);
    error UnbondingNotFinished(address worker, uint256 availableAt, uint256 now);
    error StakeLocked(address worker, uint256 openJobs);
    error InvalidRedundancy(uint256 redundancy);
    error NotEnoughWorkers(uint256 needed, uint256 available);
    error UnknownJob(uint256 jobId);
    error WrongStatus(uint256 jobId, JobStatus status);
    error SeedNotReady(uint256 jobId, uint256 seedBlock, uint256 blockNumber);
    error NotAssigned(uint256 jobId, address worker);
    error CommitTooLate(uint256 jobId, uint256 deadline, uint256 now);
    error AlreadyCommitted(uint256 jobId, address worker);
    error RevealTooEarly(uint256 jobId, uint256 commitDeadline, uint256 now);
    error RevealTooLate(uint256 jobId, uint256 deadline, uint256 now);
    error NotCommitted(uint256 jobId, address worker);
    error AlreadyRevealed(uint256 jobId, address worker);
    error RevealMismatch(uint256 jobId, address worker);
    error FinalizeTooEarly(uint256 jobId, uint256 revealDeadline, uint256 now);
    error NotFinalized(uint256 jobId, JobStatus status);
    error NothingToWithdraw(address account);
    error TransferFailed(address to, uint256 amount);
}
