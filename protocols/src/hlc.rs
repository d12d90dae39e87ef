//! Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014).
//!
//! A stamp is the wall-clock millisecond plus a logical counter that orders events within the
//! same millisecond (or while the wall clock lags behind stamps already seen). Stamps issued by
//! one [`Clock`] strictly increase even when the wall clock jumps back, and a clock that has
//! observed a remote stamp only issues larger ones afterwards. Remote stamps too far ahead of the
//! local wall clock are refused, so one node with a runaway clock cannot drag everybody's
//! stamps into the future.
//!
//! Nothing here reads a clock: the driver hands the wall time in (`Now::wall_ms`).

use crate::wire::{DecodeError, Limits, Reader, Wire, Writer};

/// One hybrid-logical-clock stamp. Ordered by `wall_ms`, then `logical`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    /// Wall-clock component, in ms since the Unix epoch.
    pub wall_ms: u64,
    /// Logical counter ordering stamps that share `wall_ms`.
    pub logical: u32,
}

impl Hlc {
    /// The smallest stamp; every issued stamp is larger.
    pub const ZERO: Self = Self { wall_ms: 0, logical: 0 };

    /// Encoded size: u64 wall + u32 logical, both big-endian.
    pub const ENCODED_SIZE: usize = 12;

    /// Creates a stamp.
    pub const fn new(wall_ms: u64, logical: u32) -> Self {
        Self { wall_ms, logical }
    }

    /// The next stamp after `self`: the logical counter plus one, or on logical overflow the
    /// next millisecond with a zero counter.
    ///
    /// # Panics
    /// If `self` is the largest representable stamp. Remote stamps are bounded by the local
    /// wall clock plus `skew_max_ms` and the local wall clock is far below `u64::MAX` ms, so
    /// reaching it is a broken driver, not an input.
    pub fn successor(self) -> Self {
        match self.logical.checked_add(1) {
            Some(logical) => Self { wall_ms: self.wall_ms, logical },
            None => Self {
                wall_ms: self.wall_ms.checked_add(1).expect("HLC wall time below u64::MAX ms"),
                logical: 0,
            },
        }
    }
}

impl Wire for Hlc {
    const ENCODED_SIZE_MIN: usize = Self::ENCODED_SIZE;

    fn encode(&self, w: &mut Writer) {
        w.u64(self.wall_ms);
        w.u32(self.logical);
    }

    fn decode(r: &mut Reader<'_>, _limits: &Limits) -> Result<Self, DecodeError> {
        Ok(Self { wall_ms: r.u64()?, logical: r.u32()? })
    }
}

/// A remote stamp was too far ahead of the local wall clock. The clock did not change;
/// retrying the same stamp fails until the local wall clock catches up (or the sender's clock
/// is fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote HLC stamp {remote_wall_ms} ms is more than {skew_max_ms} ms ahead of the local \
     wall clock {local_wall_ms} ms"
)]
pub struct SkewError {
    /// Wall component of the refused stamp, in ms.
    pub remote_wall_ms: u64,
    /// Local wall clock when it was refused, in ms.
    pub local_wall_ms: u64,
    /// Configured bound, in ms.
    pub skew_max_ms: u64,
}

/// A node's hybrid logical clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clock {
    last: Hlc,
    skew_max_ms: u64,
}

impl Clock {
    /// A clock that has issued nothing yet and refuses remote stamps more than `skew_max_ms`
    /// ahead of the local wall clock.
    pub fn new(skew_max_ms: u64) -> Self {
        Self { last: Hlc::ZERO, skew_max_ms }
    }

    /// The last stamp issued or observed.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// The configured skew bound, in ms.
    pub fn skew_max_ms(&self) -> u64 {
        self.skew_max_ms
    }

    /// Issues a stamp for a local event at wall time `wall_ms`. Strictly greater than every
    /// stamp issued or observed before, even if `wall_ms` went back.
    pub fn now(&mut self, wall_ms: u64) -> Hlc {
        let next =
            if wall_ms > self.last.wall_ms { Hlc::new(wall_ms, 0) } else { self.last.successor() };
        debug_assert!(next > self.last);
        self.last = next;
        next
    }

