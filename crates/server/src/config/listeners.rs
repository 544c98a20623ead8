//! `[listeners.NAME]`: the sockets the broker serves. `http` is the HTTP port;
//! `rabbitmq_management` (off unless configured) serves RabbitMQ's management API; every other
//! table is a STOMP listener named by its key (the name labels its metrics and logs), plain TCP unless it
//! has a certificate (`cert` + `key`, or `self_signed = true`). `stomp` is always there (the
//! embedded defaults define it); `stomp_tls` defaults to port 61614 and must be TLS. Each STOMP
//! listener may override `auth.mode` (`auth`) and `passcode_encoding`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{invalid, socket_addr, ConfigError};
use crate::auth::{ListenerAuth, Mode, PasscodeEncoding};

/// The default cap on one STOMP listener's open connections.
const MAX_CONNECTIONS: usize = 50_000;

/// One `[listeners.X]` table as written: the HTTP listener takes only `bind`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSection {
    pub bind: Option<String>,
    pub max_connections: Option<usize>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub self_signed: bool,
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub cert_login: bool,
    pub auth: Option<Mode>,
    pub passcode_encoding: Option<PasscodeEncoding>,
    #[serde(default)]
    pub oci_strict: bool,
}

impl ListenerSection {
    /// Whether only `bind` is set, as the HTTP listener requires. Destructured, so a new key
    /// cannot be forgotten here.
    fn only_bind(&self) -> bool {
        let ListenerSection {
            bind: _,
            max_connections,
            cert,
            key,
            self_signed,
            client_ca,
            cert_login,
            auth,
            passcode_encoding,
            oci_strict,
        } = self;
        max_connections.is_none()
            && cert.is_none()
            && key.is_none()
            && client_ca.is_none()
            && auth.is_none()
            && passcode_encoding.is_none()
            && !(*self_signed || *cert_login || *oci_strict)
    }
}

/// A STOMP listener, validated.
#[derive(Debug, Clone)]
pub struct StompSpec {
    pub name: String,
    pub addr: SocketAddr,
    pub max_connections: usize,
    pub tls: Option<TlsSpec>,
    pub auth: ListenerAuth,
    pub oci_strict: bool,
}

/// Where a TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Made at start (kept under the data directory and reused after).
    SelfSigned,
}

#[derive(Debug, Clone)]
pub struct TlsSpec {
    pub source: CertSource,
    /// Mutual TLS: clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: the certificate's common name is the login, and no passcode is checked.
    pub cert_login: bool,
}

/// The table of the RabbitMQ management listener, which is no STOMP listener.
pub const RABBITMQ_MANAGEMENT: &str = "rabbitmq_management";

/// Every listener's address, validated.
#[derive(Debug)]
pub struct Addresses {
    pub http: SocketAddr,
    /// RabbitMQ's management API; `None` unless `[listeners.rabbitmq_management]` has a `bind`.
    pub rabbitmq_management: Option<SocketAddr>,
    /// `stomp` first.
    pub stomp: Vec<StompSpec>,
}

/// The addresses of every listener the sections name.
pub fn listeners(sections: &BTreeMap<String, ListenerSection>) -> Result<Addresses, ConfigError> {
    let rabbitmq_management = match sections.get(RABBITMQ_MANAGEMENT) {
        None => None,
        Some(s) if !s.only_bind() => {
            return Err(invalid(
                format!("listeners.{RABBITMQ_MANAGEMENT}"),
                "the RabbitMQ management listener takes only `bind`",
            ))
        }
        Some(s) => {
            let key = format!("listeners.{RABBITMQ_MANAGEMENT}.bind");
            let Some(bind) = &s.bind else {
                return Err(invalid(key, "is required, such as 127.0.0.1:15672"));
            };
            Some(socket_addr(key, bind, "127.0.0.1:15672")?)
        }
    };
    let http = sections.get("http").cloned().unwrap_or_default();
    let ListenerSection {
        bind: Some(bind), ..
    } = &http
    else {
        return Err(invalid(
            "listeners.http.bind",
            "is required, such as 0.0.0.0:8161",
        ));
    };
    if !http.only_bind() {
        return Err(invalid(
            "listeners.http",
            "the HTTP listener takes only `bind` (TLS and auth settings belong to STOMP listeners)",
        ));
    }
    let http_addr = socket_addr("listeners.http.bind", bind, "0.0.0.0:8161")?;
    let mut stomp = Vec::new();
    let stomp_tables = sections
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "http" | RABBITMQ_MANAGEMENT));
    for (name, s) in stomp_tables {
        stomp.push(stomp_spec(name, s)?);
    }
    stomp.sort_by_key(|s| s.name != "stomp");
    let mut seen = BTreeMap::new();
    for s in &stomp {
        if let Some(other) = seen.insert(s.addr, &s.name).filter(|_| s.addr.port() != 0) {
            return Err(invalid(
                format!("listeners.{}.bind", s.name),
                format!("{} is also listeners.{other}.bind", s.addr),
            ));
        }
    }
    Ok(Addresses {
        http: http_addr,
        rabbitmq_management,
        stomp,
    })
}

