//! Behaviour of `tollgate_engine::otp::verify` and `resync`: the TOTP window, the replay
//! rule, drift learning and its clamp, two-code resynchronisation, HOTP look-ahead, and
//! property tests that verification never panics and always accepts what the token shows.

use proptest::prelude::*;
use tollgate_engine::otp::{
    code_at, current_code, fence, resync, totp_counter, verify, Algorithm, RejectReason, TokenKind,
    TokenParams, TokenState, Verdict, VerifyPolicy,
};

const KEY: &[u8] = b"tollgate test key 01";
/// An arbitrary moment well away from any edge: 2023-11-14T22:13:20Z.
const NOW: u64 = 1_700_000_000;

fn totp() -> TokenParams {
    TokenParams::default()
}

fn hotp_params() -> TokenParams {
    TokenParams {
        kind: TokenKind::Hotp,
        algorithm: Algorithm::Sha1,
        digits: 6,
    }
}

fn raw() -> u64 {
    totp_counter(NOW, 30, 0)
}

/// The code at `counter` as an owned array, so several codes can be held at once.
fn code(params: &TokenParams, counter: u64) -> Vec<u8> {
    let mut out = [0u8; 8];
    code_at(KEY, params, counter, &mut out).to_vec()
}

fn check(params: &TokenParams, state: &TokenState, counter: u64) -> Verdict {
    verify(
        KEY,
        params,
        state,
        &code(params, counter),
        NOW,
        &VerifyPolicy::default(),
    )
}

fn accepted(counter: u64, next_counter: u64, drift: i64) -> Verdict {
    Verdict::Accepted {
        counter,
        state: TokenState {
            next_counter,
            drift,
        },
    }
}

fn accepted_state(verdict: Verdict) -> TokenState {
    match verdict {
        Verdict::Accepted { state, .. } => state,
        other => panic!("expected an accept, got {other:?}"),
    }
}

#[test]
fn totp_window_is_one_step_either_way() {
    let params = totp();
    let state = TokenState::default();
    let r = raw();
    assert_eq!(check(&params, &state, r - 1), accepted(r - 1, r, -1));
    assert_eq!(check(&params, &state, r), accepted(r, r + 1, 0));
    assert_eq!(check(&params, &state, r + 1), accepted(r + 1, r + 2, 1));
    for counter in [r - 2, r + 2, r - 3, r + 3] {
        assert_eq!(
            check(&params, &state, counter),
            Verdict::Rejected(RejectReason::NoMatch),
            "counter {counter}"
        );
    }
}

#[test]
fn totp_window_zero_accepts_only_the_centre() {
    let params = totp();
    let policy = VerifyPolicy {
        totp_window: 0,
        ..VerifyPolicy::default()
    };
    let state = TokenState::default();
    let r = raw();
    let at = |c| verify(KEY, &params, &state, &code(&params, c), NOW, &policy);
    assert_eq!(at(r), accepted(r, r + 1, 0));
    assert_eq!(at(r + 1), Verdict::Rejected(RejectReason::NoMatch));
    assert_eq!(at(r - 1), Verdict::Rejected(RejectReason::NoMatch));
}

#[test]
fn each_totp_counter_is_accepted_once() {
    let params = totp();
    let r = raw();
    let state = accepted_state(check(&params, &TokenState::default(), r));
    assert_eq!(
        check(&params, &state, r),
        Verdict::Rejected(RejectReason::Replayed)
    );
    // An older code after a newer one is a replay too: the token has moved past it.
    assert_eq!(
        check(&params, &state, r - 1),
        Verdict::Rejected(RejectReason::Replayed)
    );
    let state = accepted_state(check(&params, &state, r + 1));
    assert_eq!(
        check(&params, &state, r),
        Verdict::Rejected(RejectReason::Replayed)
    );
    assert_eq!(
        check(&params, &state, r + 1),
        Verdict::Rejected(RejectReason::Replayed)
    );
}

