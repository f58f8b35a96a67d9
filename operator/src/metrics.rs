//! Prometheus metrics (design §3): what `/metrics` serves.
//!
//! Labels are fixed vocabularies — a build's final phase, an error's `&'static str` category —
//! never `Debug` strings or object names, so the series count stays bounded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use stratum_crds::Phase;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The operator's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    builds: Family<ResultLabel, Counter>,
    duration: Histogram,
    running: Gauge,
    errors: Family<ReasonLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let builds = Family::<ResultLabel, Counter>::default();
        // Builds take seconds to hours: 5 s · 2^k up to about 2.8 h.
        let duration = Histogram::new(exponential_buckets(5.0, 2.0, 12));
        let running = Gauge::default();
        let errors = Family::<ReasonLabel, Counter>::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "stratum_builds",
            "Builds that reached a final phase, by result",
            builds.clone(),
        );
        registry.register(
            "stratum_build_duration_seconds",
            "Time from the start of a build's last attempt (status.startTime) to its final phase",
            duration.clone(),
        );
        registry.register(
            "stratum_builds_running",
            "Builds holding a concurrency slot (a builder pod exists or is being created)",
            running.clone(),
        );
        registry.register(
            "stratum_reconcile_errors",
            "Reconciles that failed, by error category",
            errors.clone(),
        );
        Self {
            registry,
            builds,
            duration,
            running,
            errors,
        }
    }

    /// A build reached `phase` (final) after `seconds`.
    pub fn finished(&self, phase: Phase, seconds: Option<f64>) {
        let result = match phase {
            Phase::Succeeded => "succeeded",
            Phase::Failed => "failed",
            Phase::Cancelled => "cancelled",
            _ => return,
        };
        self.builds.get_or_create(&ResultLabel { result }).inc();
        if let Some(seconds) = seconds.filter(|s| s.is_finite() && *s >= 0.0) {
            self.duration.observe(seconds);
        }
    }

    pub fn set_running(&self, running: usize) {
        self.running.set(i64::try_from(running).unwrap_or(i64::MAX));
    }

    pub fn reconcile_error(&self, reason: &'static str) {
        self.errors.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_fixed_labels() {
        let m = Metrics::new();
        m.finished(Phase::Succeeded, Some(42.0));
        m.finished(Phase::Failed, Some(7.0));
        m.finished(Phase::Failed, None);
        m.finished(Phase::Building, Some(1.0)); // not final: ignored
        m.set_running(3);
        m.reconcile_error("kube_api");
        let text = m.render();
        for line in [
            "# TYPE stratum_builds counter",
            "stratum_builds_total{result=\"succeeded\"} 1",
            "stratum_builds_total{result=\"failed\"} 2",
            "# TYPE stratum_build_duration_seconds histogram",
            "stratum_build_duration_seconds_count 2",
            "stratum_build_duration_seconds_sum 49.0",
            "stratum_build_duration_seconds_bucket{le=\"5.0\"} 0",
            "stratum_build_duration_seconds_bucket{le=\"10.0\"} 1",
            "stratum_build_duration_seconds_bucket{le=\"80.0\"} 2",
            "stratum_builds_running 3",
            "stratum_reconcile_errors_total{reason=\"kube_api\"} 1",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("building"), "{text}");
    }
}
