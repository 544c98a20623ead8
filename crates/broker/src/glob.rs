//! Glob patterns over destination names (`orders.*`), for per-queue settings and, later, per-user
//! permissions.

/// Glob match: `*` any run of characters (dots included), `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("orders.*", "orders.eu"));
        assert!(glob_match("orders.*", "orders.eu.west"));
        assert!(!glob_match("orders.*", "order.eu"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c*z", "abcxyz"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("ocid1.queue.*", "ocid1.queue.oc1.phx.abc"));
    }
}