#[test]
fn drift_is_learnt_and_used_next_time() {
    let params = totp();
    let policy = VerifyPolicy::default();
    let r = raw();
    // The token runs one step fast.
    let state = accepted_state(check(&params, &TokenState::default(), r + 1));
    assert_eq!(state.drift, 1);

    // Ten minutes later the window is centred one step ahead, so a code two steps ahead
    // of the server's clock is accepted and one step behind is not.
    let later = NOW + 600;
    let r_later = totp_counter(later, 30, 0);
    let at = |c| verify(KEY, &params, &state, &code(&params, c), later, &policy);
    assert_eq!(at(r_later - 1), Verdict::Rejected(RejectReason::NoMatch));
    assert_eq!(at(r_later + 2), accepted(r_later + 2, r_later + 3, 2));

    // Without the learnt drift the same code is out of the window.
    let fresh = TokenState {
        next_counter: state.next_counter,
        drift: 0,
    };
    assert_eq!(
        verify(
            KEY,
            &params,
            &fresh,
            &code(&params, r_later + 2),
            later,
            &policy
        ),
        Verdict::Rejected(RejectReason::NoMatch)
    );

    // A later on-time code pulls the drift back.
    let state = accepted_state(at(r_later + 1));
    assert_eq!(state.drift, 1);
    let later = later + 300;
    let r_later = totp_counter(later, 30, 0);
    let state = accepted_state(verify(
        KEY,
        &params,
        &state,
        &code(&params, r_later),
        later,
        &policy,
    ));
    assert_eq!(state.drift, 0);
}

#[test]
fn learnt_drift_is_clamped_to_max_drift() {
    let params = totp();
    let policy = VerifyPolicy {
        totp_window: 5,
        max_drift: 2,
        ..VerifyPolicy::default()
    };
    let r = raw();
    let at = |state: &TokenState, c| verify(KEY, &params, state, &code(&params, c), NOW, &policy);
    assert_eq!(at(&TokenState::default(), r + 5), accepted(r + 5, r + 6, 2));
    assert_eq!(
        at(&TokenState::default(), r - 4),
        accepted(r - 4, r - 3, -2)
    );
    assert_eq!(
        at(&TokenState::default(), r + 6),
        Verdict::Rejected(RejectReason::NoMatch)
    );
    // A persisted drift beyond the policy (from a resynchronisation) is used as is, may
    // shrink, but is never extended by verification alone.
    let state = TokenState {
        next_counter: 0,
        drift: 40,
    };
    assert_eq!(at(&state, r + 43), accepted(r + 43, r + 44, 40));
    assert_eq!(at(&state, r + 37), accepted(r + 37, r + 38, 37));
    let behind = TokenState {
        next_counter: 0,
        drift: -40,
    };
    assert_eq!(at(&behind, r - 45), accepted(r - 45, r - 44, -40));
}

#[test]
fn negative_drift_saturates_at_counter_zero() {
    let params = totp();
    let state = TokenState {
        next_counter: 0,
        drift: i64::MIN,
    };
    let policy = VerifyPolicy::default();
    // The drift learnt is the true offset: it is within the (absurd) drift already held.
    let r = i64::try_from(raw()).unwrap();
    assert_eq!(
        verify(KEY, &params, &state, &code(&params, 0), NOW, &policy),
        accepted(0, 1, -r)
    );
    assert_eq!(
        verify(KEY, &params, &state, &code(&params, 1), NOW, &policy),
        accepted(1, 2, 1 - r)
    );
    assert_eq!(
        verify(KEY, &params, &state, &code(&params, 2), NOW, &policy),
        Verdict::Rejected(RejectReason::NoMatch)
    );
    // At the epoch itself the window's lower half is simply absent.
    assert_eq!(
        verify(
            KEY,
            &params,
            &TokenState::default(),
            &code(&params, 0),
            0,
            &policy
        ),
        accepted(0, 1, 0)
    );
}

#[test]
fn resync_from_two_codes_far_ahead() {
    let params = totp();
    let policy = VerifyPolicy::default();
    let r = raw();
    let state = TokenState::default();
    let (c1, c2) = (code(&params, r + 50), code(&params, r + 51));
    assert_eq!(
        check(&params, &state, r + 50),
        Verdict::Rejected(RejectReason::NoMatch)
    );
    let new = resync(KEY, &params, &state, &c1, &c2, NOW, &policy).expect("resync");
    assert_eq!(
        new,
        TokenState {
            next_counter: r + 52,
            drift: 51
        }
    );
    // The codes used for the resync are spent, and the token's next code now verifies.
    assert_eq!(
        check(&params, &new, r + 51),
        Verdict::Rejected(RejectReason::Replayed)
    );
    let after = accepted_state(check(&params, &new, r + 52));
    assert_eq!(
        after,
        TokenState {
            next_counter: r + 53,
            drift: 51
        }
    );
    // An hour later the offset is still known, even though it is beyond max_drift.
    let later = NOW + 3600;
    let r_later = totp_counter(later, 30, 0);
    assert_eq!(
        verify(
            KEY,
            &params,
            &after,
            &code(&params, r_later + 51),
            later,
            &policy
        ),
        accepted(r_later + 51, r_later + 52, 51)
    );
}

