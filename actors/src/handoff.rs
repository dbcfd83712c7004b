//! Who decides the fate of a request at its deadline: the one that takes it up, or the one
//! that gives up waiting for it.
//!
//! A request handed to another task (a write set to the writer, a command to an actor) may
//! still be waiting there when its sender's deadline passes. The sender then *abandons* it and
//! may answer "not done" (503) only if the receiver had not *taken* it yet; the receiver takes
//! it only if it was not abandoned. Exactly one of the two wins, so an answered error never
//! takes effect later. A sender that loses the race knows the request is under way and
//! reports its outcome as unknown, or waits for it.

use std::sync::atomic::{AtomicU8, Ordering};

const PENDING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

#[derive(Debug, Default)]
pub struct Handoff(AtomicU8);

impl Handoff {
    /// The receiver starts on the request; `false` when the sender already gave up on it.
    pub fn take(&self) -> bool {
        self.0.compare_exchange(PENDING, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// The sender gives up; `false` when the receiver already took the request.
    pub fn abandon(&self) -> bool {
        self.0.compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Whether the sender gave up (as opposed to someone having taken the request).
    pub fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_of_take_and_abandon_wins() {
        let taken = Handoff::default();
        assert!(taken.take());
        assert!(!taken.abandon());
        assert!(!taken.take(), "taken once");

        let abandoned = Handoff::default();
        assert!(abandoned.abandon());
        assert!(!abandoned.take());
    }

    #[test]
    fn a_race_of_many_threads_has_one_winner() {
        for _ in 0..200 {
            let handoff = std::sync::Arc::new(Handoff::default());
            let racers: Vec<_> = (0..4)
                .map(|index| {
                    let handoff = std::sync::Arc::clone(&handoff);
                    std::thread::spawn(move || if index % 2 == 0 { handoff.take() } else { handoff.abandon() })
                })
                .collect();
            let winners = racers.into_iter().map(|racer| racer.join().unwrap_or(false)).filter(|won| *won).count();
            assert_eq!(winners, 1);
        }
    }
}
