//! A one-shot-per-wait wake-up between tasks of one shard (single thread, no atomics).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Inner {
    set: bool,
    waker: Option<Waker>,
}

/// Set by one task, awaited by another; setting it twice before the wait wakes once.
#[derive(Clone, Default)]
pub(crate) struct Signal {
    inner: Rc<RefCell<Inner>>,
}

impl Signal {
    pub(crate) fn notify(&self) {
        let waker = {
            let mut inner = self.inner.borrow_mut();
            inner.set = true;
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(crate) fn wait(&self) -> Wait<'_> {
        Wait { signal: self }
    }
}

pub(crate) struct Wait<'a> {
    signal: &'a Signal,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.signal.inner.borrow_mut();
        if inner.set {
            inner.set = false;
            return Poll::Ready(());
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
