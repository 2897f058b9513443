//! Deadlines checked by a timer registered once per connection, not once per request.
//!
//! A tokio `Sleep` made per request costs a timer-wheel insertion on its first poll and a
//! removal when dropped, and most deadlines never pass. A [`LazyTimer`] keeps its `Sleep`
//! for the life of what owns it (a public or an upstream connection): a deadline later
//! than the registered one is only written down, and the `Sleep` is moved when it fires
//! before the deadline (deadlines mostly move later, so that is about once per timeout)
//! or when a deadline comes earlier than the registered one. Once the `Sleep` has been
//! polled for a task, polling it again for that task changes nothing until it fires, so a
//! check while it is armed is a comparison and an atomic load.

use std::pin::Pin;
use std::task::{Context, Waker};

use tokio::time::{Instant, Sleep};

/// A deadline, and the timer that wakes the task when it may have passed.
#[derive(Debug, Default)]
pub(crate) struct LazyTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    /// `None`: no deadline (never expires).
    deadline: Option<Instant>,
    /// The task the registered `Sleep` wakes (it was polled for it since it last moved).
    armed_for: Option<Waker>,
}

impl LazyTimer {
    /// A timer without a deadline; nothing is registered until one is set and polled.
    pub(crate) fn new() -> Self {
        LazyTimer::default()
    }

    /// The deadline from now on.
    pub(crate) fn set(&mut self, deadline: Instant) {
        self.deadline = Some(deadline);
    }

    /// No deadline from now on (the registered timer stays, for the next one).
    pub(crate) fn clear(&mut self) {
        self.deadline = None;
    }

    /// True once the deadline has passed; else the task is woken when it might have.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline else {
            return false;
        };
        if let (Some(sleep), Some(armed_for)) = (&self.sleep, &self.armed_for)
            && deadline >= sleep.deadline()
            && armed_for.will_wake(cx.waker())
            && !sleep.is_elapsed()
        {
            // Registered for this task and not fired: it wakes the task when it does.
            return false;
        }
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if deadline < sleep.deadline() {
            sleep.as_mut().reset(deadline);
        }
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                if !self
                    .armed_for
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    self.armed_for = Some(cx.waker().clone());
                }
                return false;
            }
            if deadline <= Instant::now() {
                self.armed_for = None;
                return true;
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;
    use std::time::Duration;

    use super::*;

    #[test]
    fn lazy_timers_only_move_forward_when_they_fire() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut cx = Context::from_waker(Waker::noop());
            let mut timer = LazyTimer::new();
            // No deadline: never expires, and nothing is registered.
            assert!(!timer.poll_expired(&mut cx));
            assert!(timer.sleep.is_none());
            let start = Instant::now();
            timer.set(start + Duration::from_secs(10));
            assert!(!timer.poll_expired(&mut cx));
            // Moved later before it fires: the registered timer stays where it was.
            tokio::time::advance(Duration::from_secs(5)).await;
            timer.set(Instant::now() + Duration::from_secs(10));
            assert!(!timer.poll_expired(&mut cx));
            assert_eq!(
                timer.sleep.as_ref().map(|s| s.deadline()),
                Some(start + Duration::from_secs(10))
            );
            tokio::time::advance(Duration::from_secs(6)).await;
            // The first timer fired at 10 s; the deadline is at 15 s: not expired.
            assert!(!timer.poll_expired(&mut cx));
            tokio::time::advance(Duration::from_secs(4)).await;
            assert!(timer.poll_expired(&mut cx));
            // Moved earlier: taken at once.
            timer.set(Instant::now() + Duration::from_secs(100));
            assert!(!timer.poll_expired(&mut cx));
            timer.set(Instant::now() + Duration::from_secs(1));
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(timer.poll_expired(&mut cx));
        });
    }
}
