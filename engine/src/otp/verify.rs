//! Verification of a submitted code against a window of counters, the replay rule, drift
//! learning, and two-code resynchronisation.
//!
//! Candidates are compared with `subtle`, and a code that is refused has cost every
//! candidate of the window, so the time a refusal takes does not tell an attacker which
//! counter (if any) their guess was close to. The scan of the fresh counters stops at the
//! first match: only an accepted code is faster, and its submitter learns nothing from
//! that but how far into the window their own right code was. Beyond that, only the final
//! verdict, which the submitter learns anyway, is branched on.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::hotp::{totp_counter, KeyedHmac};
use super::{RejectReason, TokenKind, TokenParams, TokenState, Verdict, VerifyPolicy};

/// The highest counter that may ever be accepted. `u64::MAX` itself is left unused so that
/// `next_counter = counter + 1` always fits, which is what keeps an accepted counter from
/// being accepted again.
const LAST_USABLE: u64 = u64::MAX - 1;

/// Check `code` (ASCII digits) against the counters of the window (each compared with
/// subtle; a refusal always computes them all, an accepted code stops the scan at its
/// counter), then apply the replay rule.
///
/// TOTP: the window is `policy.totp_window` steps either side of the raw counter for
/// `unix_time` shifted by `state.drift`; an accepted code teaches a new drift, its offset
/// from the raw counter clamped to `±policy.max_drift`, or to `±|state.drift|` when that is
/// larger. The second bound exists because [`resync`] may set a drift beyond `max_drift`,
/// and clamping it back on the next accept would lose the token again; verification alone
/// can still never push the drift further out than it already is. HOTP: the window is
/// `state.next_counter ..= next_counter + policy.hotp_lookahead`, and the
/// `hotp_lookahead` counters just below it are checked too so that a replay is reported as
/// [`RejectReason::Replayed`] rather than [`RejectReason::NoMatch`].
///
/// If several counters match, the lowest one not below `next_counter` wins. A code that is
/// not exactly `params.digits` ASCII digits is [`RejectReason::Malformed`] and costs no
/// HMAC; parameters that fail [`TokenParams::validate`] accept nothing
/// ([`RejectReason::NoMatch`]). The work is proportional to the window, so the policy's
/// windows should stay small.
pub fn verify(
    key: &[u8],
    params: &TokenParams,
    state: &TokenState,
    code: &[u8],
    unix_time: u64,
    policy: &VerifyPolicy,
) -> Verdict {
    if params.validate().is_err() {
        return Verdict::Rejected(RejectReason::NoMatch);
    }
    let Some(submitted) = parse_code(code, params.digits) else {
        return Verdict::Rejected(RejectReason::Malformed);
    };
    let next = state.next_counter;

    let (first, last, raw) = match params.kind {
        TokenKind::Totp { period, t0 } => {
            let raw = totp_counter(unix_time, period, t0);
            let centre = raw.saturating_add_signed(state.drift);
            let window = u64::from(policy.totp_window);
            (
                centre.saturating_sub(window),
                centre.saturating_add(window),
                raw,
            )
        }
        TokenKind::Hotp => {
            // Scanning below `next_counter` only serves the audit reason; those counters
            // can never be accepted.
            let lookahead = u64::from(policy.hotp_lookahead);
            (
                next.saturating_sub(lookahead),
                next.saturating_add(lookahead),
                0,
            )
        }
    };

    let Some(mac) = KeyedHmac::new(key, params.algorithm) else {
        return Verdict::Rejected(RejectReason::NoMatch);
    };
    // The fresh part of the window (counters that may still be accepted), in increasing
    // order so that the first match is the lowest fresh one. A code that matches none
    // costs the whole part, so a refusal's time says nothing about the guess; the scan
    // stops at a match, which only tells a submitter whose code was right where it was.
    let mut accepted = Choice::from(0);
    let mut accepted_counter = 0u64;
    let fresh_first = first.max(next);
    for counter in fresh_first..=last.min(LAST_USABLE) {
        let matches = candidate_matches(&mac, params, counter, submitted);
        accepted_counter.conditional_assign(&counter, matches);
        accepted |= matches;
        if bool::from(accepted) {
            break;
        }
    }
    // Counters below `next_counter` can never be accepted; they are checked only after a
    // refusal, to tell a replay from a wrong code in the audit trail. The submitter learns
    // nothing from that extra time that the refusal did not already say.
    let mut replayed = Choice::from(0);
    if !bool::from(accepted) {
        for counter in first..fresh_first.min(last.saturating_add(1)) {
            replayed |= candidate_matches(&mac, params, counter, submitted);
        }
    }

    if bool::from(accepted) {
        let counter = accepted_counter;
        let drift = match params.kind {
            TokenKind::Totp { .. } => clamped_offset(counter, raw, policy.max_drift, state.drift),
            TokenKind::Hotp => state.drift,
        };
        Verdict::Accepted {
            counter,
            state: TokenState {
                next_counter: counter.saturating_add(1),
                drift,
            },
        }
    } else if bool::from(replayed) {
        Verdict::Rejected(RejectReason::Replayed)
    } else {
        Verdict::Rejected(RejectReason::NoMatch)
    }
}

