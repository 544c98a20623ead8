//! `stampede passwd`: a password on stdin becomes an argon2id hash on stdout that verifies it and
//! nothing else (docs/behaviour.md "Authentication").

use std::io::Write;
use std::process::{Command, Output, Stdio};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use stampede_tests::binary;

fn passwd(stdin: &[u8]) -> Output {
    let mut child = Command::new(binary())
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stampede passwd");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn verifies(hash: &str, password: &str) -> bool {
    let parsed = PasswordHash::new(hash).expect("a PHC string");
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[test]
fn passwd_prints_a_salted_argon2id_hash_of_the_first_line() {
    let a = passwd(b"tenancy/oci-user token\r\nsecond line ignored\n");
    assert!(a.status.success(), "{a:?}");
    let a = String::from_utf8(a.stdout).unwrap();
    let a = a.trim_end();
    assert!(a.starts_with("$argon2id$v=19$"), "{a}");
    assert!(verifies(a, "tenancy/oci-user token"));
    assert!(!verifies(a, "tenancy/oci-user token\r"));
    assert!(!verifies(a, "second line ignored"));

    let b = passwd(b"tenancy/oci-user token");
    let b = String::from_utf8(b.stdout).unwrap();
    assert_ne!(a, b.trim_end(), "each hash has its own salt");
    assert!(verifies(b.trim_end(), "tenancy/oci-user token"));
}

#[test]
fn passwd_refuses_an_empty_password() {
    for input in [&b""[..], b"\n"] {
        let out = passwd(input);
        assert!(!out.status.success(), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("the password is empty"), "{err}");
    }
}
