//! `GET /metrics`: the process's counters, gauges and histograms in the Prometheus text
//! format. Code anywhere records with the `metrics` macros; this installs the recorder and
//! renders it, with the queue's depth and age read from the database at each scrape.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;
use super::error::ApiResult;

/// Upper bounds of the latency buckets, in seconds: a request, an import.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

/// How often recorded samples are folded into the histograms when nobody scrapes, so that
/// memory stays bounded.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder: once, however many servers a process runs (tests run
/// many), since `metrics` records into one global recorder.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "metrics are not recorded: another recorder is installed");
                return None;
            }
            describe();
            let upkeep = handle.clone();
            let started = std::thread::Builder::new()
                .name("intake-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "metrics upkeep not started: histograms fold at each scrape");
            }
            Some(handle)
        })
        .as_ref()
}

/// The help text of each metric, shown by Prometheus.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "intake_http_requests_total",
        "HTTP requests answered, by method, matched route and status"
    );
    describe_histogram!(
        "intake_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and matched route"
    );
    describe_counter!(
        "intake_imports_claimed_total",
        "Imports a worker of this process took up"
    );
    describe_counter!(
        "intake_imports_resumed_total",
        "Imports taken up after another run had started them (a lease taken over, a restart)"
    );
    describe_counter!(
        "intake_imports_ended_total",
        "Imports that ended in this process, by final status"
    );
    describe_histogram!(
        "intake_import_duration_seconds",
        Unit::Seconds,
        "Time from an import's start to its end, by final status"
    );
    describe_counter!(
        "intake_rows_written_total",
        "Rows written (created, updated or found unchanged)"
    );
    describe_counter!(
        "intake_rows_rejected_total",
        "Rows refused with a row error"
    );
    describe_counter!(
        "intake_bytes_read_total",
        Unit::Bytes,
        "Source bytes read by write passes"
    );
    describe_counter!(
        "intake_webhook_deliveries_total",
        "Webhook delivery attempts, by outcome (delivered, retrying, given_up)"
    );
    describe_gauge!(
        "intake_queue_depth",
        "Imports waiting for a worker, across workspaces and processes"
    );
    describe_gauge!(
        "intake_db_connections_open",
        "Database connections this process has open"
    );
    describe_gauge!(
        "intake_db_connections_in_use",
        "Database connections in use by a request or a worker now"
    );
    describe_gauge!(
        "intake_db_connections_max",
        "The most database connections this process opens"
    );
    describe_gauge!(
        "intake_queue_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest import waiting for a worker (0 when none waits)"
    );
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> ApiResult<Response> {
    let queue = state.store.queue_stats().await?;
    metrics::gauge!("intake_queue_depth").set(queue.queued as f64);
    let pool = state.store.pool_stats();
    metrics::gauge!("intake_db_connections_open").set(pool.open as f64);
    metrics::gauge!("intake_db_connections_in_use").set(pool.in_use as f64);
    metrics::gauge!("intake_db_connections_max").set(pool.max as f64);
    let age = queue.oldest_created_at.map_or(0.0, |t| {
        (time::OffsetDateTime::now_utc() - t)
            .as_seconds_f64()
            .max(0.0)
    });
    metrics::gauge!("intake_queue_oldest_age_seconds").set(age);
    let body = install().map(|h| h.render()).unwrap_or_default();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