/// "Next code" resynchronisation: two consecutive codes; searches `policy.resync_window`
/// steps (TOTP: around now, both directions; HOTP: from next_counter forward) for counter c
/// with code1 at c and code2 at c+1, c >= next_counter. Returns the new state
/// (next_counter = c+2, TOTP drift = c+1 - current raw counter) or None.
///
/// The TOTP search is centred on the raw counter for `unix_time`, ignoring the learnt
/// drift, because resynchronisation is what one does when that drift is wrong. The drift
/// it sets is not clamped to `policy.max_drift`: two consecutive codes are far stronger
/// evidence than the single code verification learns from, and the search window already
/// bounds it. Both counters of the pair lie inside the searched range, all pairs are
/// computed and compared in constant time, and the lowest matching pair wins.
/// Malformed codes and invalid parameters give `None`.
pub fn resync(
    key: &[u8],
    params: &TokenParams,
    state: &TokenState,
    code1: &[u8],
    code2: &[u8],
    unix_time: u64,
    policy: &VerifyPolicy,
) -> Option<TokenState> {
    params.validate().ok()?;
    let first_code = parse_code(code1, params.digits)?;
    let second_code = parse_code(code2, params.digits)?;
    let next = state.next_counter;
    let window = u64::from(policy.resync_window);

    let (first, last, raw) = match params.kind {
        TokenKind::Totp { period, t0 } => {
            let raw = totp_counter(unix_time, period, t0);
            (raw.saturating_sub(window), raw.saturating_add(window), raw)
        }
        TokenKind::Hotp => (next, next.saturating_add(window), 0),
    };
    // Nothing below `next_counter` may be used again, so the search starts there at the
    // earliest; the pair's second counter must stay usable too.
    let first = first.max(next);
    let last = last.min(LAST_USABLE);
    if first > last {
        return None;
    }

    let mac = KeyedHmac::new(key, params.algorithm)?;
    let mut found = Choice::from(0);
    let mut found_counter = 0u64;
    // Whether the counter before the current one produced `code1`; each HMAC is computed
    // once and serves as the second code of one pair and the first code of the next.
    let mut previous_was_first = Choice::from(0);
    for counter in first..=last {
        let (is_first, is_second) = match mac.value(counter, params.digits) {
            Some(value) => (value.ct_eq(&first_code), value.ct_eq(&second_code)),
            None => (Choice::from(0), Choice::from(0)),
        };
        let take = previous_was_first & is_second & !found;
        // `counter > first` whenever `previous_was_first` is set, so this cannot wrap.
        found_counter.conditional_assign(&counter.wrapping_sub(1), take);
        found |= take;
        previous_was_first = is_first;
    }

    if !bool::from(found) {
        return None;
    }
    let second = found_counter.saturating_add(1);
    let drift = match params.kind {
        TokenKind::Totp { .. } => signed_offset(second, raw),
        TokenKind::Hotp => state.drift,
    };
    Some(TokenState {
        next_counter: second.saturating_add(1),
        drift,
    })
}

/// Parses a code of exactly `digits` ASCII digits into its value, or `None` if it is any
/// other length or holds anything but digits. The code is the caller's guess, not a
/// secret, so an early exit here leaks nothing.
fn parse_code(code: &[u8], digits: u8) -> Option<u32> {
    if code.len() != usize::from(digits) {
        return None;
    }
    code.iter().try_fold(0u32, |value, &byte| {
        let digit = char::from(byte).to_digit(10)?;
        value.checked_mul(10)?.checked_add(digit)
    })
}

