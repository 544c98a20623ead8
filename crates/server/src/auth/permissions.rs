//! Per-user permissions (`[auth.users.NAME.permissions]`): glob patterns over destinations for
//! `read` (SUBSCRIBE, and pulling from a queue), `write` (SEND) and `admin` (declaring what outlives
//! a connection: durable topic subscriptions and queue bindings). A user without a `permissions`
//! table may do everything; with one, each list that is absent allows nothing.
//!
//! Patterns are written like destinations — `/queue/orders.*`, `/topic/prices.*`, a bare
//! `ocid1.queue.*` (a bare name is a queue, as on the wire), `*` for everything,
//! `/temp-queue/*` for replies to other connections' temporary queues — and matched against the
//! destination's canonical spelling: `/queue/NAME`, `/topic/NAME`, `/temp-queue/NAME`,
//! `/temp-topic/NAME`. `*` matches any run of characters (dots and slashes included), `?` one.

use stampede_broker::{glob_match, is_pattern, Destination, TEMP_PREFIX, TEMP_TOPIC_PREFIX};

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Admin => "admin",
        }
    }
}

/// One user's permissions; `None` = everything.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    lists: Option<[Vec<String>; 3]>,
}

impl Permissions {
    /// Everything allowed (open mode, users without a `permissions` table).
    pub fn all() -> Permissions {
        Permissions { lists: None }
    }

    /// From the configured lists; patterns in canonical form (see [`canonical_pattern`]).
    pub fn lists(read: Vec<String>, write: Vec<String>, admin: Vec<String>) -> Permissions {
        Permissions {
            lists: Some([read, write, admin]),
        }
    }

    pub fn is_all(&self) -> bool {
        self.lists.is_none()
    }

    /// Whether `access` is allowed on every destination there is or will be (a backup reads them
    /// all): no permissions table, or `*` in the list.
    pub fn allows_everything(&self, access: Access) -> bool {
        self.lists
            .as_ref()
            .is_none_or(|lists| lists[access as usize].iter().any(|p| p == "*"))
    }

    /// Whether `access` on `destination` is allowed.
    pub fn allows(&self, access: Access, destination: &Destination) -> bool {
        let Some(lists) = &self.lists else {
            return true;
        };
        let patterns = &lists[access as usize];
        if patterns.is_empty() {
            return false;
        }
        match destination {
            Destination::Topic(t) if is_pattern(t) => covers_every_match(patterns, t),
            _ => {
                let name = canonical(destination);
                patterns.iter().any(|p| glob_match(p, &name))
            }
        }
    }
}

/// A wildcard subscription receives every topic its pattern matches, which a glob over the
/// pattern's own spelling does not bound (`/topic/orders.*.eu` would match the text
/// `orders.#.eu`, which also receives `orders.eu`). It is allowed only by a permission that
/// ends in `*` after a literal prefix of the topics the pattern can match: its words before the
/// first wildcard word, with their dot when that word is `*` (one word), without it for `#` or
/// `>` (which also match no word: `prices.#` receives `prices`).
fn covers_every_match(patterns: &[String], topic: &str) -> bool {
    let words: Vec<&str> = topic.split('.').collect();
    let first = words
        .iter()
        .position(|w| matches!(*w, "*" | "#" | ">"))
        .unwrap_or(words.len());
    let mut prefix = format!("/topic/{}", words[..first].join("."));
    if first > 0 && words.get(first) == Some(&"*") {
        prefix.push('.');
    }
    patterns.iter().any(|p| {
        p.strip_suffix('*')
            .is_some_and(|lit| !lit.contains(['*', '?']) && prefix.starts_with(lit))
    })
}

/// How a destination is spelt for matching.
pub fn canonical(d: &Destination) -> String {
    match d {
        Destination::Queue(q) if q.starts_with(TEMP_PREFIX) => format!("/temp-queue/{q}"),
        Destination::Queue(q) => format!("/queue/{q}"),
        Destination::Topic(t) if t.starts_with(TEMP_TOPIC_PREFIX) => format!("/temp-topic/{t}"),
        Destination::Topic(t) => format!("/topic/{t}"),
    }
}

