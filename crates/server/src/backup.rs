//! Backups of a running broker and restores into an empty data directory.
//!
//! `GET /api/backup` on the HTTP listener answers with a snapshot file (`stampede_store::snapshot`):
//! everything stored at one instant between two commits — what a `kill -9` then would leave.
//! The store writes it to a local file while no commit is applied (producers' receipts wait that
//! long; nothing is refused), then the file is streamed to the client, so a slow client does not
//! hold the store. One backup at a time. In `auth.mode = "users"` it takes HTTP Basic credentials
//! of a user whose `admin` permission covers every destination (`*`, or no permissions table).
//!
//! The client side is here too, for `stampede backup` and `stampede restore`: [`download`] fetches
//! a backup into a file and checks it whole before naming it; [`snapshot_offline`] takes one from a
//! stopped broker's data directory; [`restore`] checks a file, then writes it into an empty one.

use std::io::{BufReader, BufWriter, Seek, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use stampede_store::snapshot::{self, Summary, Writer};
use stampede_store::{Store, StoreError};
use stampede_store_sled::{SledOptions, SledStore};
use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::info;

use crate::admin::Gate;
use crate::auth::{Authenticator, Mode};
use crate::config::{Backend, Settings};
use crate::http::HttpState;

/// Response headers that carry what the snapshot holds.
const QUEUES: &str = "x-stampede-snapshot-queues";
const MESSAGES: &str = "x-stampede-snapshot-messages";

/// What the backup route needs.
pub struct BackupState {
    http: Arc<HttpState>,
    gate: Gate,
    /// Where the snapshot is written before it is sent: the data directory for sled (the same
    /// disk, and a scratch image has no /tmp), the system's temp dir for an ephemeral broker.
    spool: PathBuf,
    /// Free space the spool must leave on its filesystem (twice `storage.min_free_space`): the
    /// backup gives up before the store could run short.
    reserve: u64,
    /// One backup at a time, from its request until its last byte is sent.
    running: Arc<Semaphore>,
}

impl BackupState {
    pub fn new(
        http: Arc<HttpState>,
        mode: Mode,
        authenticator: Arc<Authenticator>,
        spool: PathBuf,
        min_free_space: u64,
    ) -> BackupState {
        BackupState {
            http,
            gate: Gate {
                mode,
                authenticator,
            },
            spool,
            reserve: min_free_space.saturating_mul(2),
            running: Arc::new(Semaphore::new(1)),
        }
    }
}

pub fn router(state: Arc<BackupState>) -> Router {
    Router::new()
        .route("/api/backup", get(backup))
        .with_state(state)
}

use crate::admin::api_error as refuse;

async fn backup(
    State(s): State<Arc<BackupState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET {
        // axum answers HEAD with the GET handler; a snapshot taken to be thrown away is not one.
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "GET /api/backup",
        );
    }
    if let Err(refused) = s.gate.check(&headers, peer.ip(), "a backup").await {
        return refused;
    }
    let Some(broker) = s.http.broker().cloned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "NotReady",
            "the store is still being recovered",
        );
    };
    let Ok(permit) = s.running.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::CONFLICT,
            "BackupRunning",
            "a backup is already being taken",
        );
    };
    let (spool, reserve) = (s.spool.clone(), s.reserve);
    // The permit travels with the work: a client that hangs up does not free it while the
    // snapshot is still being written, nor before its file has been sent.
    let taken = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let taken = spool_snapshot(&spool, reserve, |sink| broker.snapshot(sink));
        taken.map(|(file, summary)| (file, summary, started.elapsed(), permit))
    })
    .await;
    let (file, summary, held, permit) = match taken {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let status = match e {
                StoreError::Failed(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            return refuse(
                status,
                "BackupFailed",
                format!("the snapshot could not be written: {e}"),
            );
        }
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "BackupFailed",
                format!("the snapshot task ended: {e}"),
            )
        }
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "BackupFailed",
                format!("the snapshot's spool file cannot be read: {e}"),
            )
        }
    };
    info!(
        queues = summary.queues,
        messages = summary.messages,
        bytes = len,
        held_ms = held.as_millis() as u64,
        "backup taken"
    );
    let stream =
        tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)).map(move |chunk| {
            let _sending = &permit;
            chunk
        });
    let mut response = Body::from_stream(stream).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"stampede.snapshot\""),
    );
    h.insert(QUEUES, HeaderValue::from(summary.queues));
    h.insert(MESSAGES, HeaderValue::from(summary.messages));
    response
}

