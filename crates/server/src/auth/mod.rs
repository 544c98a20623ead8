//! Who a connection is. [`Authenticator`] turns a CONNECT's `login` and `passcode` into a
//! [`Principal`] or a refusal: in `auth.mode = "open"` anyone is whom they say; in `"users"` the
//! login must name a configured user whose argon2id hash the passcode (decoded per
//! `passcode_encoding`) matches. Unknown users and wrong passwords are refused alike and take the
//! same time, password checks run on blocking threads (a few at a time, so a flood cannot take the
//! CPU or the memory argon2 needs), and [`limiter`] slows repeated failures from one address.

mod limiter;
mod password;
mod permissions;

pub use password::{check_hash, hash_password, verify_password, AuthError};
use password::{cost_of, decoy_hash};
pub use permissions::{canonical, canonical_pattern, Access, Permissions};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use stampede_broker::Principal;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use limiter::Limiter;

/// `auth.mode` (and a listener's `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Any login and passcode (development).
    Open,
    /// Configured users with argon2id password hashes.
    Users,
}

/// How a passcode arrives: as the password itself, or base64-encoded as OCI Queue's STOMP
/// endpoint expects (`base64(auth token)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasscodeEncoding {
    Plain,
    Base64,
}

/// A configured user.
#[derive(Debug, Clone)]
pub struct User {
    /// A PHC string, checked at start-up.
    pub password_hash: Arc<str>,
    /// Overrides the listener's and `auth.passcode_encoding`.
    pub passcode_encoding: Option<PasscodeEncoding>,
    pub permissions: Arc<Permissions>,
}

/// Who a connection is and what it may do.
#[derive(Debug, Clone)]
pub struct Identity {
    pub principal: Principal,
    pub permissions: Arc<Permissions>,
}

impl Identity {
    fn open(name: Option<&str>) -> Identity {
        static ALL: OnceLock<Arc<Permissions>> = OnceLock::new();
        Identity {
            principal: name.map_or_else(Principal::anonymous, Principal::new),
            permissions: ALL.get_or_init(|| Arc::new(Permissions::all())).clone(),
        }
    }

    fn user(name: &str, user: &User) -> Identity {
        Identity {
            principal: Principal::new(name),
            permissions: user.permissions.clone(),
        }
    }
}

/// The authentication settings, validated.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: Mode,
    pub users: HashMap<String, User>,
    /// A CONNECT without a login acts as this user.
    pub anonymous_user: Option<String>,
    pub passcode_encoding: PasscodeEncoding,
    pub failed_login_burst: u32,
    pub failed_login_interval: Duration,
}

/// What a listener may override.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListenerAuth {
    pub mode: Option<Mode>,
    pub passcode_encoding: Option<PasscodeEncoding>,
}

/// What a client presents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// CONNECT's `login` and `passcode`.
    pub login: Option<&'a str>,
    pub passcode: Option<&'a str>,
    /// The common name of a verified client certificate, on a listener with `cert_login`: it is
    /// the login when CONNECT names none, and no passcode is asked (RabbitMQ's ssl_cert_login).
    pub cert_login: Option<&'a str>,
}

/// The user and password of an HTTP `Authorization: Basic` value (`rest` follows `Basic `).
pub fn basic_credentials(rest: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Why a login was refused; the client hears "authentication failed" either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such user, a wrong password or a passcode that does not decode.
    Credentials,
    /// Too many failures from the address: no check could start before the connect deadline.
    Throttled,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Credentials => "credentials",
            Refusal::Throttled => "throttled",
        }
    }
}

