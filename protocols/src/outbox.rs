//! The bounded output queue every state machine writes into.
//!
//! A state machine never performs an effect: it pushes data describing the effect (send this
//! message, arm this timer, emit this event) into an [`Outbox`] owned by the caller. The caller
//! drains it after every `handle` call, so the bound is per call, not per lifetime.

/// Where a state machine pushes its outputs: an [`Outbox`] the caller drains after the call,
/// or a router that hands each output on as it is pushed (the node composes its layers that
/// way, instead of queueing each layer's outputs and moving them again).
pub trait Sink<T> {
    /// Takes one output.
    ///
    /// # Panics
    /// Past the sink's bound (see [`Outbox::push`]): a programming error.
    fn push(&mut self, item: T);

    /// Outputs taken since the sink was created, last drained, or prepared for a new call
    /// (per-call bound checks compare it before and after a call).
    fn count(&self) -> usize;
}

impl<T> Sink<T> for Outbox<T> {
    fn push(&mut self, item: T) {
        Self::push(self, item);
    }

    fn count(&self) -> usize {
        self.len()
    }
}

/// Caller-owned, bounded queue of outputs.
#[derive(Debug)]
pub struct Outbox<T> {
    items: Vec<T>,
    len_max: usize,
}

impl<T> Outbox<T> {
    /// Creates an outbox holding at most `len_max` items between drains.
    pub fn new(len_max: usize) -> Self {
        assert!(len_max > 0);
        Self { items: Vec::new(), len_max }
    }

    /// Appends one output.
    ///
    /// # Panics
    /// When the outbox is full. Every handler has a documented maximum number of outputs per
    /// call and the driver drains after every call, so overflowing is a programming error.
    pub fn push(&mut self, item: T) {
        assert!(
            self.items.len() < self.len_max,
            "outbox overflow: more than {} outputs without a drain",
            self.len_max
        );
        self.items.push(item);
    }

    /// Number of queued outputs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The bound given at construction.
    pub fn len_max(&self) -> usize {
        self.len_max
    }

    /// Releases spare capacity above `capacity_max` items (long-lived per-node outboxes in a
    /// 100,000-node simulation must not each keep the peak of a burst).
    pub fn shrink_to(&mut self, capacity_max: usize) {
        if self.items.is_empty() && self.items.capacity() > capacity_max {
            self.items.shrink_to(capacity_max);
        }
    }

    /// Removes and yields every queued output, oldest first.
    pub fn drain(&mut self) -> std::vec::Drain<'_, T> {
        self.items.drain(..)
    }

    /// Queued outputs, oldest first, without removing them.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    /// Swaps the queued outputs with `buffer`, which must be empty (asserted). A driver that
    /// must not hold the outbox borrowed while it carries the outputs out drains `buffer`
    /// and hands it back the same way: in steady state nothing is moved or allocated.
    pub fn swap_out(&mut self, buffer: &mut Vec<T>) {
        assert!(buffer.is_empty(), "Outbox::swap_out needs an empty buffer");
        std::mem::swap(&mut self.items, buffer);
    }

    /// Removes everything and returns it (tests compare exact output sequences with this).
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.items)
    }
}

impl<T> Default for Outbox<T> {
    /// An outbox with the default bound of 65,536 items between drains.
    fn default() -> Self {
        Self::new(65_536)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_out_hands_over_the_outputs_and_takes_the_buffer() {
        let mut outbox = Outbox::new(4);
        outbox.push(1);
        outbox.push(2);
        let mut buffer = Vec::with_capacity(16);
        outbox.swap_out(&mut buffer);
        assert_eq!(buffer, vec![1, 2]);
        assert!(outbox.is_empty());
        // The outbox now queues into the caller's buffer, with its capacity and its bound.
        assert!(outbox.items.capacity() >= 16);
        for i in 0..4 {
            outbox.push(i);
        }
        assert_eq!(outbox.len(), 4);
    }

    #[test]
    fn as_a_sink_it_queues_and_counts_within_its_bound() {
        fn push_two(sink: &mut impl Sink<u8>) -> usize {
            sink.push(1);
            sink.push(2);
            sink.count()
        }
        let mut outbox = Outbox::new(2);
        assert_eq!(push_two(&mut outbox), 2);
        assert_eq!(outbox.take(), vec![1, 2]);
        let overflow = std::panic::catch_unwind(move || {
            let mut outbox = Outbox::new(1);
            push_two(&mut outbox)
        });
        assert!(overflow.is_err(), "the bound holds through the trait");
    }

    #[test]
    #[should_panic(expected = "empty buffer")]
    fn swap_out_refuses_a_buffer_that_holds_outputs() {
        let mut outbox = Outbox::new(4);
        outbox.swap_out(&mut vec![7]);
    }
}
