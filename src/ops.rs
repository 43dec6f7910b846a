//! The ops listener (SPEC §6): plain HTTP, no authentication — bind it to
//! loopback or a management network. `/healthz` answers while the process
//! serves; `/readyz` fails (503) when the store refuses writes (after a
//! failed commit, or its committer thread stopped), or while keygate
//! stops; `/metrics` is Prometheus text. No label holds a key or a
//! certificate field.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::api::App;
use crate::server::ListenerStats;

/// What the ops endpoints read.
pub struct Ops {
    /// The gateway's state.
    pub app: Arc<App>,
    /// The TLS listener's counters.
    pub listener: Arc<ListenerStats>,
    /// Set when keygate begins to stop.
    pub stopping: Arc<std::sync::atomic::AtomicBool>,
    /// (store index, keys at that index): counted again only once the
    /// store changed.
    pub keys: std::sync::Mutex<Option<(u64, u64)>>,
}

/// Keys (not directories, hidden ones included) in the published store,
/// counted off the async runtime (a walk of the whole tree) when the store
/// changed since the last count.
async fn keys_in_store(ops: &Arc<Ops>) -> Option<u64> {
    let snap: Arc<crate::store::Snapshot> = Arc::clone(&ops.app.store.snapshot());
    let cached = *ops.keys.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((index, keys)) = cached {
        if index == snap.index {
            return Some(keys);
        }
    }
    let index = snap.index;
    let keys = tokio::task::spawn_blocking(move || {
        let mut keys = 0u64;
        let mut stack = vec![snap.root.clone()];
        while let Some(node) = stack.pop() {
            match node.children() {
                Some(children) => stack.extend(children.iter().map(|(_, c)| c.clone())),
                None => keys += 1,
            }
        }
        keys
    })
    .await
    .ok()?;
    *ops.keys.lock().unwrap_or_else(|p| p.into_inner()) = Some((index, keys));
    Some(keys)
}

/// Serves the ops endpoints until the runtime stops.
pub async fn serve(listener: TcpListener, ops: Arc<Ops>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let ops = ops.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let ops = ops.clone();
                async move {
                    let keys = if req.uri().path() == "/metrics" {
                        keys_in_store(&ops).await
                    } else {
                        None
                    };
                    Ok::<_, Infallible>(answer(&ops, &req, keys))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    r
}

const PLAIN: &str = "text/plain; charset=utf-8";

fn answer<B>(ops: &Ops, req: &Request<B>, keys: Option<u64>) -> Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into(), PLAIN);
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into(), PLAIN),
        "/readyz" => match readiness(ops) {
            Ok(()) => {
                let last = ops.app.reloads.last_error.lock();
                let body = match &*last.unwrap_or_else(|p| p.into_inner()) {
                    Some(e) => format!("ready\nlast reload failed: {e}\n"),
                    None => "ready\n".into(),
                };
                text(StatusCode::OK, body, PLAIN)
            }
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                PLAIN,
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            metrics(ops, keys),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), PLAIN),
    }
}

fn readiness(ops: &Ops) -> Result<(), String> {
    if ops.stopping.load(Ordering::Relaxed) {
        return Err("shutting down".into());
    }
    if let Some(cause) = ops.app.store.failure() {
        return Err(if cause == crate::store::COMMITTER_GONE {
            format!("the store refuses writes: {cause}")
        } else {
            format!("the store refuses writes after a failed commit: {cause}")
        });
    }
    Ok(())
}