fn stomp_spec(name: &str, s: &ListenerSection) -> Result<StompSpec, ConfigError> {
    let key = |k: &str| format!("listeners.{name}.{k}");
    let bind = match (&s.bind, name) {
        (Some(b), _) => b.clone(),
        (None, "stomp_tls") => "0.0.0.0:61614".to_owned(),
        (None, _) => return Err(invalid(key("bind"), "is required, such as 0.0.0.0:61613")),
    };
    let addr = socket_addr(key("bind"), &bind, "0.0.0.0:61614")?;
    let max_connections = s.max_connections.unwrap_or(MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(invalid(key("max_connections"), "must be at least 1"));
    }
    let source = match (&s.cert, &s.key, s.self_signed) {
        (Some(cert), Some(key), false) => Some(CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        (None, None, true) => Some(CertSource::SelfSigned),
        (None, None, false) => None,
        (_, _, true) => return Err(invalid(
            key("self_signed"),
            "self_signed = true makes its own certificate: remove cert and key, or set it false",
        )),
        _ => {
            return Err(invalid(
                key("cert"),
                "a TLS listener needs both `cert` and `key` (PEM files)",
            ))
        }
    };
    if source.is_none() && name == "stomp_tls" {
        return Err(invalid(
            key("cert"),
            "listeners.stomp_tls needs `cert` and `key` (PEM files) or `self_signed = true`",
        ));
    }
    if source.is_none() && (s.client_ca.is_some() || s.cert_login) {
        return Err(invalid(
            key("client_ca"),
            "client certificates need a TLS listener: give it `cert` and `key` or `self_signed`",
        ));
    }
    if s.cert_login && s.client_ca.is_none() {
        return Err(invalid(
            key("cert_login"),
            "takes the login from a client certificate, so it needs `client_ca`",
        ));
    }
    Ok(StompSpec {
        name: name.to_owned(),
        addr,
        max_connections,
        tls: source.map(|source| TlsSpec {
            source,
            client_ca: s.client_ca.clone(),
            cert_login: s.cert_login,
        }),
        auth: ListenerAuth {
            mode: s.auth,
            passcode_encoding: s.passcode_encoding,
        },
        oci_strict: s.oci_strict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(f: impl FnOnce(&mut ListenerSection)) -> ListenerSection {
        let mut s = ListenerSection::default();
        f(&mut s);
        s
    }

    /// The sections of the embedded defaults: the HTTP and the plain STOMP listener.
    fn defaults() -> BTreeMap<String, ListenerSection> {
        let mut m = BTreeMap::new();
        m.insert(
            "http".into(),
            section(|s| s.bind = Some("0.0.0.0:8161".into())),
        );
        m.insert(
            "stomp".into(),
            section(|s| s.bind = Some("0.0.0.0:61613".into())),
        );
        m
    }

    fn parse(extra: &[(&str, ListenerSection)]) -> Result<Vec<StompSpec>, String> {
        let mut m = defaults();
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        listeners(&m).map(|a| a.stomp).map_err(|e| e.to_string())
    }

    #[test]
    fn stomp_comes_first_and_stomp_tls_defaults_to_61614() {
        let l = parse(&[
            ("alpha", section(|s| s.bind = Some("127.0.0.1:7000".into()))),
            ("stomp_tls", section(|s| s.self_signed = true)),
        ])
        .unwrap();
        let names: Vec<_> = l.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["stomp", "alpha", "stomp_tls"]);
        assert_eq!(l[2].addr.port(), 61614);
        assert_eq!(l[2].tls.as_ref().unwrap().source, CertSource::SelfSigned);
        assert!(l[1].tls.is_none());
    }

    #[test]
    fn the_rabbitmq_management_listener_is_off_unless_bound_and_is_no_stomp_listener() {
        let mut m = defaults();
        assert_eq!(listeners(&m).unwrap().rabbitmq_management, None);
        m.insert(
            RABBITMQ_MANAGEMENT.into(),
            section(|s| s.bind = Some("127.0.0.1:15672".into())),
        );
        let a = listeners(&m).unwrap();
        assert_eq!(
            a.rabbitmq_management,
            Some("127.0.0.1:15672".parse().unwrap())
        );
        assert_eq!(a.stomp.len(), 1);
        for wrong in [
            section(|_| {}),
            section(|s| {
                s.bind = Some("127.0.0.1:15672".into());
                s.self_signed = true;
            }),
        ] {
            m.insert(RABBITMQ_MANAGEMENT.into(), wrong);
            let e = listeners(&m).unwrap_err().to_string();
            assert!(e.contains("listeners.rabbitmq_management"), "{e}");
        }
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            ("stomp_tls", section(|_| {}), "listeners.stomp_tls.cert"),
            (
                "oci",
                section(|s| s.cert = Some("c.pem".into())),
                "listeners.oci.bind",
            ),
            (
                "oci",
                section(|s| {
                    s.bind = Some("0.0.0.0:1".into());
                    s.cert = Some("c.pem".into());
                }),
                "listeners.oci.cert",
            ),
            (
                "oci",
                section(|s| {
                    s.bind = Some("0.0.0.0:1".into());
                    s.self_signed = true;
                    s.cert_login = true;
                }),
                "listeners.oci.cert_login",
            ),
            (
                "again",
                section(|s| s.bind = Some("0.0.0.0:61613".into())),
                "listeners.stomp.bind",
            ),
        ];
        for (name, s, key) in cases {
            let e = parse(&[(name, s)]).unwrap_err();
            assert!(e.contains(key), "{key} not in {e}");
        }
    }
}
