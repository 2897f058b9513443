//! Per-deployment counters of one pod: requests and tokens in the current fixed window,
//! and what Redis last said of the whole fleet.
//!
//! Windows are fixed and aligned on multiples of the window length since the Unix epoch
//! (so every pod, and Redis, agree on when a window starts). A request is admitted when the
//! window's requests stay within the rpm share and its tokens (estimated, then reconciled
//! with the upstream's usage) within the tpm share.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Limits one pod enforces for one deployment in the current mode; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shares {
    /// Requests per window.
    pub rpm: Option<u64>,
    /// Tokens per window.
    pub tpm: Option<u64>,
}

impl Shares {
    /// True when nothing is limited.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }
}

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    /// Requests per window.
    Rpm,
    /// Tokens per window.
    Tpm,
    /// Requests in flight across the fleet.
    Concurrency,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Window {
    index: u64,
    requests: u64,
    tokens: u64,
}

impl Window {
    fn at(&mut self, index: u64) -> &mut Self {
        if self.index != index {
            *self = Window {
                index,
                requests: 0,
                tokens: 0,
            };
        }
        self
    }

    /// Whether one more request of `estimate` tokens fits. A request larger than the whole
    /// tpm share is admitted alone into an empty window (else it could never be served).
    fn admits(&self, shares: Shares, estimate: u64) -> Result<(), Exceeded> {
        if shares.rpm.is_some_and(|rpm| self.requests >= rpm) {
            return Err(Exceeded::Rpm);
        }
        if let Some(tpm) = shares.tpm {
            let fits = self.tokens.saturating_add(estimate) <= tpm;
            if !(fits || (self.tokens == 0 && self.requests == 0)) || self.tokens >= tpm {
                return Err(Exceeded::Tpm);
            }
        }
        Ok(())
    }
}

/// What Redis last reported of the whole fleet for one deployment.
#[derive(Debug, Default, Clone, Copy)]
struct FleetView {
    /// Window of the counts.
    index: u64,
    requests: u64,
    tokens: u64,
    /// Requests in flight on every pod, and this pod's share of them then.
    in_flight: u64,
    own_in_flight: u64,
    /// When this was learned (limiter clock, ms).
    at_ms: u64,
}

/// Counters of one deployment on this pod; kept across table swaps.
#[derive(Debug, Default)]
pub struct Counters {
    window: Mutex<Window>,
    fleet: Mutex<FleetView>,
    /// Redis refused this deployment until then (limiter clock, ms); 0 = not refused.
    refused_until_ms: AtomicU64,
}

impl Counters {
    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request of `estimate` tokens fits the shares in window `index`, without
    /// reserving anything.
    pub fn check(&self, index: u64, shares: Shares, estimate: u64) -> Result<(), Exceeded> {
        let mut w = self.window();
        w.at(index).admits(shares, estimate)
    }

    /// Checks and, when it fits, counts one request of `estimate` tokens, atomically.
    pub fn reserve(&self, index: u64, shares: Shares, estimate: u64) -> Result<(), Exceeded> {
        let mut w = self.window();
        let w = w.at(index);
        w.admits(shares, estimate)?;
        w.requests += 1;
        w.tokens = w.tokens.saturating_add(estimate);
        Ok(())
    }

    /// Counts a request admitted elsewhere (by Redis), so that the local view is current
    /// when Redis goes away.
    pub fn count(&self, index: u64, estimate: u64) {
        let mut w = self.window();
        let w = w.at(index);
        w.requests += 1;
        w.tokens = w.tokens.saturating_add(estimate);
    }

    /// Corrects window `index` after the call: `tokens` more or fewer, one request fewer
    /// when `uncount`. Nothing when the window is over (its counts no longer matter).
    pub fn settle(&self, index: u64, tokens: i64, uncount: bool) {
        let mut w = self.window();
        if w.index != index {
            return;
        }
        if uncount {
            w.requests = w.requests.saturating_sub(1);
        }
        w.tokens = w.tokens.saturating_add_signed(tokens);
    }

    /// Requests and tokens counted in window `index`.
    pub fn usage(&self, index: u64) -> (u64, u64) {
        let w = self.window();
        if w.index == index {
            (w.requests, w.tokens)
        } else {
            (0, 0)
        }
    }

    /// Remembers that Redis refused this deployment until `until_ms`.
    pub fn refuse_until(&self, until_ms: u64) {
        self.refused_until_ms.fetch_max(until_ms, Ordering::Relaxed);
    }