fn metrics(ops: &Ops, keys: Option<u64>) -> String {
    let store = &ops.app.store;
    let c = store.commit_stats();
    let mut out = String::with_capacity(2048);
    let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    metric(
        "keygate_store_index",
        "gauge",
        "The store's current index (X-Etcd-Index).",
        &[(String::new(), store.snapshot().index as f64)],
    );
    if let Some(keys) = keys {
        metric(
            "keygate_store_keys",
            "gauge",
            "Keys in the store (not directories; hidden keys included).",
            &[(String::new(), keys as f64)],
        );
    }
    metric(
        "keygate_store_failed",
        "gauge",
        "1 when the store refuses writes (after a failed commit, or its committer stopped).",
        &[(
            String::new(),
            f64::from(u8::from(store.failure().is_some())),
        )],
    );
    metric(
        "keygate_commits_total",
        "counter",
        "Durable commits (journal records made durable).",
        &[(String::new(), c.commits as f64)],
    );
    metric(
        "keygate_committed_mutations_total",
        "counter",
        "Mutations (writes and expiries) in durable commits; divided by keygate_commits_total, the writes per commit.",
        &[(String::new(), c.mutations as f64)],
    );
    metric(
        "keygate_commit_duration_seconds_sum",
        "counter",
        "Time spent in durable commits (the synchronous write); divided by keygate_commits_total, the mean commit latency.",
        &[(String::new(), c.micros as f64 / 1e6)],
    );
    metric(
        "keygate_watchers",
        "gauge",
        "Registered watches.",
        &[(String::new(), store.watcher_count() as f64)],
    );
    metric(
        "keygate_connections_open",
        "gauge",
        "Client connections past the TLS handshake or in it.",
        &[(
            String::new(),
            ops.listener.open.load(Ordering::Relaxed) as f64,
        )],
    );
    metric(
        "keygate_connections_refused_total",
        "counter",
        "Connections refused because max_connections was reached.",
        &[(
            String::new(),
            ops.listener.refused.load(Ordering::Relaxed) as f64,
        )],
    );
    let quotas = &ops.app.quotas;
    metric(
        "keygate_identity_limit_refusals_total",
        "counter",
        "Connections and watches refused by max_connections_per_identity and max_watches_per_identity (503).",
        &[
            (
                "{limit=\"connections\"}".into(),
                quotas.refused_connections.load(Ordering::Relaxed) as f64,
            ),
            (
                "{limit=\"watches\"}".into(),
                quotas.refused_watches.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    let by_reason: Vec<(String, f64)> = ops
        .listener
        .by_reason
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(r, v)| (format!("{{reason=\"{r}\"}}"), *v as f64))
        .collect();
    metric(
        "keygate_handshake_failures_total",
        "counter",
        "Failed or timed-out TLS handshakes, by reason.",
        &by_reason,
    );
    let names = crate::store::STAT_NAMES;
    let stats: Vec<(String, f64)> = names
        .iter()
        .zip(store.stats().values())
        .map(|(n, v)| (format!("{{op=\"{n}\"}}"), v as f64))
        .collect();
    metric(
        "keygate_store_operations_total",
        "counter",
        "etcd's store statistics (/v2/stats/store), by operation and outcome.",
        &stats,
    );
    ops.app.metrics.write(&mut out);
    let reloads = &ops.app.reloads;
    let failed = reloads
        .last_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    let _ = writeln!(
        out,
        "# HELP keygate_reloads_total Configuration reloads (SIGHUP), by result.\n\
         # TYPE keygate_reloads_total counter\n\
         keygate_reloads_total{{result=\"ok\"}} {}\n\
         keygate_reloads_total{{result=\"failed\"}} {}\n\
         # HELP keygate_last_reload_failed 1 when the last reload was refused (the configuration before it serves).\n\
         # TYPE keygate_last_reload_failed gauge\n\
         keygate_last_reload_failed {}",
        reloads.ok.load(Ordering::Relaxed),
        reloads.failed.load(Ordering::Relaxed),
        u8::from(failed)
    );
    let now = crate::store::now_nanos() / 1_000_000_000;
    let _ = writeln!(
        out,
        "# HELP keygate_certificate_expiry_seconds Seconds until a certificate expires (negative: expired): the server's chain (its earliest notAfter) and each client CA, numbered in the order of tls.client_ca.\n\
         # TYPE keygate_certificate_expiry_seconds gauge"
    );
    let live = ops.app.live.load();
    if let Some(t) = live.server_not_after {
        let _ = writeln!(
            out,
            "keygate_certificate_expiry_seconds{{cert=\"server\"}} {}",
            t - now
        );
    }
    for (i, ca) in live.client_cas.iter().enumerate() {
        if let Some(t) = crate::tls::not_after(ca) {
            let _ = writeln!(
                out,
                "keygate_certificate_expiry_seconds{{cert=\"client_ca\",index=\"{}\"}} {}",
                i + 1,
                t - now
            );
        }
    }
    if !live.crls.is_empty() {
        let _ = writeln!(
            out,
            "# HELP keygate_crl_age_seconds Seconds since each CRL's thisUpdate, numbered in the order of tls.crl (its files, then the CRLs in each).\n\
             # TYPE keygate_crl_age_seconds gauge"
        );
        for (i, (this_update, _)) in live.crls.iter().enumerate() {
            let _ = writeln!(
                out,
                "keygate_crl_age_seconds{{index=\"{}\"}} {}",
                i + 1,
                now - this_update
            );
        }
        let _ = writeln!(
            out,
            "# HELP keygate_crl_next_update_seconds Seconds until each CRL's nextUpdate (negative: past it; the CRL is still used), numbered as keygate_crl_age_seconds.\n\
             # TYPE keygate_crl_next_update_seconds gauge"
        );
        for (i, (_, next_update)) in live.crls.iter().enumerate() {
            if let Some(t) = next_update {
                let _ = writeln!(
                    out,
                    "keygate_crl_next_update_seconds{{index=\"{}\"}} {}",
                    i + 1,
                    t - now
                );
            }
        }
    }
    out
}