pub struct Authenticator {
    settings: AuthSettings,
    limiter: Limiter,
    /// Password checks at once: each takes argon2's memory (19 MiB) and a core for tens of ms;
    /// half the cores, so a flood of logins leaves the others to message traffic.
    checks: Arc<Semaphore>,
    /// What unknown users are checked against: made (once, on a blocking thread) with the highest
    /// cost among the configured users, so that no refusal is quicker than a known user's.
    decoy: Arc<OnceLock<Arc<str>>>,
    decoy_cost: argon2::Params,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.settings.mode)
            .field("users", &self.settings.users.len())
            .finish()
    }
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Authenticator {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let costs: Vec<argon2::Params> = settings
            .users
            .values()
            .filter_map(|u| cost_of(&u.password_hash))
            .collect();
        let highest =
            |f: fn(&argon2::Params) -> u32, default| costs.iter().map(f).max().unwrap_or(default);
        let d = argon2::Params::default();
        let decoy_cost = argon2::Params::new(
            highest(argon2::Params::m_cost, d.m_cost()),
            highest(argon2::Params::t_cost, d.t_cost()),
            highest(argon2::Params::p_cost, d.p_cost()),
            None,
        )
        .unwrap_or(d);
        Authenticator {
            limiter: Limiter::new(settings.failed_login_burst, settings.failed_login_interval),
            checks: Arc::new(Semaphore::new((cores / 2).max(1))),
            decoy: Arc::new(OnceLock::new()),
            decoy_cost,
            settings,
        }
    }

    /// Who an open-mode client is that calls itself `name`.
    pub fn open_identity(name: Option<&str>) -> Identity {
        Identity::open(name)
    }

    /// Configured user `name`, authenticated by other means than a password (an OCI request
    /// signature made with one of the user's keys).
    pub fn user_identity(&self, name: &str) -> Option<Identity> {
        self.settings
            .users
            .get_key_value(name)
            .map(|(n, u)| Identity::user(n, u))
    }

    /// Checks the HTTP Basic credentials of a configured user; the password is sent as it is (no
    /// passcode encoding). The same limiter and rationed checks as a
    /// CONNECT apply; `deadline` bounds the wait for them.
    pub async fn login_basic(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
        deadline: Instant,
    ) -> Result<Identity, Refusal> {
        // An empty name would be no login, which a CONNECT may turn into `anonymous_user`; HTTP
        // credentials always name someone.
        if user.is_empty() {
            return Err(Refusal::Credentials);
        }
        let credentials = Credentials {
            login: Some(user),
            passcode: Some(password),
            cert_login: None,
        };
        let plain = ListenerAuth {
            mode: Some(Mode::Users),
            passcode_encoding: Some(PasscodeEncoding::Plain),
        };
        self.login(credentials, peer, plain, deadline).await
    }

    /// Decides who a CONNECT is. `deadline` is the connection's connect deadline: a login that
    /// cannot be checked before it is refused as throttled.
    pub async fn login(
        &self,
        credentials: Credentials<'_>,
        peer: IpAddr,
        listener: ListenerAuth,
        deadline: Instant,
    ) -> Result<Identity, Refusal> {
        let Credentials {
            login,
            passcode,
            cert_login,
        } = credentials;
        let login = login.filter(|l| !l.is_empty());
        let open = listener.mode.unwrap_or(self.settings.mode) == Mode::Open;
        let users = &self.settings.users;
        if let (None, Some(cn)) = (login, cert_login) {
            // The certificate was verified against client_ca during the handshake.
            return match (open, users.get(cn)) {
                (true, _) => Ok(Identity::open(Some(cn))),
                (false, Some(user)) => Ok(Identity::user(cn, user)),
                (false, None) => Err(Refusal::Credentials),
            };
        }
        if open {
            return Ok(Identity::open(login));
        }
        let Some(login) = login else {
            let anonymous = self.settings.anonymous_user.as_deref();
            return match anonymous.and_then(|n| users.get_key_value(n)) {
                Some((name, user)) => Ok(Identity::user(name, user)),
                None => Err(Refusal::Credentials),
            };
        };
        let attempt = self
            .limiter
            .acquire(peer, deadline)
            .await
            .map_err(|_| Refusal::Throttled)?;
        let user = self.settings.users.get(login);
        let encoding = user
            .and_then(|u| u.passcode_encoding)
            .or(listener.passcode_encoding)
            .unwrap_or(self.settings.passcode_encoding);
        let password = decode(passcode.unwrap_or_default(), encoding);
        // An unknown user or an undecodable passcode is still checked, against a decoy that
        // matches nothing, so a refusal takes as long whichever part was wrong.
        let hash = match (user, &password) {
            (Some(u), Some(_)) => Some(u.password_hash.clone()),
            _ => None,
        };
        let bytes = password.clone().unwrap_or_default();
        let checks = self.checks.clone().acquire_owned();
        let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, checks).await else {
            return Err(Refusal::Throttled);
        };
        let (decoy, cost) = (self.decoy.clone(), self.decoy_cost.clone());
        // The permit goes with the check: a login abandoned meanwhile (shutdown) does not free
        // its place while the check still runs.
        let matched = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let hash =
                hash.unwrap_or_else(|| decoy.get_or_init(|| Arc::from(decoy_hash(cost))).clone());
            verify_password(&hash, &bytes).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        match user.filter(|_| matched && password.is_some()) {
            Some(user) => {
                drop(attempt);
                Ok(Identity::user(login, user))
            }
            None => {
                attempt.failed();
                Err(Refusal::Credentials)
            }
        }
    }
}

