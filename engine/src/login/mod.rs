//! Login decisions: how a request's User-Password is read in each login mode, when a
//! user is locked out, and which reply answers which outcome.
//!
//! Everything here is a pure function of its arguments. The actors feed in the decoded
//! request, the clock reading and the per-user state they hold, and act on what comes back;
//! no decision about accepting or rejecting a login is taken anywhere else.

mod decision;
mod delivered;
mod lockout;
mod mode;
mod session;

pub use decision::{reply_code, Outcome, RejectReason};
pub use delivered::{code_matches, masked, numeric_code, CODE_DIGITS};
pub use lockout::{LockoutPolicy, LockoutState};
pub use mode::{split_appended, LoginMode, ParseModeError};
pub use session::{ChallengeSession, SessionError, STATE_LEN};
