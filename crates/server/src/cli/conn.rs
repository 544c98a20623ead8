//! `stampede conn …` (the connection routes) and `stampede send` (a test message through
//! `POST /api/messages`).

use std::io::Read;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use ureq::http::Method;

use super::api::{enc, Api};
use super::show::{self, cell, output, Table};
use super::Exit;

#[derive(Subcommand, Debug)]
pub enum ConnCmd {
    /// List client connections: peer, listener, user, version, subscriptions.
    Ls,
    /// Close a connection (the `ID` of `conn ls`, the CONNECTED frame's `session`): the client
    /// gets an ERROR saying an operator closed it.
    Kill { id: String },
}

pub fn run(api: &Api, json: bool, cmd: ConnCmd) -> anyhow::Result<()> {
    match cmd {
        ConnCmd::Ls => output(json, &api.get("/api/connections")?, print_connections),
        ConnCmd::Kill { id } => {
            let path = format!("/api/connections/{}", enc(&id));
            let answer = api.call(Method::DELETE, &path, None)?;
            output(json, &answer, |_| println!("closed connection {id}"));
        }
    }
    Ok(())
}

fn print_connections(answer: &Value) {
    let mut t = Table::new(&[
        ">ID",
        "PEER",
        "LISTENER",
        "TRANSPORT",
        "PRINCIPAL",
        "VERSION",
        "CLIENT-ID",
        ">AGE",
        "SUBSCRIPTIONS",
    ]);
    let text = |v: &Value| cell(v, |v| Some(v.as_str()?.to_owned()));
    for c in answer["connections"].as_array().into_iter().flatten() {
        let subs: Vec<String> = c["subscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                format!(
                    "{} ({})",
                    s["destination"].as_str().unwrap_or_default(),
                    s["ack"].as_str().unwrap_or_default()
                )
            })
            .collect();
        t.row(vec![
            cell(&c["id"], |v| {
                Some(v.as_u64().map_or(v.to_string(), |n| n.to_string()))
            }),
            text(&c["peer"]),
            text(&c["listener"]),
            text(&c["transport"]),
            text(&c["principal"]),
            text(&c["version"]),
            text(&c["client_id"]),
            cell(&c["connected_at_ms"], |v| Some(show::age(v.as_u64()?))),
            if subs.is_empty() {
                "-".to_owned()
            } else {
                subs.join(", ")
            },
        ]);
    }
    t.print();
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// `/queue/NAME`, `/topic/NAME` or a bare queue name.
    destination: String,
    /// The body (text); `-` reads it from stdin; none: an empty body.
    body: Option<String>,
    /// A header `NAME=VALUE` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = header)]
    headers: Vec<(String, String)>,
    /// Keep it in memory only (`persistent: false`), as a STOMP SEND could.
    #[arg(long)]
    non_persistent: bool,
}

fn header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not NAME=VALUE")),
    }
}

pub fn send(api: &Api, json: bool, args: SendArgs) -> anyhow::Result<()> {
    let body = match args.body.as_deref() {
        Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            // The route takes the body as a JSON string.
            String::from_utf8(bytes).map_err(|_| {
                Exit::Usage(
                    "send: the body on stdin is not UTF-8 text, which the route takes".into(),
                )
            })?
        }
        Some(text) => text.to_owned(),
        None => String::new(),
    };
    let headers: Map<String, Value> = args
        .headers
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let request = json!({
        "destination": args.destination,
        "body": body,
        "headers": headers,
        "persistent": !args.non_persistent,
    });
    let answer = api.call(Method::POST, "/api/messages", Some(&request))?;
    output(json, &answer, |a| {
        let to = a["destination"].as_str().unwrap_or(&args.destination);
        println!("sent {} to {to}", show::size(body.len() as u64));
    });
    Ok(())
}