/// Writes a snapshot into an unnamed file under `dir` (created, then unlinked at once, so nothing
/// is left behind whatever happens) and returns it rewound. It gives up when the filesystem would
/// be left with less than `reserve` bytes free, and then gives back what it wrote at once.
fn spool_snapshot(
    dir: &Path,
    reserve: u64,
    take: impl FnOnce(Box<dyn snapshot::Sink>) -> Result<Summary, StoreError>,
) -> Result<(std::fs::File, Summary), StoreError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SPOOLS: AtomicU64 = AtomicU64::new(0);
    let io = |context| move |e| StoreError::io(context, e);
    std::fs::create_dir_all(dir).map_err(io("creating the backup spool directory"))?;
    let n = SPOOLS.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".backup-{}-{n}.partial", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io("creating the backup spool file"))?;
    std::fs::remove_file(&path).map_err(io("unlinking the backup spool file"))?;
    let out = file
        .try_clone()
        .map_err(io("opening the backup spool file"))?;
    let writer = Writer::new(BufWriter::new(out))?;
    let guarded = SpaceGuard {
        inner: writer,
        dir: dir.to_owned(),
        reserve,
        since_check: 0,
    };
    match take(Box::new(guarded)) {
        Ok(summary) => {
            file.rewind()
                .map_err(io("rewinding the backup spool file"))?;
            Ok((file, summary))
        }
        Err(e) => {
            let _ = file.set_len(0);
            Err(e)
        }
    }
}

/// Passes entries on to the snapshot writer, checking every few MiB that the spool leaves the
/// filesystem its reserve.
struct SpaceGuard<W: Write + Send + 'static> {
    inner: Writer<W>,
    dir: PathBuf,
    reserve: u64,
    since_check: u64,
}

/// Bytes written between two looks at the free space.
const SPACE_CHECK: u64 = 8 << 20;

impl<W: Write + Send + 'static> snapshot::Sink for SpaceGuard<W> {
    fn entry(&mut self, entry: snapshot::Entry) -> Result<(), StoreError> {
        if let snapshot::Entry::Message { message, .. } = &entry {
            self.since_check += message.record.size() as u64;
        }
        if self.since_check >= SPACE_CHECK {
            self.since_check = 0;
            let free = crate::disk::free_bytes(&self.dir)
                .map_err(|e| StoreError::io("reading the spool's free space", e))?;
            if free < self.reserve + SPACE_CHECK {
                return Err(StoreError::io(
                    "spooling the backup",
                    std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        format!(
                            "{} would have less than twice storage.min_free_space free; \
                             stopped so the store keeps its room",
                            self.dir.display()
                        ),
                    ),
                ));
            }
        }
        self.inner.entry(entry)
    }

    fn finish(&mut self, summary: Summary) -> Result<(), StoreError> {
        self.inner.finish(summary)
    }
}

/// Why `stampede backup` or `stampede restore` failed.
#[derive(Debug, Error)]
pub enum BackupError {
    #[error("cannot reach the HTTP listener on {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the broker on {addr} refused the backup ({status}): {message}")]
    Refused {
        addr: SocketAddr,
        status: u16,
        message: String,
    },
    #[error("the backup from {addr} broke off: {reason}")]
    Transfer { addr: SocketAddr, reason: String },
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Snapshot { path: PathBuf, source: StoreError },
    #[error("storage.backend is \"memory\": such a broker keeps nothing on disk to back up or restore into")]
    Memory,
    #[error(
        "{path} is not empty: restore writes into a new or empty data directory only (move the \
         old one aside first)"
    )]
    NotEmpty { path: PathBuf },
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::File {
        path: path.to_owned(),
        source,
    }
}

fn snapshot_error(path: &Path) -> impl FnOnce(StoreError) -> BackupError + '_ {
    move |source| BackupError::Snapshot {
        path: path.to_owned(),
        source,
    }
}

/// The partial file a backup is written to before it is checked and renamed to `out`.
fn partial(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    out.with_file_name(name)
}

/// Checks `tmp` whole, makes it durable and renames it to `out`.
fn keep(tmp: &Path, out: &Path) -> Result<Summary, BackupError> {
    let file = std::fs::File::open(tmp).map_err(file_error(tmp))?;
    let summary = snapshot::verify(BufReader::new(&file)).map_err(snapshot_error(tmp))?;
    file.sync_all().map_err(file_error(tmp))?;
    std::fs::rename(tmp, out).map_err(file_error(out))?;
    sync_parent(out)?;
    Ok(summary)
}

/// Makes a rename in `path`'s directory durable.
fn sync_parent(path: &Path) -> Result<(), BackupError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(file_error(parent))
}

