//! HTTP helpers for the broker's HTTP listener: a plain GET and a parsed `/metrics` scrape.

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Server, WAIT};

/// A plain HTTP/1.1 GET: (status, body).
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, &[], "").await
}

/// One HTTP/1.1 request with `headers` and a JSON body (none when empty): (status, body).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, body) = exchange(addr, method, path, headers, body).await;
    (status, body)
}

/// [`request`], with the response's header lines too (lower-cased names): (status, headers,
/// body).
pub async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect http");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut raw))
        .await
        .expect("http answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let fields = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, fields, decode_chunked(head, body))
}

fn decode_chunked(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// One sample: its labels and value.
type Sample = (HashMap<String, String>, f64);

/// Scraped samples by metric name.
pub struct Scrape(pub HashMap<String, Vec<Sample>>);

impl Scrape {
    pub async fn take(server: &Server) -> Scrape {
        let (status, body) = get(server.http_addr, "/metrics").await;
        assert_eq!(status, 200);
        let lines = body.lines().map(|l| Ok(l.to_owned()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
        let mut by_name: HashMap<String, Vec<Sample>> = HashMap::new();
        for s in parsed.samples {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => h.last().map_or(0.0, |b| b.count),
                prometheus_parse::Value::Summary(_) => continue,
            };
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            by_name.entry(s.metric).or_default().push((labels, value));
        }
        Scrape(by_name)
    }

    /// The value of `name` whose labels include every pair in `want`.
    pub fn value(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.0
            .get(name)
            .and_then(|samples| {
                samples.iter().find(|(labels, _)| {
                    want.iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
                })
            })
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no sample {name}{want:?}"))
    }
}
