//! Times the cold and the warm directory-password check: a full Argon2id verification
//! against the stored hash, and a hit in the verified-credential cache that spares it.
//!
//! Run with `cargo bench -p tollgate-benches --bench passwords`. The Argon2 figure is tens of
//! milliseconds per iteration, so its group takes only ten samples.

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use tollgate_actors::state::CredentialCache;
use tollgate_actors::store::{hash_password, verify_password, HashParams};
use tollgate_benches::{NOW_MS, PASSWORD};

/// The user id the cache entry is kept under.
const USER_ID: i64 = 1;

/// How long cache entries live, in seconds; long enough never to expire during a run.
const CACHE_TTL_SECS: u64 = 300;

fn main() -> ExitCode {
    // One hash with the default Argon2id parameters, as the embedded directory stores it.
    let phc = hash_password(PASSWORD, &HashParams::default());
    if !verify_password(PASSWORD, &phc) {
        eprintln!("passwords: the password does not verify against its own hash");
        return ExitCode::FAILURE;
    }
    let hash: Arc<str> = Arc::from(phc.as_str());
    let cache = CredentialCache::new(CACHE_TTL_SECS);
    cache.remember(USER_ID, &hash, PASSWORD, NOW_MS);
    if !cache.check(USER_ID, &hash, PASSWORD, NOW_MS + 1) {
        eprintln!("passwords: the credential cache does not remember the password");
        return ExitCode::FAILURE;
    }

    let mut c = Criterion::default().configure_from_args();
    {
        let mut cold = c.benchmark_group("cold");
        cold.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        cold.bench_function("argon2_verify", |b| {
            b.iter(|| verify_password(black_box(PASSWORD), black_box(&phc)))
        });
        cold.finish();
    }
    {
        let mut warm = c.benchmark_group("warm");
        warm.bench_function("credential_cache_check", |b| {
            b.iter(|| {
                cache.check(
                    black_box(USER_ID),
                    black_box(&hash),
                    black_box(PASSWORD),
                    black_box(NOW_MS + 1),
                )
            })
        });
        warm.finish();
    }
    c.final_summary();
    ExitCode::SUCCESS
}
