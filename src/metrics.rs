//! Request metrics (SPEC §6): requests by method, decision and status, and
//! a latency histogram by method, kept in fixed arrays of counters (no
//! lock, no allocation per request) and written as Prometheus text by the
//! ops listener. Labels are from fixed sets: never a key or a certificate
//! field.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::{Method, StatusCode};

const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "POST", "DELETE", "other"];

/// What access control decided for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decided {
    /// Allowed by the policy.
    Allow,
    /// Denied by the policy (403).
    Deny,
    /// Not a keys request, or refused before a decision (a malformed
    /// request, a redirect).
    None,
}

const DECISIONS: [&str; 3] = ["allow", "deny", "none"];

/// The statuses keygate answers with; any other is counted as "other".
const STATUSES: [u16; 19] = [
    200, 201, 204, 301, 307, 400, 401, 403, 404, 405, 412, 413, 415, 417, 431, 499, 500, 501, 503,
];

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const COUNTS: usize = METHODS.len() * DECISIONS.len() * (STATUSES.len() + 1);

/// The counters.
pub struct RequestMetrics {
    counts: [AtomicU64; COUNTS],
    /// Per method: one counter per bucket (not cumulative; summed when
    /// written), then the ones above the last bucket.
    latency: [[AtomicU64; BUCKETS.len() + 1]; METHODS.len()],
    latency_ns: [AtomicU64; METHODS.len()],
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            latency_ns: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::POST => 3,
        Method::DELETE => 4,
        _ => 5,
    }
}

/// Where the counter of (method, decision, status) indexes lives.
fn count_index(method: usize, decision: usize, status: usize) -> usize {
    (method * DECISIONS.len() + decision) * (STATUSES.len() + 1) + status
}

fn status_index(s: StatusCode) -> usize {
    let s = s.as_u16();
    STATUSES
        .iter()
        .position(|&x| x == s)
        .unwrap_or(STATUSES.len())
}

impl RequestMetrics {
    /// Counts one answered request that took `elapsed` to answer.
    pub fn record(&self, method: &Method, decided: Decided, status: StatusCode, elapsed: Duration) {
        let m = method_index(method);
        let d = decided as usize;
        self.counts[count_index(m, d, status_index(status))].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let b = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        self.latency[m][b].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_ns[m].fetch_add(ns, Ordering::Relaxed);
    }

    /// Counts a request refused before its head and body were read whole
    /// (bad framing, a head or body over the limits): its method is
    /// counted as "other", no decision, no latency.
    pub fn record_unread(&self, status: StatusCode) {
        let m = METHODS.len() - 1;
        let d = Decided::None as usize;
        self.counts[count_index(m, d, status_index(status))].fetch_add(1, Ordering::Relaxed);
        self.latency[m][0].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes the counters as Prometheus text: the request counter's
    /// non-zero series, and the histogram of every method seen.
    pub fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP keygate_requests_total Requests answered by the API, by method, access decision and status.\n\
             # TYPE keygate_requests_total counter"
        );
        for (mi, method) in METHODS.iter().enumerate() {
            for (di, decision) in DECISIONS.iter().enumerate() {
                for si in 0..=STATUSES.len() {
                    let n = self.counts[count_index(mi, di, si)].load(Ordering::Relaxed);
                    if n == 0 {
                        continue;
                    }
                    let status = STATUSES
                        .get(si)
                        .map_or_else(|| "other".to_string(), u16::to_string);
                    let _ = writeln!(
                        out,
                        "keygate_requests_total{{method=\"{method}\",decision=\"{decision}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP keygate_request_duration_seconds Time from a request read whole to its answer ready (a write: durable; a watch: registered), by method.\n\
             # TYPE keygate_request_duration_seconds histogram"
        );
        for (mi, method) in METHODS.iter().enumerate() {
            let counts: Vec<u64> = self.latency[mi]
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(&counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "keygate_request_duration_seconds_bucket{{method=\"{method}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "keygate_request_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {total}\n\
                 keygate_request_duration_seconds_sum{{method=\"{method}\"}} {}\n\
                 keygate_request_duration_seconds_count{{method=\"{method}\"}} {total}",
                self.latency_ns[mi].load(Ordering::Relaxed) as f64 / 1e9
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_decision_and_status_with_a_cumulative_histogram() {
        let m = RequestMetrics::default();
        let ms = Duration::from_millis;
        m.record(&Method::GET, Decided::Allow, StatusCode::OK, ms(0));
        m.record(&Method::GET, Decided::Allow, StatusCode::OK, ms(3));
        m.record(&Method::PUT, Decided::Deny, StatusCode::FORBIDDEN, ms(30));
        m.record(
            &Method::PATCH,
            Decided::None,
            StatusCode::IM_A_TEAPOT,
            Duration::from_secs(9),
        );
        let mut out = String::new();
        m.write(&mut out);
        let has = |line: &str| assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        has("keygate_requests_total{method=\"GET\",decision=\"allow\",status=\"200\"} 2");
        has("keygate_requests_total{method=\"PUT\",decision=\"deny\",status=\"403\"} 1");
        has("keygate_requests_total{method=\"other\",decision=\"none\",status=\"other\"} 1");
        assert_eq!(out.matches("keygate_requests_total{").count(), 3, "{out}");
        has("keygate_request_duration_seconds_bucket{method=\"GET\",le=\"0.0001\"} 1");
        has("keygate_request_duration_seconds_bucket{method=\"GET\",le=\"0.0025\"} 1");
        has("keygate_request_duration_seconds_bucket{method=\"GET\",le=\"0.005\"} 2");
        has("keygate_request_duration_seconds_bucket{method=\"GET\",le=\"+Inf\"} 2");
        has("keygate_request_duration_seconds_sum{method=\"GET\"} 0.003");
        has("keygate_request_duration_seconds_count{method=\"GET\"} 2");
        has("keygate_request_duration_seconds_bucket{method=\"PUT\",le=\"0.025\"} 0");
        has("keygate_request_duration_seconds_bucket{method=\"PUT\",le=\"0.05\"} 1");
        has("keygate_request_duration_seconds_bucket{method=\"other\",le=\"2.5\"} 0");
        has("keygate_request_duration_seconds_bucket{method=\"other\",le=\"+Inf\"} 1");
        assert!(!out.contains("method=\"HEAD\""), "{out}");
    }
}