#[test]
fn resync_behind_now() {
    let params = totp();
    let r = raw();
    let new = resync(
        KEY,
        &params,
        &TokenState::default(),
        &code(&params, r - 80),
        &code(&params, r - 79),
        NOW,
        &VerifyPolicy::default(),
    );
    assert_eq!(
        new,
        Some(TokenState {
            next_counter: r - 78,
            drift: -79
        })
    );
}

#[test]
fn resync_refusals() {
    let params = totp();
    let policy = VerifyPolicy::default();
    let r = raw();
    let state = TokenState::default();
    let try_pair = |state: &TokenState, a: u64, b: u64| {
        resync(
            KEY,
            &params,
            state,
            &code(&params, a),
            &code(&params, b),
            NOW,
            &policy,
        )
    };
    assert_eq!(try_pair(&state, r + 50, r + 52), None, "not consecutive");
    assert_eq!(try_pair(&state, r + 51, r + 50), None, "reversed");
    assert_eq!(
        try_pair(&state, r + 50, r + 50),
        None,
        "the same code twice"
    );
    assert_eq!(
        try_pair(&state, r + 100, r + 101),
        None,
        "outside the window"
    );
    assert!(
        try_pair(&state, r + 99, r + 100).is_some(),
        "edge of the window"
    );
    assert!(try_pair(&state, r - 100, r - 99).is_some(), "other edge");
    assert_eq!(
        try_pair(&state, r - 101, r - 100),
        None,
        "outside the window"
    );
    let used = TokenState {
        next_counter: r + 60,
        drift: 0,
    };
    assert_eq!(try_pair(&used, r + 50, r + 51), None, "below next_counter");
    assert_eq!(
        try_pair(&used, r + 59, r + 60),
        None,
        "straddles next_counter"
    );
    assert!(try_pair(&used, r + 60, r + 61).is_some());
    assert_eq!(
        resync(
            KEY,
            &params,
            &state,
            b"12345",
            &code(&params, r),
            NOW,
            &policy
        ),
        None,
        "malformed"
    );
}

#[test]
fn hotp_resync_searches_forward() {
    let params = hotp_params();
    let policy = VerifyPolicy::default();
    let state = TokenState {
        next_counter: 1000,
        drift: 0,
    };
    let try_pair = |a: u64, b: u64| {
        resync(
            KEY,
            &params,
            &state,
            &code(&params, a),
            &code(&params, b),
            0,
            &policy,
        )
    };
    assert_eq!(
        try_pair(1030, 1031),
        Some(TokenState {
            next_counter: 1032,
            drift: 0
        })
    );
    assert!(try_pair(1099, 1100).is_some());
    assert_eq!(try_pair(1100, 1101), None);
    assert_eq!(try_pair(998, 999), None);
    assert_eq!(try_pair(1030, 1032), None);
}

#[test]
fn hotp_lookahead_and_replay() {
    let params = hotp_params();
    let state = TokenState {
        next_counter: 5,
        drift: 0,
    };
    assert_eq!(check(&params, &state, 5), accepted(5, 6, 0));
    assert_eq!(check(&params, &state, 15), accepted(15, 16, 0));
    assert_eq!(
        check(&params, &state, 16),
        Verdict::Rejected(RejectReason::NoMatch)
    );
    assert_eq!(
        check(&params, &state, 4),
        Verdict::Rejected(RejectReason::Replayed)
    );
    assert_eq!(
        check(&params, &state, 0),
        Verdict::Rejected(RejectReason::Replayed)
    );
    let state = TokenState {
        next_counter: 50,
        drift: 0,
    };
    assert_eq!(
        check(&params, &state, 40),
        Verdict::Rejected(RejectReason::Replayed)
    );
    assert_eq!(
        check(&params, &state, 39),
        Verdict::Rejected(RejectReason::NoMatch),
        "replays are only recognised within lookahead of next_counter"
    );
    let after = accepted_state(check(&params, &state, 52));
    assert_eq!(
        check(&params, &after, 52),
        Verdict::Rejected(RejectReason::Replayed)
    );
    assert_eq!(
        check(&params, &after, 51),
        Verdict::Rejected(RejectReason::Replayed),
        "skipped counters are spent"
    );
}