/// A pattern as configured, in the spelling [`canonical`] produces; `None` if it names no kind of
/// destination.
pub fn canonical_pattern(p: &str) -> Option<String> {
    const KINDS: [(&str, &str); 6] = [
        ("/queue/", "/queue/"),
        ("/amq/queue/", "/queue/"),
        ("/topic/", "/topic/"),
        ("/exchange/amq.topic/", "/topic/"),
        ("/temp-queue/", "/temp-queue/"),
        ("/temp-topic/", "/temp-topic/"),
    ];
    if p == "*" {
        // Everything, of every kind.
        return Some("*".to_owned());
    }
    for (prefix, as_canonical) in KINDS {
        if let Some(rest) = p.strip_prefix(prefix) {
            return Some(format!("{as_canonical}{rest}"));
        }
    }
    (!p.starts_with('/') && !p.is_empty()).then(|| format!("/queue/{p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: &str) -> Destination {
        Destination::Queue(n.into())
    }

    fn t(n: &str) -> Destination {
        Destination::Topic(n.into())
    }

    fn perms(read: &[&str], write: &[&str]) -> Permissions {
        let c = |l: &[&str]| l.iter().map(|p| canonical_pattern(p).unwrap()).collect();
        Permissions::lists(c(read), c(write), Vec::new())
    }

    #[test]
    fn patterns_match_the_canonical_spelling() {
        let p = perms(&["orders.*", "/topic/prices.*"], &["/amq/queue/orders.eu"]);
        assert!(p.allows(Access::Read, &q("orders.eu")));
        assert!(p.allows(Access::Read, &t("prices.gbp")));
        assert!(
            !p.allows(Access::Read, &q("prices.gbp")),
            "a queue is not the topic"
        );
        assert!(p.allows(Access::Write, &q("orders.eu")));
        assert!(!p.allows(Access::Write, &q("orders.us")));
        assert!(
            !p.allows(Access::Admin, &t("prices.gbp")),
            "absent list = nothing"
        );
        assert!(Permissions::all().allows(Access::Admin, &q("anything")));
        assert!(perms(&["*"], &[]).allows(Access::Read, &t("x")));
    }

    #[test]
    fn a_wildcard_subscription_needs_a_permission_covering_all_it_matches() {
        let p = perms(&["/topic/orders.*.eu", "/topic/prices.*"], &[]);
        assert!(
            !p.allows(Access::Read, &t("orders.#.eu")),
            "also receives orders.eu"
        );
        assert!(!p.allows(Access::Read, &t("orders.*.eu")));
        assert!(
            p.allows(Access::Read, &t("orders.de.eu")),
            "a plain topic matches as text"
        );
        assert!(
            !p.allows(Access::Read, &t("prices.#")),
            "also receives prices itself"
        );
        assert!(perms(&["/topic/prices*"], &[]).allows(Access::Read, &t("prices.#")));
        assert!(p.allows(Access::Read, &t("prices.*")));
        assert!(p.allows(Access::Read, &t("prices.gbp.*")));
        assert!(!p.allows(Access::Read, &t("#")));
        assert!(perms(&["*"], &[]).allows(Access::Read, &t("#")));
        assert!(perms(&["/topic/*"], &[]).allows(Access::Read, &t("a.>")));
    }

    #[test]
    fn temporary_destinations_have_their_own_kind() {
        let temp = q(&format!("{TEMP_PREFIX}1.2.replies"));
        assert!(!perms(&[], &["/queue/*"]).allows(Access::Write, &temp));
        assert!(perms(&[], &["/temp-queue/*"]).allows(Access::Write, &temp));
        assert_eq!(canonical_pattern("/nowhere/x"), None);
        assert_eq!(canonical_pattern(""), None);
    }
}
