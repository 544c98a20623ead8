//! Who an OCI request is, decided before any handler runs. In `auth.mode = "open"` anyone is
//! whom they say (an SDK's signature is not checked: it is made with a throwaway key). In
//! `"users"` a request must carry either an OCI API-key signature (`Authorization: Signature`,
//! as the SDKs and CLI sign) made with a key configured for a user, or HTTP Basic credentials
//! of a user (a static token for scripts and `curl`). The body is read here, since a signature
//! covers its digest, and handed on to the handler unchanged.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::{signature, ApiError, Oci};
use crate::auth::{Authenticator, Identity, Mode};

/// How long a Basic login may wait for a password check (they are rationed, see `auth`).
const CHECK_DEADLINE: Duration = Duration::from_secs(10);
/// Checked credentials remembered at most; beyond, the memory starts over.
const REMEMBERED: usize = 1024;

/// Basic credentials that matched, by a digest of user and password.
#[derive(Default)]
pub(super) struct CheckedCredentials(Mutex<HashMap<[u8; 32], Identity>>);

impl CheckedCredentials {
    fn key(user: &str, password: &str) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(user.as_bytes());
        ctx.update(b"\0");
        ctx.update(password.as_bytes());
        let mut key = [0; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }

    fn get(&self, key: &[u8; 32]) -> Option<Identity> {
        self.0.lock().get(key).cloned()
    }

    fn remember(&self, key: [u8; 32], who: Identity) {
        let mut map = self.0.lock();
        if map.len() >= REMEMBERED {
            map.clear();
        }
        map.insert(key, who);
    }
}

/// The middleware: reads the body, decides who sent it, and passes both on.
pub(super) async fn identify(State(s): Oci, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let settings = &s.settings;
    // JSON may escape each byte of content as six (`\u0000`).
    let limit = settings.max_messages * settings.max_message_size * 6 + 64 * 1024;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        // Refused before a byte of it is read.
        return ApiError::limit(format!("a request body is at most {limit} bytes")).into_response();
    }
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::limit(format!("a request body is at most {limit} bytes"))
                .into_response()
        }
    };
    let who = match s.mode {
        Mode::Open => Ok(Authenticator::open_identity(claimed_user(&parts.headers))),
        Mode::Users => {
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
            authenticate(&s, &parts, &body, peer).await
        }
    };
    match who {
        Ok(who) => {
            parts.extensions.insert(who);
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Err(e) => e.into_response(),
    }
}

/// The user OCID of a signature's `keyId` (`<tenancy>/<user>/<fingerprint>`), as an open-mode
/// name for logs and the console.
fn claimed_user(headers: &axum::http::HeaderMap) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let key_id = auth.split("keyId=\"").nth(1)?.split('"').next()?;
    key_id.split('/').nth(1).filter(|u| !u.is_empty())
}

async fn authenticate(
    s: &super::OciState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    peer: IpAddr,
) -> Result<Identity, ApiError> {
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
    if scheme.eq_ignore_ascii_case("signature") {
        let lookup = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let target = parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |pq| pq.as_str());
        let request = signature::Request {
            method: parts.method.as_str(),
            target,
            headers: &lookup,
            body,
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let keys = &s.settings.keys;
        let key_id = signature::verify(
            &request,
            |id| keys.get(id).map(|(_, key)| key),
            now,
            s.settings.clock_skew.as_secs(),
        )
        .map_err(|e| ApiError::unauthenticated(e.to_string()))?;
        let user = keys.get(&key_id).map(|(user, _)| user.as_str());
        return user
            .and_then(|u| s.authenticator.user_identity(u))
            .ok_or_else(|| ApiError::unauthenticated("the signing key's user is not configured"));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let refused = || ApiError::unauthenticated("wrong user name or password");
        let (user, password) = crate::auth::basic_credentials(rest).ok_or_else(refused)?;
        let key = CheckedCredentials::key(&user, &password);
        if let Some(who) = s.checked.get(&key) {
            return Ok(who);
        }
        let deadline = tokio::time::Instant::now() + CHECK_DEADLINE;
        let who = s
            .authenticator
            .login_basic(&user, &password, peer, deadline)
            .await
            .map_err(|_| refused())?;
        s.checked.remember(key, who.clone());
        return Ok(who);
    }
    Err(ApiError::unauthenticated(
        "this broker authenticates OCI requests: sign them with an API key configured for a \
         user (auth.users.NAME.oci_api_keys), or send HTTP Basic credentials of a user",
    ))
}
