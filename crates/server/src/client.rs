//! The HTTP client of the binary's own commands — `stampede health`, `stampede backup` and the
//! admin command line — so they ask the HTTP listener one way: ureq, blocking, plain HTTP as the
//! listener serves it, every status an answer (the caller reads refusals' `{error, message}`).

use base64::Engine;

/// The settings every command shares; each adds its own timeouts and builds.
pub fn config() -> ureq::config::ConfigBuilder<ureq::typestate::AgentScope> {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // The broker is named on the command line or in the configuration; an HTTP_PROXY meant
        // for the internet must not stand between an operator and it.
        .proxy(None)
}

/// An `Authorization` value for HTTP Basic.
pub fn basic(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}