#[test]
fn hotp_at_the_end_of_the_counter_space() {
    let params = hotp_params();
    let state = TokenState {
        next_counter: u64::MAX - 3,
        drift: 0,
    };
    assert_eq!(
        check(&params, &state, u64::MAX - 1),
        accepted(u64::MAX - 1, u64::MAX, 0)
    );
    // The last counter is never usable, so the state can always record what was used.
    assert_eq!(
        check(&params, &state, u64::MAX),
        Verdict::Rejected(RejectReason::NoMatch)
    );
    let spent = TokenState {
        next_counter: u64::MAX,
        drift: 0,
    };
    assert_eq!(
        check(&params, &spent, u64::MAX - 1),
        Verdict::Rejected(RejectReason::Replayed)
    );
}

#[test]
fn lowest_fresh_match_wins_when_codes_collide() {
    // With six digits, some pair of counters among a few thousand share a code; find one
    // and check that the earlier fresh counter is the one consumed.
    let params = hotp_params();
    let mut seen = std::collections::HashMap::new();
    let (first, second) = (0u64..20_000)
        .find_map(|c| seen.insert(code(&params, c), c).map(|earlier| (earlier, c)))
        .expect("a collision among 20000 six-digit codes");
    let policy = VerifyPolicy {
        hotp_lookahead: 20_000,
        ..VerifyPolicy::default()
    };
    let shared = code(&params, first);
    let at = |next_counter| {
        let state = TokenState {
            next_counter,
            drift: 0,
        };
        verify(KEY, &params, &state, &shared, 0, &policy)
    };
    assert_eq!(at(0), accepted(first, first + 1, 0));
    // Once the first is spent, the code still matches the second: it is fresh, so it wins
    // over the replay of the first.
    assert_eq!(at(first + 1), accepted(second, second + 1, 0));
    assert_eq!(at(second + 1), Verdict::Rejected(RejectReason::Replayed));
}

#[test]
fn malformed_codes_are_refused() {
    let params = totp();
    let state = TokenState::default();
    let policy = VerifyPolicy::default();
    for bad in [
        &b""[..],
        b"12345",
        b"1234567",
        b"12a456",
        b" 12345",
        b"12345\n",
        b"-12345",
        b"\xff\xff\xff\xff\xff\xff",
    ] {
        assert_eq!(
            verify(KEY, &params, &state, bad, NOW, &policy),
            Verdict::Rejected(RejectReason::Malformed),
            "{bad:?}"
        );
    }
    let eight = TokenParams {
        digits: 8,
        ..totp()
    };
    let six_digit = code(&params, raw());
    assert_eq!(
        verify(KEY, &eight, &state, &six_digit, NOW, &policy),
        Verdict::Rejected(RejectReason::Malformed)
    );
}

#[test]
fn invalid_params_accept_nothing() {
    let state = TokenState::default();
    let policy = VerifyPolicy::default();
    for params in [
        TokenParams {
            digits: 5,
            ..totp()
        },
        TokenParams {
            digits: 9,
            ..totp()
        },
        TokenParams {
            kind: TokenKind::Totp { period: 0, t0: 0 },
            ..totp()
        },
    ] {
        assert_eq!(
            verify(KEY, &params, &state, b"123456", NOW, &policy),
            Verdict::Rejected(RejectReason::NoMatch)
        );
        assert_eq!(
            resync(KEY, &params, &state, b"123456", b"123456", NOW, &policy),
            None
        );
    }
}

#[test]
fn empty_and_long_keys_work() {
    let params = TokenParams {
        algorithm: Algorithm::Sha512,
        digits: 8,
        ..totp()
    };
    let long = [0x5au8; 300];
    for key in [&b""[..], &long[..]] {
        let mut out = [0u8; 8];
        let current = current_code(key, &params, &TokenState::default(), NOW, &mut out).to_vec();
        assert_eq!(current.len(), 8);
        assert!(matches!(
            verify(
                key,
                &params,
                &TokenState::default(),
                &current,
                NOW,
                &VerifyPolicy::default()
            ),
            Verdict::Accepted { .. }
        ));
    }
}