fn decode(passcode: &str, encoding: PasscodeEncoding) -> Option<Vec<u8>> {
    match encoding {
        PasscodeEncoding::Plain => Some(passcode.as_bytes().to_vec()),
        PasscodeEncoding::Base64 => {
            let e = &base64::engine::general_purpose::STANDARD;
            let unpadded = &base64::engine::general_purpose::STANDARD_NO_PAD;
            e.decode(passcode)
                .or_else(|_| unpadded.decode(passcode))
                .ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users_mode() -> Authenticator {
        let user = |password: &str, encoding| User {
            password_hash: Arc::from(hash_password(password).unwrap()),
            passcode_encoding: encoding,
            permissions: Arc::new(Permissions::all()),
        };
        let mut users = HashMap::new();
        users.insert("guest".to_owned(), user("guest", None));
        users.insert(
            "tenancy/oci-user".to_owned(),
            user("token", Some(PasscodeEncoding::Base64)),
        );
        Authenticator::new(AuthSettings {
            mode: Mode::Users,
            users,
            anonymous_user: Some("guest".into()),
            passcode_encoding: PasscodeEncoding::Plain,
            failed_login_burst: 100,
            failed_login_interval: Duration::from_secs(1),
        })
    }

    async fn try_login(a: &Authenticator, login: &str, passcode: &str) -> Result<String, Refusal> {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = Credentials {
            login: Some(login),
            passcode: Some(passcode),
            cert_login: None,
        };
        a.login(c, ip, ListenerAuth::default(), deadline)
            .await
            .map(|id| id.principal.name().to_owned())
    }

    #[tokio::test]
    async fn users_mode_checks_passwords_and_decodes_base64_per_user() {
        let a = users_mode();
        assert_eq!(
            try_login(&a, "guest", "guest").await.as_deref(),
            Ok("guest")
        );
        assert_eq!(
            try_login(&a, "guest", "wrong").await,
            Err(Refusal::Credentials)
        );
        assert_eq!(
            try_login(&a, "nobody", "guest").await,
            Err(Refusal::Credentials)
        );
        // base64("token") = "dG9rZW4="; the raw token is refused for a base64 user.
        assert_eq!(
            try_login(&a, "tenancy/oci-user", "dG9rZW4=")
                .await
                .as_deref(),
            Ok("tenancy/oci-user")
        );
        assert!(try_login(&a, "tenancy/oci-user", "dG9rZW4").await.is_ok());
        assert_eq!(
            try_login(&a, "tenancy/oci-user", "token").await,
            Err(Refusal::Credentials)
        );
        // No login: the anonymous user.
        let ip = IpAddr::from([127, 0, 0, 1]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let anon = a.login(
            Credentials::default(),
            ip,
            ListenerAuth::default(),
            deadline,
        );
        assert_eq!(anon.await.unwrap().principal.name(), "guest");
    }

    #[tokio::test]
    async fn a_listener_in_open_mode_accepts_anyone() {
        let a = users_mode();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let open = ListenerAuth {
            mode: Some(Mode::Open),
            passcode_encoding: None,
        };
        let c = Credentials {
            login: Some("x"),
            passcode: Some("y"),
            cert_login: None,
        };
        let id = a.login(c, ip, open, deadline).await.unwrap();
        assert_eq!(id.principal.name(), "x");
        // A certificate's name stands in for a missing login, if that user exists.
        let cert = |cn| Credentials {
            cert_login: Some(cn),
            ..Credentials::default()
        };
        let users = ListenerAuth::default();
        let p = a.login(cert("guest"), ip, users, deadline).await;
        assert_eq!(p.unwrap().principal.name(), "guest");
        let p = a.login(cert("mallory"), ip, users, deadline).await;
        assert_eq!(p.err(), Some(Refusal::Credentials));
    }
}
