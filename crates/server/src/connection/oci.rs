//! OCI-strict mode (a listener's `oci_strict = true`): the broker refuses what OCI Queue's STOMP
//! endpoint refuses, so code that would break on the real service breaks here first. OCI Queue
//! answers transactions (BEGIN/COMMIT/ABORT, a `transaction` header) and custom headers on SEND
//! with an ERROR and closes the connection, and its destinations are queue OCIDs, optionally with
//! a channel (`<OCID>/<channel>`).

use stampede_proto::ClientCommand;

use super::ConnError;

/// SEND headers OCI Queue accepts besides `destination`, `receipt` and `content-length` (which
/// never reach the command's application headers).
const SEND_HEADERS: [&str; 1] = ["content-type"];

/// Refuses a command OCI Queue would refuse.
pub fn check(command: &ClientCommand) -> Result<(), ConnError> {
    let refuse = |what: String| Err(ConnError::OciStrict(what));
    match command {
        ClientCommand::Begin { .. } => refuse("transactions are not supported (BEGIN)".into()),
        ClientCommand::Commit { .. } => refuse("transactions are not supported (COMMIT)".into()),
        ClientCommand::Abort { .. } => refuse("transactions are not supported (ABORT)".into()),
        ClientCommand::Send(s) if s.transaction.is_some() => {
            refuse("transactions are not supported (SEND with a transaction header)".into())
        }
        ClientCommand::Ack(a) | ClientCommand::Nack(a) if a.transaction.is_some() => {
            refuse("transactions are not supported (a transaction header)".into())
        }
        ClientCommand::Send(s) => {
            if let Some((k, _)) = s
                .headers
                .iter()
                .find(|(k, _)| !SEND_HEADERS.contains(&k.as_str()))
            {
                return refuse(format!("custom headers are not supported ({k:?} on SEND)"));
            }
            destination(&s.destination)
        }
        ClientCommand::Subscribe(s) => destination(&s.destination),
        _ => Ok(()),
    }
}

fn destination(d: &str) -> Result<(), ConnError> {
    if is_queue_ocid(d) {
        return Ok(());
    }
    Err(ConnError::OciStrict(format!(
        "destination {d:?} is not a queue OCID (ocid1.queue.<realm>.<region>.<id>, optionally \
         /<channel>)"
    )))
}

/// `ocid1.queue.<realm>.<region>[.<future>].<id>` with an optional `/<channel>`.
pub fn is_queue_ocid(d: &str) -> bool {
    let (ocid, channel) = match d.split_once('/') {
        Some((o, c)) => (o, Some(c)),
        None => (d, None),
    };
    let parts: Vec<&str> = ocid.split('.').collect();
    let word = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    let shape = parts.len() >= 5
        && parts[0] == "ocid1"
        && parts[1] == "queue"
        && word(&parts[2])
        && parts[4..].iter().all(word)
        && parts[3]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    shape && !matches!(channel, Some(c) if c.is_empty() || c.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ocids_with_and_without_channels() {
        assert!(is_queue_ocid("ocid1.queue.oc1.phx.amaaaaaa7ratcziax"));
        assert!(is_queue_ocid(
            "ocid1.queue.oc1.phx.amaaaaaa7ratcziax/orders-eu"
        ));
        assert!(
            is_queue_ocid("ocid1.queue.oc1..aaaa"),
            "a realm-wide OCID has no region"
        );
        assert!(!is_queue_ocid("/queue/orders"));
        assert!(!is_queue_ocid("ocid1.stream.oc1.phx.abc"));
        assert!(!is_queue_ocid("ocid1.queue.oc1.phx.abc/"));
        assert!(!is_queue_ocid("ocid1.queue.oc1.phx.abc/a/b"));
        assert!(!is_queue_ocid("ocid1.queue.oc1"));
    }
}
