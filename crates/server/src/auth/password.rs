//! Password hashes for `auth.mode = "users"`: argon2id in the PHC string format
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), which `stampede passwd` prints and
//! `[auth.users.NAME] password_hash` holds. Hashing and verifying are deliberately slow (tens of
//! milliseconds): callers on the async runtime run them on a blocking thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
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

/// Parses a PHC hash string; configuration is checked with it at start-up.
pub fn check_hash(hash: &str) -> Result<PasswordHash<'_>, AuthError> {
    PasswordHash::new(hash).map_err(|e| AuthError::BadHash(e.to_string()))
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
    }
}