#[test]
fn current_code_follows_drift_and_next_counter() {
    let params = totp();
    let state = TokenState {
        next_counter: 0,
        drift: 3,
    };
    let mut out = [0u8; 8];
    assert_eq!(
        current_code(KEY, &params, &state, NOW, &mut out),
        code(&params, raw() + 3)
    );
    let params = hotp_params();
    let state = TokenState {
        next_counter: 77,
        drift: 0,
    };
    assert_eq!(
        current_code(KEY, &params, &state, NOW, &mut out),
        code(&params, 77)
    );
}

fn any_algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

/// Parameters including invalid ones, to show they are refused rather than mishandled.
fn any_params() -> impl Strategy<Value = TokenParams> {
    let kind = prop_oneof![
        Just(TokenKind::Hotp),
        (any::<u32>(), any::<u64>()).prop_map(|(period, t0)| TokenKind::Totp { period, t0 }),
        (1u32..=3600, 0u64..=2_000_000_000).prop_map(|(period, t0)| TokenKind::Totp { period, t0 }),
    ];
    (kind, any_algorithm(), 0u8..=12).prop_map(|(kind, algorithm, digits)| TokenParams {
        kind,
        algorithm,
        digits,
    })
}

fn valid_params() -> impl Strategy<Value = TokenParams> {
    let kind = prop_oneof![
        Just(TokenKind::Hotp),
        (1u32..=3600, 0u64..=2_000_000_000).prop_map(|(period, t0)| TokenKind::Totp { period, t0 }),
    ];
    (kind, any_algorithm(), 6u8..=8).prop_map(|(kind, algorithm, digits)| TokenParams {
        kind,
        algorithm,
        digits,
    })
}

/// Small windows keep each case cheap; their size does not change the arithmetic at the
/// edges that the property is after.
fn small_policy() -> impl Strategy<Value = VerifyPolicy> {
    (0u32..4, 0u32..12, any::<u32>(), 0u32..12).prop_map(
        |(totp_window, hotp_lookahead, max_drift, resync_window)| VerifyPolicy {
            totp_window,
            hotp_lookahead,
            max_drift,
            resync_window,
        },
    )
}

fn any_state() -> impl Strategy<Value = TokenState> {
    let counter = prop_oneof![
        any::<u64>(),
        0u64..100,
        (u64::MAX - 20)..=u64::MAX,
        50_000_000u64..70_000_000
    ];
    let drift = prop_oneof![any::<i64>(), -30i64..30];
    (counter, drift).prop_map(|(next_counter, drift)| TokenState {
        next_counter,
        drift,
    })
}

fn any_time() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..100,
        1_500_000_000u64..2_100_000_000,
        (u64::MAX - 100)..=u64::MAX
    ]
}