    /// Until when Redis refused this deployment, if that is after `now_ms`.
    pub fn refused_until(&self, now_ms: u64) -> Option<u64> {
        let until = self.refused_until_ms.load(Ordering::Relaxed);
        (until > now_ms).then_some(until)
    }

    /// Records what Redis reported of the fleet.
    pub fn set_fleet(
        &self,
        index: u64,
        (requests, tokens): (u64, u64),
        in_flight: u64,
        own_in_flight: u64,
        now_ms: u64,
    ) {
        let mut f = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        *f = FleetView {
            index,
            requests,
            tokens,
            in_flight,
            own_in_flight,
            at_ms: now_ms,
        };
    }

    /// The fleet's requests and tokens in window `index`, when Redis reported them.
    pub fn fleet_usage(&self, index: u64) -> Option<(u64, u64)> {
        let f = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        (f.index == index && f.at_ms > 0).then_some((f.requests, f.tokens))
    }

    /// Requests in flight on other pods, as Redis last said within `fresh_ms` of `now_ms`.
    pub fn others_in_flight(&self, now_ms: u64, fresh_ms: u64) -> u64 {
        let f = self.fleet.lock().unwrap_or_else(|p| p.into_inner());
        if f.at_ms == 0 || now_ms.saturating_sub(f.at_ms) > fresh_ms {
            return 0;
        }
        f.in_flight.saturating_sub(f.own_in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RPM3: Shares = Shares {
        rpm: Some(3),
        tpm: None,
    };

    #[test]
    fn rpm_admits_the_share_then_refuses_until_the_next_window() {
        let c = Counters::default();
        for _ in 0..3 {
            c.reserve(7, RPM3, 0).expect("within the share");
        }
        assert_eq!(c.reserve(7, RPM3, 0), Err(Exceeded::Rpm));
        assert_eq!(c.check(7, RPM3, 0), Err(Exceeded::Rpm));
        assert_eq!(c.usage(7), (3, 0));
        c.reserve(8, RPM3, 0).expect("a new window");
        assert_eq!(c.usage(8), (1, 0));
        assert_eq!(c.usage(7), (0, 0));
    }

    #[test]
    fn tpm_refuses_a_request_that_would_overrun() {
        let s = Shares {
            rpm: None,
            tpm: Some(100),
        };
        let c = Counters::default();
        c.reserve(1, s, 60).expect("fits");
        assert_eq!(c.reserve(1, s, 50), Err(Exceeded::Tpm));
        c.reserve(1, s, 40).expect("exactly the share");
        assert_eq!(c.reserve(1, s, 0), Err(Exceeded::Tpm));
        // Reconciled: the upstream used 30 fewer tokens than estimated.
        c.settle(1, -30, false);
        assert_eq!(c.usage(1), (2, 70));
        c.reserve(1, s, 30).expect("room again");
    }

    #[test]
    fn a_request_larger_than_the_share_goes_alone_into_an_empty_window() {
        let s = Shares {
            rpm: None,
            tpm: Some(10),
        };
        let c = Counters::default();
        c.reserve(1, s, 500).expect("alone in an empty window");
        assert_eq!(c.reserve(1, s, 1), Err(Exceeded::Tpm));
    }

    #[test]
    fn cancelled_requests_give_their_count_back() {
        let c = Counters::default();
        c.reserve(1, RPM3, 5).expect("fits");
        c.settle(1, -5, true);
        assert_eq!(c.usage(1), (0, 0));
        // Settling a window that is over changes nothing.
        c.reserve(2, RPM3, 5).expect("fits");
        c.settle(1, -5, true);
        assert_eq!(c.usage(2), (1, 5));
    }

    #[test]
    fn fleet_view_is_per_window_and_goes_stale() {
        let c = Counters::default();
        assert_eq!(c.fleet_usage(1), None);
        c.set_fleet(1, (4, 40), 5, 2, 1_000);
        assert_eq!(c.fleet_usage(1), Some((4, 40)));
        assert_eq!(c.fleet_usage(2), None);
        assert_eq!(c.others_in_flight(1_500, 2_000), 3);
        assert_eq!(c.others_in_flight(4_000, 2_000), 0);
        c.refuse_until(5_000);
        assert_eq!(c.refused_until(4_000), Some(5_000));
        assert_eq!(c.refused_until(5_000), None);
    }
}
