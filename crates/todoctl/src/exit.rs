//! Exit codes of every `todoctl` command, in one place so that a script can
//! tell a domain outcome from a mistake: 0 done; 1 an error (bad input, a
//! failed request); 2 a usage error (clap: unknown flag, missing argument);
//! 10 and up the outcomes below. Listed in `--help` and docs/canary.md.

/// The observer refused the action (unknown canary, impossible in this
/// phase, not authenticated, invalid spec).
pub const REFUSED: u8 = 10;
/// The canary was rolled back or aborted.
pub const ROLLED_BACK: u8 = 11;
/// The observer could not be asked (or has no snapshot yet).
pub const UNREACHABLE: u8 = 12;
/// `canary status --wait` timed out.
pub const TIMED_OUT: u8 = 13;
/// `lag`: a group is WARN.
pub const LAG_WARN: u8 = 20;
/// `lag`: a group is STALL, STOP or REWIND.
pub const LAG_STOPPED: u8 = 21;