    /// Observes a remote stamp at local wall time `wall_ms` and returns a stamp strictly
    /// greater than both `remote` and everything issued before.
    ///
    /// # Errors
    /// [`SkewError`] when `remote.wall_ms` is more than `skew_max_ms` ahead of `wall_ms`; the
    /// clock is unchanged.
    pub fn update(&mut self, wall_ms: u64, remote: Hlc) -> Result<Hlc, SkewError> {
        if remote.wall_ms > wall_ms.saturating_add(self.skew_max_ms) {
            return Err(SkewError {
                remote_wall_ms: remote.wall_ms,
                local_wall_ms: wall_ms,
                skew_max_ms: self.skew_max_ms,
            });
        }
        let base = self.last.max(remote);
        let next = if wall_ms > base.wall_ms { Hlc::new(wall_ms, 0) } else { base.successor() };
        debug_assert!(next > self.last && next > remote);
        self.last = next;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn now_follows_wall_and_counts_within_a_millisecond() {
        let mut c = Clock::new(1_000);
        assert_eq!(c.now(100), Hlc::new(100, 0));
        assert_eq!(c.now(100), Hlc::new(100, 1));
        assert_eq!(c.now(101), Hlc::new(101, 0));
    }

    #[test]
    fn now_keeps_increasing_when_wall_goes_back() {
        let mut c = Clock::new(1_000);
        assert_eq!(c.now(500), Hlc::new(500, 0));
        assert_eq!(c.now(10), Hlc::new(500, 1));
        assert_eq!(c.now(499), Hlc::new(500, 2));
    }

    #[test]
    fn logical_overflow_bumps_the_wall_component() {
        let mut c = Clock::new(1_000);
        c.last = Hlc::new(7, u32::MAX);
        assert_eq!(c.now(7), Hlc::new(8, 0));
        assert_eq!(Hlc::new(3, u32::MAX).successor(), Hlc::new(4, 0));
    }

    #[test]
    fn update_moves_past_the_remote_stamp() {
        let mut c = Clock::new(1_000);
        assert_eq!(c.update(100, Hlc::new(600, 4)), Ok(Hlc::new(600, 5)));
        assert_eq!(c.now(100), Hlc::new(600, 6));
        // An old remote stamp still advances past the local clock.
        assert_eq!(c.update(100, Hlc::new(1, 0)), Ok(Hlc::new(600, 7)));
        // A wall clock ahead of everything resets the counter.
        assert_eq!(c.update(700, Hlc::new(650, 9)), Ok(Hlc::new(700, 0)));
    }

    #[test]
    fn update_refuses_skewed_stamps_and_keeps_state() {
        let mut c = Clock::new(1_000);
        let before = c.now(5_000);
        let err = c.update(5_000, Hlc::new(6_001, 0)).unwrap_err();
        assert_eq!(
            err,
            SkewError { remote_wall_ms: 6_001, local_wall_ms: 5_000, skew_max_ms: 1_000 }
        );
        assert_eq!(c.last(), before);
        // Exactly at the bound is accepted.
        assert_eq!(c.update(5_000, Hlc::new(6_000, 0)), Ok(Hlc::new(6_000, 1)));
    }

    #[test]
    fn wire_is_twelve_big_endian_bytes() {
        let mut w = Writer::new();
        Hlc::new(0x0102_0304_0506_0708, 0x090A_0B0C).encode(&mut w);
        let bytes = w.finish();
        assert_eq!(&bytes[..], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let mut r = Reader::new(&bytes);
        assert_eq!(
            Hlc::decode(&mut r, &Limits::default()),
            Ok(Hlc::new(0x0102_0304_0506_0708, 0x090A_0B0C))
        );
        let mut short = Reader::new(&bytes[..11]);
        assert!(matches!(
            Hlc::decode(&mut short, &Limits::default()),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Now(u64),
        Update(u64, u64, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..10_000).prop_map(Op::Now),
            (0u64..10_000, 0u64..12_000, any::<u32>())
                .prop_map(|(w, rw, rl)| Op::Update(w, rw, rl)),
        ]
    }

    proptest! {
        #[test]
        fn stamps_strictly_increase_and_dominate_remotes(ops in prop::collection::vec(op(), 1..200)) {
            let mut c = Clock::new(1_000);
            let mut prev = c.last();
            for op in ops {
                match op {
                    Op::Now(w) => {
                        let s = c.now(w);
                        prop_assert!(s > prev);
                        prop_assert!(s.wall_ms >= w);
                        prev = s;
                    }
                    Op::Update(w, rw, rl) => {
                        let remote = Hlc::new(rw, rl);
                        match c.update(w, remote) {
                            Ok(s) => {
                                prop_assert!(s > prev);
                                prop_assert!(s > remote);
                                prev = s;
                            }
                            Err(e) => {
                                prop_assert!(rw > w + 1_000);
                                prop_assert_eq!(e.remote_wall_ms, rw);
                                prop_assert_eq!(c.last(), prev);
                            }
                        }
                    }
                }
                prop_assert_eq!(c.last(), prev);
            }
        }
    }
}