proptest! {
    #[test]
    fn verify_and_resync_never_panic(
        key in proptest::collection::vec(any::<u8>(), 0..200),
        params in any_params(),
        state in any_state(),
        code in proptest::collection::vec(prop_oneof![any::<u8>(), b'0'..=b'9'], 0..12),
        code2 in proptest::collection::vec(b'0'..=b'9', 6..=8),
        time in any_time(),
        policy in small_policy(),
    ) {
        let verdict = verify(&key, &params, &state, &code, time, &policy);
        if let Verdict::Accepted { counter, state: new } = verdict {
            prop_assert!(counter >= state.next_counter);
            prop_assert_eq!(new.next_counter, counter + 1);
        }
        if let Some(new) = resync(&key, &params, &state, &code, &code2, time, &policy) {
            prop_assert!(new.next_counter >= state.next_counter.saturating_add(2));
        }
        let mut out = [0u8; 8];
        let _ = current_code(&key, &params, &state, time, &mut out);
    }

    #[test]
    fn codes_in_the_window_are_accepted_once(
        key in proptest::collection::vec(any::<u8>(), 0..100),
        params in valid_params(),
        drift in -20i64..=20,
        time in prop_oneof![0u64..1000, 1_500_000_000u64..5_000_000_000, any::<u64>()],
        policy in small_policy(),
        offset_seed in any::<u32>(),
        behind in 0u64..5,
    ) {
        let (target, next_counter) = match params.kind {
            TokenKind::Totp { period, t0 } => {
                let centre = totp_counter(time, period, t0).saturating_add_signed(drift);
                let window = i64::from(policy.totp_window);
                let offset = i64::from(offset_seed) % (2 * window + 1) - window;
                let target = centre.checked_add_signed(offset);
                prop_assume!(target.is_some());
                let target = target.unwrap_or_default();
                (target, target.saturating_sub(behind))
            }
            TokenKind::Hotp => {
                let next = u64::from(offset_seed) * 1000;
                (next + u64::from(offset_seed) % (u64::from(policy.hotp_lookahead) + 1), next)
            }
        };
        prop_assume!(target < u64::MAX);
        let state = TokenState { next_counter, drift };
        let mut out = [0u8; 8];
        let code = code_at(&key, &params, target, &mut out).to_vec();
        match verify(&key, &params, &state, &code, time, &policy) {
            Verdict::Accepted { counter, state: new } => {
                // A six-digit collision may pick an earlier fresh counter with the same code.
                prop_assert!(counter <= target && counter >= next_counter);
                prop_assert_eq!(code_at(&key, &params, counter, &mut out), &code[..]);
                prop_assert_eq!(new.next_counter, counter + 1);
                if let TokenKind::Totp { period, t0 } = params.kind {
                    let raw = i128::from(totp_counter(time, period, t0));
                    let limit = i128::from(policy.max_drift).max(i128::from(drift.unsigned_abs()));
                    let learnt = (i128::from(counter) - raw).clamp(-limit, limit);
                    prop_assert_eq!(i128::from(new.drift), learnt);
                }
                // The same code again can only be accepted for a later counter.
                if let Verdict::Accepted { counter: again, .. } =
                    verify(&key, &params, &new, &code, time, &policy)
                {
                    prop_assert!(again > counter);
                }
            }
            other => prop_assert!(false, "code at {} refused: {:?}", target, other),
        }
    }

    /// The fence after an untraced loss: a run of accepts (each one teaching its drift),
    /// then a crash that lost all of them, then a restart at or after the last accept. From
    /// the state before the run, the fence refuses every code the run accepted.
    #[test]
    fn the_fence_refuses_every_code_a_lost_run_accepted(
        key in proptest::collection::vec(any::<u8>(), 1..40),
        period in prop_oneof![Just(30u32), 1u32..=120],
        drift in -12i64..=12,
        start in 1_500_000_000u64..2_000_000_000,
        steps in proptest::collection::vec((0u64..90, any::<u32>()), 1..8),
        restart_after in 0u64..200,
        policy in small_policy(),
    ) {
        let params = TokenParams { kind: TokenKind::Totp { period, t0: 0 }, ..TokenParams::default() };
        let before = TokenState { next_counter: 0, drift };
        let mut state = before;
        let mut time = start;
        let mut accepted = Vec::new();
        for (wait, pick) in steps {
            time += wait;
            // The code of some counter within reach of the window now.
            let centre = totp_counter(time, period, 0).saturating_add_signed(state.drift);
            let window = u64::from(policy.totp_window);
            let target = centre.saturating_sub(window) + u64::from(pick) % (2 * window + 1);
            let mut out = [0u8; 8];
            let code = code_at(&key, &params, target, &mut out).to_vec();
            if let Verdict::Accepted { state: next, .. } = verify(&key, &params, &state, &code, time, &policy) {
                accepted.push((code, time));
                state = next;
            }
        }
        let fenced = fence(&params, &before, time + restart_after, &policy);
        prop_assert!(fenced.next_counter >= state.next_counter, "the fence is behind the lost run");
        for (code, at) in accepted {
            // Replayed at the restart, or at any moment after it.
            for later in [time + restart_after, at.max(time + restart_after) + 30] {
                let again = verify(&key, &params, &fenced, &code, later, &policy);
                prop_assert!(!matches!(again, Verdict::Accepted { .. }), "a lost code was accepted again");
            }
        }
    }

    #[test]
    fn the_fence_leaves_hotp_alone(state in any_state(), time in any_time(), policy in small_policy()) {
        prop_assert_eq!(fence(&hotp_params(), &state, time, &policy), state);
    }
}
