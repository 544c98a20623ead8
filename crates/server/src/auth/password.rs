//! Password hashes for `auth.mode = "users"`: argon2id in the PHC string format
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), which `stampede passwd` prints and
//! `[auth.users.NAME] password_hash` holds. Hashing and verifying are deliberately slow (tens of
//! milliseconds): callers on the async runtime run them on a blocking thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, Params};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("the password is empty")]
    EmptyPassword,
    #[error("not an argon2 password hash ({0}): make one with `stampede passwd`")]
    BadHash(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// An argon2id hash of `password` with a fresh random salt and the crate's default cost
/// (OWASP's recommended minimum: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`; a malformed hash is an error (a configuration mistake),
/// not a mismatch.
pub fn verify_password(hash: &str, password: &[u8]) -> Result<bool, AuthError> {
    let parsed = check_hash(hash)?;
    Ok(Argon2::default().verify_password(password, &parsed).is_ok())
}

/// Parses a PHC hash string; configuration is checked with it at start-up. Only argon2id is
/// accepted: another algorithm would verify at another speed (telling its user from an unknown
/// one by the time a refusal takes), or not at all.
pub fn check_hash(hash: &str) -> Result<PasswordHash<'_>, AuthError> {
    let parsed = PasswordHash::new(hash).map_err(|e| AuthError::BadHash(e.to_string()))?;
    if parsed.algorithm != argon2::Algorithm::Argon2id.ident() {
        return Err(AuthError::BadHash(format!(
            "{} is not argon2id",
            parsed.algorithm
        )));
    }
    Params::try_from(&parsed).map_err(|e| AuthError::BadHash(e.to_string()))?;
    Ok(parsed)
}

/// The cost parameters of a hash [`check_hash`] accepted.
pub fn cost_of(hash: &str) -> Option<Params> {
    Params::try_from(&check_hash(hash).ok()?).ok()
}

/// A hash of a random password at `cost`: what an unknown user's passcode is checked against, so
/// that it takes as long as a known user's check.
pub fn decoy_hash(cost: Params) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let random = SaltString::generate(&mut OsRng);
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, cost)
        .hash_password(random.as_str().as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2id hashes with parameters a hash already used")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_salts_differ() {
        let a = hash_password("s3cret").unwrap();
        let b = hash_password("s3cret").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt per hash");
        assert!(verify_password(&a, b"s3cret").unwrap());
        assert!(!verify_password(&a, b"s3cret ").unwrap());
        assert!(!verify_password(&b, b"").unwrap());
    }

    #[test]
    fn empty_passwords_and_malformed_hashes_are_errors() {
        assert!(matches!(hash_password(""), Err(AuthError::EmptyPassword)));
        assert!(matches!(
            verify_password("plain-text", b"x"),
            Err(AuthError::BadHash(_))
        ));
        let salt = SaltString::generate(&mut OsRng);
        let argon2i = Argon2::new(
            argon2::Algorithm::Argon2i,
            argon2::Version::V0x13,
            Params::default(),
        )
        .hash_password(b"pw", &salt)
        .unwrap()
        .to_string();
        let e = check_hash(&argon2i).unwrap_err().to_string();
        assert!(e.contains("not argon2id"), "{e}");
    }

    #[test]
    fn a_decoy_takes_the_cost_it_is_given_and_matches_nothing() {
        let cost = Params::new(8 * 1024, 3, 1, None).unwrap();
        let decoy = decoy_hash(cost);
        let got = cost_of(&decoy).unwrap();
        assert_eq!((got.m_cost(), got.t_cost(), got.p_cost()), (8 * 1024, 3, 1));
        assert!(!verify_password(&decoy, b"").unwrap());
    }
}
