//! The HTTP server thread: a single-threaded tokio runtime running its own
//! accept loop on hyper, because axum's `serve` has neither a header-read
//! timeout nor a connection cap, and a handful of silent clients could
//! hold the server forever. On shutdown it stops accepting, lets every
//! connection finish the request it is serving (idle keep-alive ones close
//! at once), and waits for them up to [`DRAIN_MS_MAX`].

use crate::control::Handle;
use crate::shutdown::Shutdown;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Longest the server waits at shutdown for requests in progress.
pub const DRAIN_MS_MAX: u64 = 10_000;

/// What one client may hold of the HTTP server.
struct ConnectionLimits {
    header_read_timeout: Duration,
    connections_max: usize,
}

/// Accepts connections until `stop`: at most `connections_max` open (one
/// more is closed at once), each closed when a request's headers (or the
/// next request on a kept-alive connection) do not arrive within
/// `header_read_timeout`. Then drains (see the module doc).
async fn serve_connections(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: &ConnectionLimits,
    stop: &Shutdown,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let open = Arc::new(tokio::sync::Semaphore::new(limits.connections_max));
    let (draining_tx, draining) = tokio::sync::watch::channel(false);
    let stopped = async {
        while !stop.is_triggered() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::pin!(stopped);
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off, go on.
                    tracing::warn!("api: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(
                connections_max = limits.connections_max,
                "api: connection refused, too many open"
            );
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout);
        let mut draining = draining.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                _ = draining.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!("api: connection ended: {e}");
            }
        });
    }
    drop(listener);
    let _ = draining_tx.send(true);
    let all = u32::try_from(limits.connections_max).unwrap_or(u32::MAX);
    let drained =
        tokio::time::timeout(Duration::from_millis(DRAIN_MS_MAX), open.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!(
            waited_ms = DRAIN_MS_MAX,
            "api: requests still in progress at shutdown were cut off"
        );
    }
}

/// Starts the HTTP API on `config.listen` in a thread of its own (a
/// single-threaded tokio runtime) and returns the bound address. It stops
/// when `stop` is triggered, after draining.
pub fn serve_api(
    config: &crate::config::ApiConfig,
    policy_file: Option<PathBuf>,
    handle: Handle,
    stop: Shutdown,
) -> std::io::Result<(std::net::SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind(&config.listen)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let router = crate::api::router(handle, config.clone(), policy_file);
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        connections_max: config.connections_max,
    };
    let thread = std::thread::Builder::new()
        .name("leadflow-api".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("api: {e}");
                        return;
                    }
                };
                serve_connections(listener, router, &limits, &stop).await;
            });
            // Dropping the runtime waits for blocking work (HTTP ingest,
            // replays) to end, so no handle outlives this thread.
            drop(runtime);
        })?;
    Ok((addr, thread))
}