/// Whether the code at `counter` equals `submitted`, as a constant-time choice. A failed
/// HMAC set-up matches nothing, so it can never turn into an accepted code.
fn candidate_matches(
    mac: &KeyedHmac,
    params: &TokenParams,
    counter: u64,
    submitted: u32,
) -> Choice {
    match mac.value(counter, params.digits) {
        Some(value) => value.ct_eq(&submitted),
        None => Choice::from(0),
    }
}

/// `counter - raw` as a signed step count, saturating at the ends of `i64`.
fn signed_offset(counter: u64, raw: u64) -> i64 {
    let offset = i128::from(counter) - i128::from(raw);
    i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX })
}

/// The state after a stop that may have lost accepted codes without a trace (power loss or
/// a kernel crash before the used-code journal reached the disk), with `unix_time` the
/// latest moment such a code could have been accepted (the restart's clock is a safe
/// bound): every TOTP counter that any window could have reached by then is treated as
/// used. The drift a lost accept could have taught is bounded by
/// `max(policy.max_drift, |state.drift|)` (see [`verify`]), so the bound is the raw
/// counter plus that drift plus the window. The user's next code is at most that many
/// steps away. HOTP is returned unchanged: its counter has no clock to bound it, and
/// skipping it ahead would strand a hardware token behind the server.
pub fn fence(
    params: &TokenParams,
    state: &TokenState,
    unix_time: u64,
    policy: &VerifyPolicy,
) -> TokenState {
    match params.kind {
        TokenKind::Totp { period, t0 } => {
            let raw = totp_counter(unix_time, period, t0);
            let drift = state.drift.unsigned_abs().max(u64::from(policy.max_drift));
            let reach = raw
                .saturating_add(drift)
                .saturating_add(u64::from(policy.totp_window))
                .saturating_add(1);
            TokenState {
                next_counter: state.next_counter.max(reach),
                drift: state.drift,
            }
        }
        TokenKind::Hotp => *state,
    }
}

/// `counter - raw`, clamped to `±max_drift` steps or `±|current|` steps, whichever is
/// wider, so that a drift set by [`resync`] survives the accepts that follow it.
fn clamped_offset(counter: u64, raw: u64, max_drift: u32, current: i64) -> i64 {
    // `i64::MAX` is the widest limit whose negation still fits, hence the `min`.
    let limit = i64::try_from(current.unsigned_abs())
        .unwrap_or(i64::MAX)
        .max(i64::from(max_drift));
    signed_offset(counter, raw).clamp(-limit, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_code_accepts_only_exact_digit_strings() {
        assert_eq!(parse_code(b"000000", 6), Some(0));
        assert_eq!(parse_code(b"123456", 6), Some(123_456));
        assert_eq!(parse_code(b"99999999", 8), Some(99_999_999));
        assert_eq!(parse_code(b"12345", 6), None);
        assert_eq!(parse_code(b"1234567", 6), None);
        assert_eq!(parse_code(b"12345a", 6), None);
        assert_eq!(parse_code(b" 12345", 6), None);
        assert_eq!(parse_code(b"+12345", 6), None);
        assert_eq!(parse_code("12345\u{665}".as_bytes(), 7), None);
        assert_eq!(parse_code(b"", 0), Some(0));
    }

    #[test]
    fn offsets_saturate_and_clamp() {
        assert_eq!(signed_offset(5, 3), 2);
        assert_eq!(signed_offset(3, 5), -2);
        assert_eq!(signed_offset(u64::MAX, 0), i64::MAX);
        assert_eq!(signed_offset(0, u64::MAX), i64::MIN);
        assert_eq!(clamped_offset(100, 0, 10, 0), 10);
        assert_eq!(clamped_offset(0, 100, 10, 0), -10);
        assert_eq!(
            clamped_offset(0, u64::MAX, u32::MAX, 0),
            -i64::from(u32::MAX)
        );
        assert_eq!(clamped_offset(7, 5, 0, 0), 0);
        assert_eq!(clamped_offset(100, 0, 10, 40), 40);
        assert_eq!(clamped_offset(100, 0, 10, -40), 40);
        assert_eq!(clamped_offset(30, 0, 10, 40), 30);
        assert_eq!(clamped_offset(u64::MAX, 0, 10, i64::MIN), i64::MAX);
        assert_eq!(clamped_offset(0, u64::MAX, 10, i64::MIN), -i64::MAX);
    }
}