/// `stampede backup`: fetches `GET /api/backup` from `addr` into `out`. The file appears under
/// its name only once it has been checked whole.
pub fn download(
    addr: SocketAddr,
    credentials: Option<(&str, &str)>,
    out: &Path,
) -> Result<Summary, BackupError> {
    let transfer = |reason: String| BackupError::Transfer { addr, reason };
    let agent: ureq::Agent = crate::client::config()
        .timeout_connect(Some(Duration::from_secs(5)))
        // Generous: the broker answers once the snapshot is written, which takes a while for a
        // big store. The body then streams for as long as it takes.
        .timeout_recv_response(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut request = agent.get(format!("http://{addr}/api/backup"));
    if let Some((user, password)) = credentials {
        request = request.header("Authorization", crate::client::basic(user, password));
    }
    let mut answer = request.call().map_err(|e| match e {
        ureq::Error::Timeout(_) => transfer("no answer within 10 minutes".into()),
        e => BackupError::Connect {
            addr,
            source: e.into_io(),
        },
    })?;
    let status = answer.status().as_u16();
    if status != 200 {
        let body = answer
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(BackupError::Refused {
            addr,
            status,
            message,
        });
    }
    let length = answer
        .body()
        .content_length()
        .ok_or_else(|| transfer("the answer has no Content-Length".into()))?;
    let tmp = partial(out);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(file_error(&tmp))?;
        let mut body = answer.body_mut().as_reader();
        let copied = std::io::copy(&mut body, &mut file).map_err(|e| transfer(e.to_string()))?;
        if copied != length {
            return Err(transfer(format!("{copied} of {length} bytes arrived")));
        }
        drop(file);
        keep(&tmp, out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `stampede backup --offline`: a snapshot of a stopped broker's sled directory. sled's lock
/// refuses this while a broker runs on it (the error says so).
pub fn snapshot_offline(settings: &Settings, out: &Path) -> Result<Summary, BackupError> {
    let (data_dir, options) = sled_of(settings)?;
    if !data_dir.join("sled").exists() {
        return Err(BackupError::File {
            path: data_dir.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no Stampede store here"),
        });
    }
    // Opening runs sled's recovery, as a broker's start would; sweeping dropped queues is left
    // to the broker, so the backup changes no more than that.
    let options = SledOptions {
        sweep_keys: 0,
        ..options
    };
    let store = SledStore::open(data_dir, options).map_err(snapshot_error(data_dir))?;
    let tmp = partial(out);
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(file_error(&tmp))?;
        let writer = Writer::new(BufWriter::new(file)).map_err(snapshot_error(&tmp))?;
        store
            .snapshot(Box::new(writer))
            .map_err(snapshot_error(data_dir))?;
        keep(&tmp, out)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `stampede restore`: checks `file` whole, then writes it into `data_dir`, which must not exist
/// or be empty. It writes into a sibling directory first and renames it into place only once
/// everything is durable, so a failed restore leaves no directory a broker would start on.
/// Blocking reads inside: run it on a runtime of its own (the command line's).
pub async fn restore(file: &Path, settings: &Settings) -> Result<Summary, BackupError> {
    let (data_dir, options) = sled_of(settings)?;
    let open = || std::fs::File::open(file).map_err(file_error(file));
    snapshot::verify(BufReader::new(open()?)).map_err(snapshot_error(file))?;
    let existed = match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty {
                    path: data_dir.to_owned(),
                });
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(file_error(data_dir)(e)),
    };
    let mut name = data_dir.file_name().unwrap_or_default().to_owned();
    name.push(format!(".restoring-{}", std::process::id()));
    let staging = data_dir.with_file_name(name);
    let written = async {
        std::fs::create_dir_all(&staging).map_err(file_error(&staging))?;
        let store = SledStore::open(&staging, options).map_err(snapshot_error(&staging))?;
        let summary = snapshot::restore(BufReader::new(open()?), &store)
            .await
            .map_err(snapshot_error(&staging))?;
        // Dropping the store flushes it and releases its lock before the rename.
        drop(store);
        Ok::<_, BackupError>(summary)
    }
    .await;
    let summary = match written {
        Ok(summary) => summary,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    if existed {
        std::fs::remove_dir(data_dir).map_err(file_error(data_dir))?;
    }
    std::fs::rename(&staging, data_dir).map_err(file_error(data_dir))?;
    sync_parent(data_dir)?;
    Ok(summary)
}

/// The data directory and options of the configured sled store.
fn sled_of(settings: &Settings) -> Result<(&Path, SledOptions), BackupError> {
    match settings.storage.backend {
        Backend::Sled => Ok((
            &settings.storage.data_dir,
            crate::store::sled_options(settings),
        )),
        Backend::Memory => Err(BackupError::Memory),
    }
}

/// The address `stampede backup` asks when none is given: the configured HTTP listener, on
/// loopback when it listens on every address.
pub fn local(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}
