// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IInferenceMarket} from "./IInferenceMarket.sol";

/// @title InferenceMarket
/// @notice Staked workers, sampled at random, run the same integer program on the same input; the chain
/// compares their commit-revealed result hashes, escalates any disagreement to a wider round of fresh
/// workers, pays those who agree with the final result and slashes those who do not.
/// @dev Read top-down in lifecycle order: registry, submission, assignment, commit, reveal, finalize,
/// payments, views. docs/protocol.md states the rules and their security analysis.
contract InferenceMarket is IInferenceMarket, ReentrancyGuard {
    uint256 private constant BPS = 10_000;
    uint256 private constant MAX_SEATS = type(uint16).max;

    // ticket = state (bits 248..255) | round (bits 240..247) | 224-bit tag (of the commitment, then of the result)
    uint256 private constant COMMITTED = 2;
    uint256 private constant REVEALED = 3;
    uint8 private constant REASON_WRONG = 1;
    uint8 private constant REASON_SILENT = 2;

    uint256 public immutable minStake;
    uint64 public immutable commitWindow;
    uint64 public immutable revealWindow;
    uint64 public immutable unbondingPeriod;
    uint16 public immutable slashBps;
    uint16 public immutable silentSlashBps;
    uint8 public immutable maxRounds;
    uint16 public immutable quorumBps;
    uint8 public immutable growth;
    /// @notice Receives rounding dust and stake slashed from jobs without a result (never the requester).
    address public immutable dustSink;

    struct Worker {
        // slot A: the registry
        uint96 stake;
        uint40 unbondAt; // 0 while bonded
        uint32 activeSlot; // 1-based position in _active, 0 when not eligible for new jobs
        uint32 id; // permanent, from 1; seats and the active list store ids (8 to a storage slot)
        // slot B: job bookkeeping, already warm when a reward is credited
        uint128 reward; // withdrawable, like _pending
        uint32 openJobs; // jobs holding an assignment of this worker that are not closed yet
    }

    struct Job {
        // slot 0: the round state, the only slot that assign, commit and reveal write
        uint40 seedBlock;
        uint40 commitDeadline;
        uint8 redundancy;
        uint8 round;
        JobStatus status;
        uint16 leadCount; // Boyer-Moore majority counter of this round's reveals; resultHash is its candidate
        uint16 revealed;
        uint16 committed;
        uint16 seats; // workers assigned over all rounds
        uint16 roundStart; // first seat of the current round
        uint16 target; // size the current round asks for
        // slot 1
        address requester;
        uint96 fee;
        // slots 2..4
        bytes32 programHash;
        bytes32 inputHash;
        bytes32 resultHash;
    }

    mapping(address => Worker) private _workers;
    mapping(uint256 => address) private _addressOf; // worker id => address
    uint256 private _lastWorkerId;
    uint32[] private _active; // ids of the workers that can be drawn
    mapping(uint256 => Job) private _jobs;
    mapping(uint256 => mapping(uint256 => uint256)) private _seatWords; // job => word => 8 packed worker ids
    mapping(uint256 => mapping(address => uint256)) private _tickets; // written at commit, overwritten at reveal
    mapping(address => uint256) private _pending; // refunds and dust; workers' rewards live in Worker.reward
    /// @notice Number of jobs submitted so far; job ids run from 1 to jobCount.
    uint256 public jobCount;

    constructor(
        uint256 minStake_,
        uint64 commitWindow_,
        uint64 revealWindow_,
        uint64 unbondingPeriod_,
        uint16 slashBps_,
        uint16 silentSlashBps_,
        uint8 maxRounds_,
        uint16 quorumBps_,
        uint8 growth_
    ) {
        if (minStake_ == 0 || minStake_ > type(uint96).max) revert InvalidParameter("minStake");
        if (commitWindow_ == 0) revert InvalidParameter("commitWindow");
        if (revealWindow_ == 0) revert InvalidParameter("revealWindow");
        if (slashBps_ > BPS) revert InvalidParameter("slashBps");
        // staying silent must never be cheaper than being wrong, or a losing worker would just not reveal
        if (silentSlashBps_ < slashBps_ || silentSlashBps_ > BPS) revert InvalidParameter("silentSlashBps");
        if (maxRounds_ == 0) revert InvalidParameter("maxRounds");
        // above one half, at most one hash can reach the quorum of a round
        if (quorumBps_ <= BPS / 2 || quorumBps_ > BPS) revert InvalidParameter("quorumBps");
        if (growth_ == 0) revert InvalidParameter("growth");
        if (uint256(unbondingPeriod_) <= uint256(maxRounds_) * (uint256(commitWindow_) + revealWindow_)) {
            revert InvalidParameter("unbondingPeriod");
        }
        uint256 size = type(uint8).max;
        uint256 total = size;
        for (uint256 r = 1; r < maxRounds_; ++r) {
            size = size * growth_ + 1;
            total += size;
            if (total > MAX_SEATS) revert InvalidParameter("maxRounds");
        }
        minStake = minStake_;
        commitWindow = commitWindow_;
        revealWindow = revealWindow_;
        unbondingPeriod = unbondingPeriod_;
        slashBps = slashBps_;
        silentSlashBps = silentSlashBps_;
        maxRounds = maxRounds_;
        quorumBps = quorumBps_;
        growth = growth_;
        dustSink = msg.sender;
    }

    // ------------------------------------------------------------------ worker registry

    /// @notice Stake msg.value and become eligible for jobs (or top up; cancels a pending unbond).
    function register() external payable {
        if (msg.value == 0) revert ZeroValue();
        Worker memory w = _workers[msg.sender];
        uint256 stake = uint256(w.stake) + msg.value;
        if (stake > type(uint96).max) revert ValueTooLarge(stake, type(uint96).max);
        if (stake < minStake) revert StakeBelowMinimum(stake, minStake);
        w.stake = uint96(stake);
        w.unbondAt = 0;
        if (w.id == 0) {
            w.id = uint32(++_lastWorkerId);
            _addressOf[w.id] = msg.sender;
        }
        if (w.activeSlot == 0) {
            _active.push(w.id);
            w.activeSlot = uint32(_active.length);
        }
        _workers[msg.sender] = w;
        emit WorkerRegistered(msg.sender, msg.value, stake);
    }

    /// @notice Stop taking new jobs and start the unbonding period; stake stays slashable until withdrawn.
    function requestUnbond() external {
        Worker storage w = _workers[msg.sender];
        if (w.stake == 0) revert NotRegistered(msg.sender);
        if (w.unbondAt != 0) revert AlreadyUnbonding(msg.sender);
        w.unbondAt = uint40(block.timestamp);
        _deactivate(msg.sender, w);
        emit UnbondRequested(msg.sender, block.timestamp + unbondingPeriod);
    }

    /// @notice Withdraw the whole stake once the unbonding period is over and no assigned job is open.
    function withdrawStake() external nonReentrant {
        Worker storage w = _workers[msg.sender];
        // INVARIANT: stake leaves only after unbonding, and never while a job could still slash it
        if (w.unbondAt == 0) revert NotUnbonding(msg.sender);
        uint256 availableAt = uint256(w.unbondAt) + unbondingPeriod;
        if (block.timestamp < availableAt) revert UnbondingNotFinished(msg.sender, availableAt, block.timestamp);
        if (w.openJobs != 0) revert StakeLocked(msg.sender, w.openJobs);
        uint256 amount = w.stake;
        w.stake = 0;
        w.unbondAt = 0; // the id stays: old seats still name it
        emit StakeWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------ job submission

    /// @notice Ask `redundancy` random workers to run `programHash` on `inputHash`; msg.value is the fee.
    function submitJob(bytes32 programHash, bytes32 inputHash, uint8 redundancy)
        external
        payable
        returns (uint256 jobId)
    {
        if (msg.value == 0) revert ZeroValue();
        if (msg.value > type(uint96).max) revert ValueTooLarge(msg.value, type(uint96).max);
        if (redundancy == 0) revert InvalidRedundancy(redundancy);
        if (redundancy > _active.length) revert NotEnoughWorkers(redundancy, _active.length);
        jobId = ++jobCount;
        Job storage job = _jobs[jobId];
        // the sample comes from a block after this one, which the requester cannot choose
        job.seedBlock = uint40(block.number + 1);
        job.redundancy = redundancy;
        job.round = 1;
        job.status = JobStatus.Submitted;
        job.target = redundancy;
        job.requester = msg.sender;
        job.fee = uint96(msg.value);
        job.programHash = programHash;
        job.inputHash = inputHash;
        emit JobSubmitted(jobId, msg.sender, programHash, inputHash, redundancy, msg.value);
    }

    // ------------------------------------------------------------------ assignment

    /// @notice Draw the current round's workers from the seed block's hash; callable by anyone.
    /// @dev Costs O(round size + workers already in this job), never O(all workers). When the seed block
    /// is older than 256 blocks its hash is gone: the job is re-seeded from the next block instead.
    function assign(uint256 jobId) external {
        Job storage job = _existing(jobId);
        // INVARIANT: a round is drawn once, from a block mined after the request
        if (job.status != JobStatus.Submitted) revert WrongStatus(jobId, _statusOf(job));
        uint256 seedBlock = job.seedBlock;
        if (block.number <= seedBlock) revert SeedNotReady(jobId, seedBlock, block.number);
        bytes32 seedHash = blockhash(seedBlock);
        if (seedHash == 0) {
            job.seedBlock = uint40(block.number + 1);
            emit Reseeded(jobId, block.number + 1);
            return;
        }
        uint8 round = job.round;
        uint256 seats = job.seats;
        uint256 target = job.target;
        uint32[] memory prior = _seatIds(jobId, 0, seats);
        uint256 available = _active.length - _countActive(prior);
        uint256 size = target;
        if (available < target) {
            if (round == 1 || available < _quorumVotes(target)) {
                _close(jobId, job, false);
                return;
            }
            size = available;
        }
        uint32[] memory drawn = _draw(uint256(keccak256(abi.encode(seedHash, jobId, round))), size, prior);
        _writeSeats(jobId, seats, drawn);
        for (uint256 i; i < size; ++i) {
            address worker = _addressOf[drawn[i]];
            _workers[worker].openJobs += 1;
            emit WorkerAssigned(jobId, worker, round);
        }
        job.roundStart = uint16(seats);
        job.seats = uint16(seats + size);
        job.status = JobStatus.Committing;
        job.commitDeadline = uint40(block.timestamp + commitWindow);
    }

    // ------------------------------------------------------------------ commit

    /// @notice Commit to a result: commitment = makeCommitment(jobId, resultHash, salt, msg.sender).
    function commit(uint256 jobId, bytes32 commitment) external {
        Job storage job = _existing(jobId);
        uint256 round = job.round;
        uint256 ticket = _tickets[jobId][msg.sender];
        // INVARIANT: one commitment per assigned worker and round; workers of a job never repeat across rounds
        if (ticket != 0) {
            if (_roundOf(ticket) == round) revert AlreadyCommitted(jobId, msg.sender);
            revert NotAssigned(jobId, msg.sender);
        }
        if (!_inCurrentRound(jobId, job, msg.sender)) revert NotAssigned(jobId, msg.sender);
        if (job.status != JobStatus.Committing) revert WrongStatus(jobId, _statusOf(job));
        if (block.timestamp > job.commitDeadline) revert CommitTooLate(jobId, job.commitDeadline, block.timestamp);
        _tickets[jobId][msg.sender] = _ticket(COMMITTED, round, uint224(uint256(commitment)));
        uint16 committed = job.committed + 1;
        job.committed = committed;
        if (committed == job.seats - job.roundStart) job.status = JobStatus.Revealing;
        emit Committed(jobId, msg.sender, uint8(round));
    }

    // ------------------------------------------------------------------ reveal

    /// @notice Reveal the committed result, once every worker of the round committed or the commit window closed.
    function reveal(uint256 jobId, bytes32 resultHash, bytes32 salt) external {
        Job storage job = _existing(jobId);
        JobStatus status = job.status;
        if (status != JobStatus.Committing && status != JobStatus.Revealing) revert WrongStatus(jobId, status);
        uint256 round = job.round;
        uint256 ticket = _tickets[jobId][msg.sender];
        if (ticket == 0) {
            if (_inCurrentRound(jobId, job, msg.sender)) revert NotCommitted(jobId, msg.sender);
            revert NotAssigned(jobId, msg.sender);
        }
        if (_roundOf(ticket) != round) revert NotAssigned(jobId, msg.sender);
        if (_stateOf(ticket) == REVEALED) revert AlreadyRevealed(jobId, msg.sender);
        uint256 commitDeadline = job.commitDeadline;
        if (status == JobStatus.Committing && block.timestamp <= commitDeadline) {
            revert RevealTooEarly(jobId, commitDeadline, block.timestamp);
        }
        if (block.timestamp > commitDeadline + revealWindow) {
            revert RevealTooLate(jobId, commitDeadline + revealWindow, block.timestamp);
        }
        // the commitment binds msg.sender, so a copied commitment or reveal is worthless to anyone else
        if (uint224(uint256(makeCommitment(jobId, resultHash, salt, msg.sender))) != uint224(ticket)) {
            revert RevealMismatch(jobId, msg.sender);
        }
        _tickets[jobId][msg.sender] = _ticket(REVEALED, round, _tag(resultHash));
        job.revealed += 1;
        uint16 lead = job.leadCount;
        if (lead == 0) {
            job.resultHash = resultHash;
            job.leadCount = 1;
        } else if (job.resultHash == resultHash) {
            job.leadCount = lead + 1;
        } else {
            job.leadCount = lead - 1;
        }
        emit Revealed(jobId, msg.sender, resultHash);
    }

    // ------------------------------------------------------------------ finalize / escalate

    /// @notice Close the round once all revealed or its reveal window passed: finalize, escalate or give up.
    /// @dev Round 1 needs every assigned worker to reveal the same hash; a later round needs a hash revealed
    /// by quorumBps of the size that round asked for, silent workers counting against.
    function finalize(uint256 jobId) external {
        Job storage job = _existing(jobId);
        JobStatus status = job.status;
        if (status != JobStatus.Committing && status != JobStatus.Revealing) revert WrongStatus(jobId, _statusOf(job));
        uint256 start = job.roundStart;
        uint256 seats = job.seats;
        uint256 revealDeadline = uint256(job.commitDeadline) + revealWindow;
        if (job.revealed < seats - start && block.timestamp <= revealDeadline) {
            revert FinalizeTooEarly(jobId, revealDeadline, block.timestamp);
        }
        bool decided;
        if (job.round == 1) {
            decided = job.leadCount == seats - start; // all revealed, all equal
        } else if (job.revealed > 0) {
            // only the Boyer-Moore candidate can hold more than half of the votes
            decided = _votes(jobId, start, seats, _tag(job.resultHash)) >= _quorumVotes(job.target);
        }
        if (decided) {
            _close(jobId, job, true);
        } else if (job.round < maxRounds) {
            _escalate(jobId, job);
        } else {
            _close(jobId, job, false);
        }
    }

    // ------------------------------------------------------------------ payments

    /// @notice Pull the caller's rewards, refunds and dust.
    function withdraw() external nonReentrant {
        uint256 amount = _pending[msg.sender] + _workers[msg.sender].reward;
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        _pending[msg.sender] = 0;
        _workers[msg.sender].reward = 0;
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice The commitment a worker sends: keccak256(abi.encode(jobId, resultHash, salt, worker)).
    function makeCommitment(uint256 jobId, bytes32 resultHash, bytes32 salt, address worker)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(jobId, resultHash, salt, worker));
    }

    /// @notice Everything a verifier needs about a job; resultHash is zero unless finalized.
    function getJob(uint256 jobId) external view returns (JobView memory v) {
        Job storage job = _jobs[jobId];
        v.requester = job.requester;
        v.programHash = job.programHash;
        v.inputHash = job.inputHash;
        v.redundancy = job.redundancy;
        v.fee = job.fee;
        v.status = _statusOf(job);
        v.round = job.round;
        if (job.status == JobStatus.Finalized) v.resultHash = job.resultHash;
        if (job.status != JobStatus.Submitted && job.status != JobStatus.None) {
            v.commitDeadline = job.commitDeadline;
            v.revealDeadline = job.commitDeadline + revealWindow;
        }
        v.seedBlock = job.seedBlock;
        v.roundSize = job.seats - job.roundStart;
        v.committed = job.committed;
        v.revealed = job.revealed;
    }

    /// @notice The job's status: None, Submitted, Committing, Revealing, Finalized, Unresolved.
    function jobStatus(uint256 jobId) external view returns (uint8) {
        return uint8(_statusOf(_jobs[jobId]));
    }

    /// @notice The finalized result hash, for consumer contracts; reverts unless the job is finalized.
    function resultOf(uint256 jobId) external view returns (bytes32) {
        Job storage job = _existing(jobId);
        if (job.status != JobStatus.Finalized) revert NotFinalized(jobId, _statusOf(job));
        return job.resultHash;
    }

    /// @notice Workers of the current (or last) round of a job.
    function assignedWorkers(uint256 jobId) external view returns (address[] memory workers) {
        Job storage job = _jobs[jobId];
        uint32[] memory ids = _seatIds(jobId, job.roundStart, job.seats);
        workers = new address[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            workers[i] = _addressOf[ids[i]];
        }
    }

    /// @notice True when `assign(jobId)` would draw workers (or re-seed) in the next block.
    function canAssign(uint256 jobId) external view returns (bool) {
        Job storage job = _jobs[jobId];
        return job.status == JobStatus.Submitted && block.number > job.seedBlock;
    }

    /// @notice True when `finalize(jobId)` would succeed now.
    function canFinalize(uint256 jobId) external view returns (bool) {
        Job storage job = _jobs[jobId];
        if (job.status != JobStatus.Committing && job.status != JobStatus.Revealing) return false;
        return job.revealed == job.seats - job.roundStart
            || block.timestamp > uint256(job.commitDeadline) + revealWindow;
    }

    /// @notice Ether an account can pull with `withdraw()` (rewards, refunds, dust).
    function pendingWithdrawal(address account) external view returns (uint256) {
        return _pending[account] + _workers[account].reward;
    }

    /// @notice Stake of a worker (including any part above minStake).
    function stakeOf(address worker) external view returns (uint256) {
        return _workers[worker].stake;
    }

    /// @notice Whether a worker can be drawn for new jobs.
    function isActive(address worker) external view returns (bool) {
        return _workers[worker].activeSlot != 0;
    }

    /// @notice Number of workers that can be drawn for new jobs.
    function activeWorkerCount() external view returns (uint256) {
        return _active.length;
    }

    /// @notice A worker's registry record.
    function workerInfo(address worker)
        external
        view
        returns (uint256 stake, uint256 unbondAt, uint256 openJobs, bool active)
    {
        Worker storage w = _workers[worker];
        return (w.stake, w.unbondAt, w.openJobs, w.activeSlot != 0);
    }

    // ------------------------------------------------------------------ private helpers

    /// @dev Partial Fisher-Yates shuffle of the active list, kept virtual in memory: each step draws a
    /// position not drawn before, so a worker never appears twice; workers already in the job are skipped.
    /// Steps <= size + workers of the job still active <= active count, so `n - i` never reaches zero.
    function _draw(uint256 seed, uint256 size, uint32[] memory prior) private view returns (uint32[] memory drawn) {
        uint256 n = _active.length;
        uint256 steps = size + prior.length;
        uint256[] memory movedTo = new uint256[](steps);
        uint256[] memory movedValue = new uint256[](steps);
        drawn = new uint32[](size);
        uint256 picked;
        for (uint256 i; picked < size; ++i) {
            uint256 j = i + uint256(keccak256(abi.encode(seed, i))) % (n - i);
            uint256 position = _virtualAt(movedTo, movedValue, i, j);
            movedTo[i] = j;
            movedValue[i] = _virtualAt(movedTo, movedValue, i, i);
            uint32 id = _active[position];
            if (_contains(prior, id)) continue;
            drawn[picked] = id;
            unchecked {
                ++picked; // picked < size <= MAX_SEATS
            }
        }
    }

    function _virtualAt(uint256[] memory movedTo, uint256[] memory movedValue, uint256 count, uint256 position)
        private
        pure
        returns (uint256)
    {
        for (uint256 e = count; e > 0;) {
            unchecked {
                --e; // e > 0
            }
            if (movedTo[e] == position) return movedValue[e];
        }
        return position;
    }

    function _escalate(uint256 jobId, Job storage job) private {
        uint8 round = job.round + 1;
        uint256 target = uint256(job.target) * growth + 1; // fits: bounded in the constructor
        job.round = round;
        job.target = uint16(target);
        job.status = JobStatus.Submitted;
        job.seedBlock = uint40(block.number + 1);
        job.roundStart = job.seats;
        job.committed = 0;
        job.revealed = 0;
        job.leadCount = 0;
        job.resultHash = 0;
        emit Escalated(jobId, round, target);
    }

    /// @dev Settles every worker of every round: winners share fee + slashed stake, wrong ones lose slashBps,
    /// silent ones silentSlashBps. Without a result only silence is punished and the fee goes back.
    /// Loops over the job's own seats only (bounded by the round sizes), and moves no ether.
    function _close(uint256 jobId, Job storage job, bool finalized) private {
        uint32[] memory ids = _seatIds(jobId, 0, job.seats);
        uint256 resultTag = finalized ? _tag(job.resultHash) : 0;
        address[] memory winners = new address[](ids.length);
        uint256 winnerCount;
        uint256 slashed;
        for (uint256 s; s < ids.length; ++s) {
            (bool won, address worker, uint256 amount) = _settleSeat(jobId, ids[s], finalized, resultTag);
            if (won) winners[winnerCount++] = worker;
            slashed += amount;
        }
        if (finalized) {
            job.status = JobStatus.Finalized;
            uint256 payout = uint256(job.fee) + slashed;
            uint256 share = payout / winnerCount; // winnerCount >= 1: the result was revealed by someone
            for (uint256 i; i < winnerCount; ++i) {
                _workers[winners[i]].reward += uint128(share); // share <= ether in this contract < 2**128
                emit Rewarded(jobId, winners[i], share);
            }
            uint256 dust = payout - share * winnerCount;
            if (dust != 0) _pending[dustSink] += dust;
            emit JobFinalized(jobId, job.resultHash);
        } else {
            job.status = JobStatus.Unresolved;
            _pending[job.requester] += job.fee;
            // the requester must gain nothing from workers failing: slashed stake goes to the sink
            if (slashed != 0) _pending[dustSink] += slashed;
            emit JobUnresolved(jobId);
        }
    }

    /// @dev One worker's share of `_close`: releases its stake lock and slashes it if wrong or silent.
    function _settleSeat(uint256 jobId, uint32 id, bool finalized, uint256 resultTag)
        private
        returns (bool won, address worker, uint256 amount)
    {
        worker = _addressOf[id];
        uint256 ticket = _tickets[jobId][worker];
        if (ticket != 0) delete _tickets[jobId][worker];
        Worker storage w = _workers[worker];
        w.openJobs -= 1;
        uint256 bps;
        uint8 reason = REASON_WRONG;
        if (_stateOf(ticket) != REVEALED) {
            bps = silentSlashBps;
            reason = REASON_SILENT;
        } else if (!finalized) {
            return (false, worker, 0); // without a result nobody can be called wrong
        } else if (uint224(ticket) == resultTag) {
            return (true, worker, 0);
        } else {
            bps = slashBps;
        }
        uint256 stake = w.stake;
        amount = stake * bps / BPS;
        if (amount == 0) return (false, worker, 0);
        w.stake = uint96(stake - amount);
        emit Slashed(jobId, worker, amount, reason);
        if (stake - amount < minStake) _deactivate(worker, w);
    }

    function _deactivate(address worker, Worker storage w) private {
        uint256 slot = w.activeSlot;
        if (slot == 0) return;
        uint32 last = _active[_active.length - 1];
        if (last != w.id) {
            _active[slot - 1] = last;
            _workers[_addressOf[last]].activeSlot = uint32(slot);
        }
        _active.pop();
        w.activeSlot = 0;
        emit WorkerDeactivated(worker, w.stake);
    }

    /// @dev Seats are worker ids packed 8 to a storage word: a round of k costs k/8 fresh slots, not k.
    function _writeSeats(uint256 jobId, uint256 first, uint32[] memory ids) private {
        uint256 end = first + ids.length;
        for (uint256 word = first >> 3; word << 3 < end; ++word) {
            uint256 packed = first > word << 3 ? _seatWords[jobId][word] : 0; // keep an earlier round's ids
            for (uint256 s = word << 3; s < (word + 1) << 3 && s < end; ++s) {
                if (s >= first) packed |= uint256(ids[s - first]) << ((s & 7) * 32);
            }
            _seatWords[jobId][word] = packed;
        }
    }

    function _seatIds(uint256 jobId, uint256 start, uint256 end) private view returns (uint32[] memory ids) {
        ids = new uint32[](end - start);
        uint256 packed;
        for (uint256 s = start; s < end; ++s) {
            if (s == start || s & 7 == 0) packed = _seatWords[jobId][s >> 3];
            ids[s - start] = uint32(packed >> ((s & 7) * 32));
        }
    }

    function _inCurrentRound(uint256 jobId, Job storage job, address worker) private view returns (bool) {
        uint256 id = _workers[worker].id;
        if (id == 0) return false;
        uint256 end = job.seats;
        uint256 packed;
        for (uint256 s = job.roundStart; s < end; ++s) {
            if (packed == 0 || s & 7 == 0) packed = _seatWords[jobId][s >> 3];
            if ((packed >> ((s & 7) * 32)) & 0xffffffff == id) return true;
        }
        return false;
    }

    function _contains(uint32[] memory ids, uint32 id) private pure returns (bool) {
        for (uint256 i; i < ids.length; ++i) {
            if (ids[i] == id) return true;
        }
        return false;
    }

    function _countActive(uint32[] memory ids) private view returns (uint256 count) {
        for (uint256 i; i < ids.length; ++i) {
            if (_workers[_addressOf[ids[i]]].activeSlot != 0) ++count;
        }
    }

    function _votes(uint256 jobId, uint256 start, uint256 end, uint256 tag) private view returns (uint256 count) {
        uint32[] memory ids = _seatIds(jobId, start, end);
        for (uint256 i; i < ids.length; ++i) {
            uint256 ticket = _tickets[jobId][_addressOf[ids[i]]];
            if (_stateOf(ticket) == REVEALED && uint224(ticket) == tag) ++count;
        }
    }

    function _quorumVotes(uint256 size) private view returns (uint256) {
        return (size * quorumBps + BPS - 1) / BPS;
    }

    function _existing(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == JobStatus.None) revert UnknownJob(jobId);
    }

    function _statusOf(Job storage job) private view returns (JobStatus) {
        JobStatus status = job.status;
        if (status == JobStatus.Committing && block.timestamp > job.commitDeadline) return JobStatus.Revealing;
        return status;
    }

    function _send(address to, uint256 amount) private {
        if (amount == 0) return;
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }

    /// @dev Revealed results are kept as a 224-bit tag of their hash: a different result with the same tag
    /// would be a 224-bit second preimage of keccak256.
    function _tag(bytes32 resultHash) private pure returns (uint224) {
        return uint224(uint256(keccak256(abi.encode(resultHash))));
    }

    function _ticket(uint256 state, uint256 round, uint224 tag) private pure returns (uint256) {
        return (state << 248) | (round << 240) | tag;
    }

    function _stateOf(uint256 ticket) private pure returns (uint256) {
        return ticket >> 248;
    }

    function _roundOf(uint256 ticket) private pure returns (uint256) {
        return (ticket >> 240) & 0xff;
    }
}
