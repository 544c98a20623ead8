//! The admin API's client: one blocking request at a time, JSON in and out, and the three ways a
//! request fails as [`Exit`]: no admin API answered, the broker refused (its `{error, message}`),
//! or the command line was wrong.

use std::time::Duration;

use serde_json::Value;
use stampede_server::client::{self, basic};
use ureq::http::{Method, Request, Uri};

use super::{ApiArgs, Exit};

pub struct Api {
    agent: ureq::Agent,
    /// `--url` without a trailing slash.
    base: String,
    authorization: Option<String>,
}

impl Api {
    pub fn new(args: &ApiArgs) -> Result<Api, Exit> {
        let base = args.url.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|e| Exit::Usage(format!("--url {base}: {e}")))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(Exit::Usage(format!(
                "--url {base}: the admin API is plain HTTP on the HTTP listener, \
                 http://HOST:PORT"
            )));
        }
        let authorization = credentials(args)?.map(|(user, password)| basic(&user, &password));
        let agent = client::config()
            .timeout_connect(Some(Duration::from_secs(5)))
            // A purge or a redrive is answered once durable; a broker that takes this long is
            // stuck.
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(Api {
            agent,
            base,
            authorization,
        })
    }

    pub fn get(&self, path: &str) -> Result<Value, Exit> {
        self.call(Method::GET, path, None)
    }

    /// One request; the answer's JSON when the status is 2xx.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, Exit> {
        let unreachable = |reason: String| Exit::Unreachable {
            what: format!("the admin API at {}", self.base),
            reason,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(a) = &self.authorization {
            request = request.header("Authorization", a);
        }
        let sent = match body {
            Some(json) => {
                let bytes = serde_json::to_vec(json).expect("a JSON value serialises");
                let request = request
                    .header("Content-Type", "application/json")
                    .body(bytes)
                    .map_err(|e| Exit::Usage(e.to_string()))?;
                self.agent.run(request)
            }
            None => {
                let request = request.body(()).map_err(|e| Exit::Usage(e.to_string()))?;
                self.agent.run(request)
            }
        };
        let mut answer = sent.map_err(|e| unreachable(e.to_string()))?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .read_to_string()
            .map_err(|e| unreachable(e.to_string()))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return json.ok_or_else(|| {
                unreachable(format!(
                    "{status} without JSON: is this the broker's HTTP listener?"
                ))
            });
        }
        // Every admin API refusal is `{error, message}`; anything else answering is not it.
        match json {
            Some(v) if v["error"].is_string() => Err(Exit::Refused {
                status,
                error: v["error"].as_str().unwrap_or_default().to_owned(),
                message: v["message"].as_str().unwrap_or_default().to_owned(),
            }),
            _ => Err(unreachable(format!(
                "{status} without the admin API's {{error, message}}: is this the broker's \
                 HTTP listener, on a version with this route?"
            ))),
        }
    }

    /// `--url`'s host, for the STOMP listener beside it.
    pub fn host(&self) -> String {
        let uri: Uri = self.base.parse().expect("checked in new");
        uri.host().expect("checked in new").to_owned()
    }
}

/// `--user` and STAMPEDE_PASSWORD: a password is never a flag, where `ps` would show it.
pub fn credentials(args: &ApiArgs) -> Result<Option<(String, String)>, Exit> {
    let Some(user) = &args.user else {
        return Ok(None);
    };
    match std::env::var("STAMPEDE_PASSWORD") {
        Ok(password) => Ok(Some((user.clone(), password))),
        Err(_) => Err(Exit::Usage(format!(
            "--user {user} needs the password in STAMPEDE_PASSWORD"
        ))),
    }
}

/// `s` as one path segment or query value: everything but RFC 3986's unreserved characters
/// percent-encoded (queue names hold `/`, `+`, `&`, `%`).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of queue `name`, with `rest` after it.
pub fn queue_path(name: &str, rest: &str) -> String {
    format!("/api/queues/{}{rest}", enc(name))
}

#[cfg(test)]
mod tests {
    use super::enc;

    #[test]
    fn names_are_encoded_as_one_segment() {
        assert_eq!(enc("orders"), "orders");
        assert_eq!(enc("DLQ.a-b_c~"), "DLQ.a-b_c~");
        assert_eq!(enc("a/b c+&%"), "a%2Fb%20c%2B%26%25");
        assert_eq!(enc("ü"), "%C3%BC");
    }
}
