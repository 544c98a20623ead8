//! Topic wildcards: subscription and binding patterns over `.`-separated topic names, in both
//! syntaxes clients bring — RabbitMQ's `*` (exactly one word) and `#` (zero or more words), and
//! ActiveMQ's `*` and `>` (read as `#`). A pattern is a topic like any other (its subscribers and
//! bound queues live in its [`Topic`]); the [`Trie`] finds the patterns a published name matches
//! by walking the name's words, so a publish costs what its name and its matches cost, not one
//! test per pattern.

use std::collections::HashMap;
use std::sync::Arc;

use crate::topic::Topic;

/// True if `name` has a wildcard word: it names many topics, not one.
pub fn is_pattern(name: &str) -> bool {
    // Every SEND to a topic asks; most names have none of the three characters at all.
    name.bytes().any(|b| matches!(b, b'*' | b'#' | b'>'))
        && name.split('.').any(|w| matches!(w, "*" | "#" | ">"))
}

/// Every pattern topic, by its words.
#[derive(Debug, Default)]
pub(crate) struct Trie {
    root: Node,
    len: usize,
}

#[derive(Debug, Default)]
struct Node {
    words: HashMap<Box<str>, Node>,
    /// `*`
    one: Option<Box<Node>>,
    /// `#` or `>`
    any: Option<Box<Node>>,
    /// The patterns that end here.
    topics: Vec<Arc<Topic>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.one.is_none() && self.any.is_none() && self.topics.is_empty()
    }

    fn child(&mut self, word: &str) -> &mut Node {
        match word {
            "*" => self.one.get_or_insert_with(Default::default),
            "#" | ">" => self.any.get_or_insert_with(Default::default),
            w => self.words.entry(w.into()).or_default(),
        }
    }
}

impl Trie {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, pattern: &str, topic: Arc<Topic>) {
        let node = pattern.split('.').fold(&mut self.root, |n, w| n.child(w));
        node.topics.push(topic);
        self.len += 1;
    }

    /// Removes this very topic (not another made since for the same pattern); prunes what is
    /// left empty.
    pub fn remove(&mut self, pattern: &str, topic: &Arc<Topic>) {
        let words: Vec<&str> = pattern.split('.').collect();
        if remove_at(&mut self.root, &words, topic) {
            self.len -= 1;
        }
    }

    /// Appends every pattern topic `name` matches, each once.
    pub fn matches(&self, name: &str, out: &mut Vec<Arc<Topic>>) {
        let words: Vec<&str> = name.split('.').collect();
        let start = out.len();
        walk(&self.root, &words, out);
        // `a.#.#` can match one name along several paths.
        let mut i = start + 1;
        while i < out.len() {
            if out[start..i].iter().any(|t| Arc::ptr_eq(t, &out[i])) {
                out.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

fn walk(node: &Node, words: &[&str], out: &mut Vec<Arc<Topic>>) {
    if let Some(any) = node.any.as_deref() {
        for skip in 0..=words.len() {
            walk(any, &words[skip..], out);
        }
    }
    let Some((word, rest)) = words.split_first() else {
        out.extend(node.topics.iter().cloned());
        return;
    };
    if let Some(child) = node.words.get(*word) {
        walk(child, rest, out);
    }
    if let Some(one) = node.one.as_deref() {
        walk(one, rest, out);
    }
}

fn remove_at(node: &mut Node, words: &[&str], topic: &Arc<Topic>) -> bool {
    let Some((word, rest)) = words.split_first() else {
        let before = node.topics.len();
        node.topics.retain(|t| !Arc::ptr_eq(t, topic));
        return node.topics.len() != before;
    };
    match *word {
        "*" | "#" | ">" => {
            let slot = if *word == "*" {
                &mut node.one
            } else {
                &mut node.any
            };
            let Some(child) = slot.as_deref_mut() else {
                return false;
            };
            let removed = remove_at(child, rest, topic);
            if child.is_empty() {
                *slot = None;
            }
            removed
        }
        w => {
            let Some(child) = node.words.get_mut(w) else {
                return false;
            };
            let removed = remove_at(child, rest, topic);
            if child.is_empty() {
                node.words.remove(w);
            }
            removed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trie(patterns: &[&str]) -> (Trie, Vec<Arc<Topic>>) {
        let mut t = Trie::default();
        let topics: Vec<Arc<Topic>> = patterns.iter().map(|p| Topic::new(Arc::from(*p))).collect();
        for (p, topic) in patterns.iter().zip(&topics) {
            t.insert(p, topic.clone());
        }
        (t, topics)
    }

    fn matched(t: &Trie, name: &str) -> Vec<String> {
        let mut out = Vec::new();
        t.matches(name, &mut out);
        let mut names: Vec<String> = out.iter().map(|t| t.name().to_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn both_syntaxes_match_as_documented() {
        let (t, _) = trie(&["a.*", "a.#", "a.>", "*.b.*", "#", "a.*.c", "a.b.#.d"]);
        assert_eq!(
            matched(&t, "a"),
            ["#", "a.#", "a.>"],
            "# and > match zero words"
        );
        assert_eq!(matched(&t, "a.b"), ["#", "a.#", "a.*", "a.>"]);
        assert_eq!(matched(&t, "a.b.c"), ["#", "*.b.*", "a.#", "a.*.c", "a.>"]);
        assert_eq!(matched(&t, "a.b.x.y.d"), ["#", "a.#", "a.>", "a.b.#.d"]);
        assert_eq!(matched(&t, "z.b.c"), ["#", "*.b.*"]);
        assert_eq!(matched(&t, "b"), ["#"]);
    }

    #[test]
    fn one_name_matches_a_pattern_once_and_removal_prunes() {
        let (mut t, topics) = trie(&["a.#.#", "x.*"]);
        assert_eq!(matched(&t, "a.b.c"), ["a.#.#"]);
        t.remove("a.#.#", &topics[0]);
        assert!(matched(&t, "a.b.c").is_empty());
        // Removing a topic that is not there (another object for the same pattern) is no-op.
        t.remove("x.*", &Topic::new(Arc::from("x.*")));
        assert_eq!(matched(&t, "x.y"), ["x.*"]);
        t.remove("x.*", &topics[1]);
        assert!(t.is_empty());
        assert!(t.root.is_empty(), "{:?}", t.root);
    }

    #[test]
    fn patterns_are_words_not_characters() {
        assert!(is_pattern("a.*") && is_pattern("#") && is_pattern("orders.>"));
        assert!(!is_pattern("a*b") && !is_pattern("price.#1") && !is_pattern("plain"));
    }
}
