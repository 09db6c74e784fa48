// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice A market participant that is a contract: forwards any call, and on receiving ether either
/// accepts it, refuses it, or re-enters the sender's withdraw() once. Test-only: exec is unauthenticated.
contract ProxyActor {
    enum Mode {
        Accept,
        Reject,
        Reenter
    }

    Mode public mode;
    bool public reentered;
    bool public reentryOk;
    bytes public reentryError; // revert data of the re-entrant call, for the test to decode

    /// @notice Choose what receiving ether does.
    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @notice Call `target` with `data` and msg.value, bubbling up its revert data.
    function exec(address target, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    receive() external payable {
        if (mode == Mode.Reject) revert("ProxyActor: refuses ether");
        if (mode == Mode.Reenter && !reentered) {
            reentered = true;
            (reentryOk, reentryError) = msg.sender.call(abi.encodeWithSignature("withdraw()"));
        }
    }
}
