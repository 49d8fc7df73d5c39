//! Directory password hashes for the embedded directory (Argon2id, PHC strings), and the
//! working memory their checks borrow.
//!
//! An Argon2id check fills a block of memory the size of its `m` parameter (19 MiB at the
//! defaults). Allocated per check, that block was mapped, faulted in page by page and
//! unmapped again every time: the server's RSS jumped by 19 MiB for each check in flight
//! and fell back after it, which made a steady server look as if it breathed. The blocks
//! are kept instead, one per core at most (checks run behind a gate as wide as the cores),
//! and wiped after every check, since a block left behind would let a reader of the memory
//! test guesses at the password without paying for the memory-hard part.

use std::sync::{Mutex, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// The Argon2id parameters new password hashes are made with (`[passwords]`); a stored
/// hash is checked with its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashParams {
    /// The configuration's defaults: OWASP's 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        HashParams::from_config(&tollgate_config::PasswordConfig::default())
    }
}

impl HashParams {
    /// The parameters `[passwords]` asks for.
    pub fn from_config(c: &tollgate_config::PasswordConfig) -> HashParams {
        HashParams {
            memory_kib: c.argon2_memory_kib,
            iterations: c.argon2_iterations,
            parallelism: c.argon2_parallelism,
        }
    }
}

/// Hashes a password with Argon2id, `params` and a random salt, as a PHC string.
///
/// Parameters the argon2 crate refuses (a configuration validates them long before) fall
/// back to the defaults, so that a password is never stored unhashed or weaker.
pub fn hash_password(password: &[u8], params: &HashParams) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let argon2 = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        None,
    )
    .map(|p| Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    .unwrap_or_default();
    argon2
        .hash_password(password, &salt)
        // Hashing fails only for parameters or salts out of range, which these never are.
        .expect("Argon2id hashing with validated parameters cannot fail")
        .to_string()
}

/// Checks a password against a PHC string. A malformed hash, or one of another algorithm,
/// never verifies.
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    verify_with(&KEPT, password, phc)
}

fn verify_with(pool: &Pool, password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    // The output length comes from the stored hash.
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    let mut memory = Memory::borrow(pool, params.block_count());
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        &mut computed,
        memory.blocks.as_mut_slice(),
    );
    hashed.is_ok() && bool::from(computed.ct_eq(expected.as_bytes()))
}

/// Sets of blocks kept for later checks, at most one per core.
type Pool = Mutex<Vec<Vec<Block>>>;

/// The server's pool.
static KEPT: Pool = Mutex::new(Vec::new());

/// A set of blocks larger than this (a hash made with `m` above 64 MiB) is not kept.
const KEEP_AT_MOST_BLOCKS: usize = 64 * 1024;

/// The cores this process may run on, read once (std reads the affinity mask and the
/// cgroup's quota files each time it is asked).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Working memory borrowed for one check: wiped and put back when dropped.
struct Memory<'p> {
    pool: &'p Pool,
    blocks: Vec<Block>,
}

impl Memory<'_> {
    fn borrow(pool: &Pool, count: usize) -> Memory<'_> {
        let kept = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut blocks = kept.unwrap_or_default();
        // Kept blocks are all zero, and so are the ones added. (Argon2 writes every block
        // before it reads it; the zeros are for whoever reads the memory between checks.)
        blocks.resize(count, Block::default());
        Memory { pool, blocks }
    }
}

impl Drop for Memory<'_> {
    fn drop(&mut self) {
        // Wiped in place, keeping the length, so that the next check of the same size has
        // nothing to fill in.
        self.blocks.iter_mut().for_each(Zeroize::zeroize);
        if self.blocks.len() > KEEP_AT_MOST_BLOCKS {
            return;
        }
        let mut kept = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < cores() {
            kept.push(std::mem::take(&mut self.blocks));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_carries_the_parameters_it_was_made_with_and_verifies() {
        let params = HashParams {
            memory_kib: 7_168,
            iterations: 5,
            parallelism: 2,
        };
        let h = hash_password(b"pw", &params);
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=2$"), "{h}");
        assert!(verify_password(b"pw", &h));
        assert!(!verify_password(b"pW", &h));
        let d = hash_password(b"pw", &HashParams::default());
        assert!(d.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{d}");
    }

    #[test]
    fn hashes_verify_only_their_password() {
        let h = hash_password(b"correct horse", &HashParams::default());
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(b"correct horse", &h));
        assert!(!verify_password(b"correct hors", &h));
        assert!(!verify_password(b"x", "not a hash"));
    }

    /// The check made here agrees with the argon2 crate's own verifier, whatever the
    /// parameters, the version or the variant the stored hash names, and a hash with a
    /// piece missing or out of range verifies nothing.
    #[test]
    fn agrees_with_the_reference_verifier_for_every_kind_of_hash() {
        use argon2::password_hash::PasswordVerifier;
        let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
        let mut hashes = Vec::new();
        for (algorithm, version, m, t, p, len) in [
            (Algorithm::Argon2id, Version::V0x13, 19 * 1024, 2, 1, 32),
            (Algorithm::Argon2id, Version::V0x13, 8, 1, 1, 16),
            (Algorithm::Argon2i, Version::V0x13, 64, 3, 2, 24),
            (Algorithm::Argon2d, Version::V0x10, 32, 1, 4, 64),
        ] {
            let params = Params::new(m, t, p, Some(len)).expect("params");
            let phc = Argon2::new(algorithm, version, params)
                .hash_password(b"right", &salt)
                .expect("hash")
                .to_string();
            hashes.push(phc);
        }
        for phc in &hashes {
            let parsed = PasswordHash::new(phc).expect("parses");
            for password in [&b"right"[..], b"wrong", b"", b"righ"] {
                let reference = Argon2::default().verify_password(password, &parsed).is_ok();
                assert_eq!(verify_password(password, phc), reference, "{phc}");
                assert_eq!(reference, password == b"right");
            }
        }
        let good = &hashes[1];
        let broken = [
            good.replace("$argon2id$", "$scrypt$"),
            good.replace("m=8", "m=1"),
            good.replace("t=1", "t=0"),
            good.replace("v=19", "v=18"),
            good[..good.rfind('$').expect("a hash part")].to_owned(),
            good.replace("c2l4dGVlbiBieXRlIHNsdA", "!!"),
        ];
        for phc in &broken {
            assert!(!verify_password(b"right", phc), "{phc}");
        }
    }

    #[test]
    fn the_memory_kept_between_checks_is_wiped_and_bounded() {
        let pool = Pool::default();
        let phc = hash_password(b"pw", &HashParams::default());
        for _ in 0..3 {
            assert!(verify_with(&pool, b"pw", &phc));
            assert!(!verify_with(&pool, b"pW", &phc));
        }
        // Checks one after the other share one set.
        let kept = pool.lock().expect("lock");
        assert_eq!(kept.len(), 1);
        for blocks in kept.iter() {
            assert_eq!(blocks.len(), 19 * 1024, "one block per KiB of m");
            assert!(
                blocks.iter().all(|b| b.as_ref().iter().all(|w| *w == 0)),
                "a kept block holds something of the last check"
            );
        }
    }
}
