//! The hardening limits as command-line flags, shared by `modelgate-dataplane` and
//! `modelgate-operator local`.

use std::time::Duration;

use clap::builder::TypedValueParser;

use crate::proxy::DEFAULT_MAX_ANSWER_BYTES;
use crate::server::Limits;
use crate::{Config, DEFAULT_MAX_IN_FLIGHT, health};

/// Hardening limits (ARCHITECTURE.md, "Limits"): what a client sees at each is in
/// `modelgate_dataplane::server::Limits`.
#[derive(Clone, Debug, clap::Args)]
pub struct LimitArgs {
    /// Health-check probes in flight at once, across every deployment.
    #[arg(long, default_value_t = health::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize), env = "MODELGATE_HEALTH_CHECK_CONCURRENCY")]
    pub health_check_concurrency: usize,
    /// Connections served at once per port; more are answered 503 and closed.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize), env = "MODELGATE_MAX_CONNECTIONS")]
    pub max_connections: usize,
    /// Requests (streams until they end) in flight at once; more get a 503 with Retry-After.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize), env = "MODELGATE_MAX_IN_FLIGHT")]
    pub max_in_flight: usize,
    /// Largest request head (request line and headers) in bytes; larger gets a 431.
    #[arg(long, default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..).map(|v| v as usize), env = "MODELGATE_MAX_HEADER_BYTES")]
    pub max_header_bytes: usize,
    /// Most header fields in a request; more gets a 431.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(8..).map(|v| v as usize), env = "MODELGATE_MAX_HEADERS")]
    pub max_headers: usize,
    /// Seconds a client has to send a whole request head (also how long an idle
    /// keep-alive connection stays open); then the connection closes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), env = "MODELGATE_HEADER_READ_TIMEOUT_SECONDS")]
    pub header_read_timeout_seconds: u64,
    /// Seconds a connection may make no progress while waiting on the client (a stalled
    /// body upload, a client not reading its answer); then it closes. Keep it above the
    /// longest silence of a stream.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..), env = "MODELGATE_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: u64,
    /// Seconds from a request's head to the start of its answer (upload, retries and the
    /// upstream's first byte together); then a 408. 0: unbounded. Keep it above the
    /// longest deployment timeout.
    #[arg(long, default_value_t = 600, env = "MODELGATE_REQUEST_TIMEOUT_SECONDS")]
    pub request_timeout_seconds: u64,
    /// Largest non-streaming answer read from an upstream, bytes; larger is a 502.
    #[arg(long, default_value_t = DEFAULT_MAX_ANSWER_BYTES, value_parser = clap::value_parser!(u64).range(1..).map(|v| v as usize), env = "MODELGATE_MAX_UPSTREAM_ANSWER_BYTES")]
    pub max_upstream_answer_bytes: usize,
}

impl LimitArgs {
    /// Puts the limits into `config`.
    pub fn apply(&self, config: &mut Config) {
        config.health_check_concurrency = self.health_check_concurrency;
        config.max_in_flight = self.max_in_flight;
        config.max_upstream_answer_bytes = self.max_upstream_answer_bytes;
        config.limits = Limits {
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            request_timeout: (self.request_timeout_seconds > 0)
                .then(|| Duration::from_secs(self.request_timeout_seconds)),
        };
    }
}
