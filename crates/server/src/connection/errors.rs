//! Why a connection ends in an ERROR frame, and the one place that turns each cause into the frame
//! (its `message` and body) and the `kind` label operators count it under.

use stampede_broker::BrokerError;
use stampede_proto::{Command, Frame, ProtoError};

use crate::metrics::ErrorKind;

/// What went wrong on a connection.
#[derive(Debug)]
pub enum ConnError {
    /// The peer's bytes broke the protocol or a limit.
    Proto(ProtoError),
    /// The broker refused the command.
    Broker(BrokerError),
    /// The first frame was something else than CONNECT or STOMP.
    NotConnect(Command),
    /// A second CONNECT.
    AlreadyConnected,
    /// No CONNECT within the connect timeout.
    ConnectTimeout,
    /// Nothing from the client within 1.5x the agreed heart-beat interval.
    Silent,
    /// Over the connection cap.
    Refused,
    /// The broker is stopping.
    ShuttingDown,
    /// An operator closed the connection through the admin API.
    ClosedByOperator,
    /// The login was refused; the client is not told why.
    AuthFailed,
    /// An OCI-strict listener refused what OCI Queue refuses; the text says what.
    OciStrict(String),
}

impl From<ProtoError> for ConnError {
    fn from(e: ProtoError) -> Self {
        ConnError::Proto(e)
    }
}

impl From<BrokerError> for ConnError {
    fn from(e: BrokerError) -> Self {
        ConnError::Broker(e)
    }
}

impl ConnError {
    /// The metric kind and the text every client and log sees.
    pub fn classify(&self) -> (ErrorKind, String) {
        match self {
            ConnError::Proto(e) if e.is_limit() => (ErrorKind::Limit, e.to_string()),
            ConnError::Proto(e) => (ErrorKind::Protocol, e.to_string()),
            ConnError::Broker(e) if e.is_storage() => (ErrorKind::Storage, e.to_string()),
            ConnError::Broker(e) if e.is_denied() => (ErrorKind::Denied, e.to_string()),
            ConnError::Broker(e) => (ErrorKind::Routing, e.to_string()),
            ConnError::NotConnect(c) => (
                ErrorKind::Protocol,
                format!("expected CONNECT or STOMP as the first frame, got {c}"),
            ),
            ConnError::AlreadyConnected => (ErrorKind::Protocol, "already connected".into()),
            ConnError::ConnectTimeout => (
                ErrorKind::Timeout,
                "no CONNECT frame within the connect timeout".into(),
            ),
            ConnError::Silent => (
                ErrorKind::Timeout,
                "no data or heart-beat from the client within 1.5x the agreed interval".into(),
            ),
            ConnError::Refused => (ErrorKind::Refused, "too many connections".into()),
            ConnError::ShuttingDown => (ErrorKind::Refused, "broker shutting down".into()),
            ConnError::ClosedByOperator => (
                ErrorKind::Refused,
                "connection closed by an operator".into(),
            ),
            // One message for an unknown user, a wrong password and a throttled address, so a
            // client learns nothing about which logins exist.
            ConnError::AuthFailed => (ErrorKind::Auth, "authentication failed".into()),
            ConnError::OciStrict(what) => (
                ErrorKind::Protocol,
                format!("OCI Queue refuses this: {what} (listener in OCI-strict mode)"),
            ),
        }
    }

    /// The ERROR frame for this cause, naming `receipt` if the offending frame asked for one.
    pub fn to_error_frame(&self, receipt: Option<&str>) -> (ErrorKind, Frame) {
        let (kind, message) = self.classify();
        (kind, error_frame(&message, receipt))
    }

    /// Shutdown is not a client's fault and is not counted as an error.
    pub fn counts_as_error(&self) -> bool {
        !matches!(self, ConnError::ShuttingDown | ConnError::ClosedByOperator)
    }
}

fn error_frame(message: &str, receipt: Option<&str>) -> Frame {
    let mut f = Frame::new(Command::Error)
        .header("message", message)
        .header("content-type", "text/plain");
    if let Some(r) = receipt {
        f = f.header("receipt-id", r);
    }
    f.body(format!(
        "{message}\n\nStampede closes the connection after an ERROR frame.\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_a_kind_and_a_message_naming_the_problem() {
        let cases = [
            (
                ConnError::Proto(ProtoError::FrameTooLarge { limit: 10 }),
                ErrorKind::Limit,
                "size limit",
            ),
            (
                ConnError::Proto(ProtoError::UnknownCommand("HELLO".into())),
                ErrorKind::Protocol,
                "HELLO",
            ),
            (
                ConnError::Broker(BrokerError::StorageFull("low".into())),
                ErrorKind::Storage,
                "nearly full",
            ),
            (
                ConnError::Broker(BrokerError::UnknownTransaction("t".into())),
                ErrorKind::Routing,
                "\"t\"",
            ),
            (ConnError::Silent, ErrorKind::Timeout, "heart-beat"),
            (ConnError::Refused, ErrorKind::Refused, "too many"),
            (
                ConnError::AuthFailed,
                ErrorKind::Auth,
                "authentication failed",
            ),
        ];
        for (e, kind, text) in cases {
            let (k, frame) = e.to_error_frame(Some("r-1"));
            assert_eq!(k, kind, "{e:?}");
            let message = frame.headers.get("message").unwrap();
            assert!(message.contains(text), "{message:?} for {e:?}");
            assert_eq!(frame.headers.get("receipt-id"), Some("r-1"));
        }
    }
}
