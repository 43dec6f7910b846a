//! Telling every connection (and every HTTP/2 stream) that keygate stops.
//!
//! Each connection holds a [`StopSignal`], registered with the server's
//! [`Stopper`]. A connection waiting for the stop keeps its waker in a slot
//! of its own: it never joins a list that thousands of waiting watches
//! share, so a connection that goes from a finished watch back to waiting
//! for its next request pays an uncontended lock of its own slot, not an
//! unlink from (and a relink into) a shared waiter list whose neighbours
//! are other connections' cold memory.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Stops the connections that hold its signals.
pub struct Stopper {
    inner: Arc<Inner>,
}

struct Inner {
    stopping: AtomicBool,
    slots: Mutex<Slots>,
    /// Notified when the last signal is dropped during a stop.
    gone: tokio::sync::Notify,
}

#[derive(Default)]
struct Slots {
    next: u64,
    live: HashMap<u64, Arc<Slot>>,
}

#[derive(Default)]
struct Slot {
    waker: Mutex<Option<Waker>>,
}

/// A connection's view of the stop.
pub struct StopSignal {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    id: u64,
    /// The waker in the slot, by identity (its data and vtable addresses;
    /// 0 when none): a connection polls with the same waker every time, so
    /// its slot (cold memory, in a connection that waited long) is locked
    /// only to store a new one. The slot's clone keeps the waker's task
    /// alive, so no other waker can have the same addresses meanwhile.
    stored: (AtomicUsize, AtomicUsize),
}

/// Locks; a poisoned lock holds consistent data (each change is one
/// insert, removal or store).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Stopper {
    fn default() -> Self {
        Stopper::new()
    }
}

impl Stopper {
    /// Nothing stopping yet.
    pub fn new() -> Stopper {
        Stopper {
            inner: Arc::new(Inner {
                stopping: AtomicBool::new(false),
                slots: Mutex::new(Slots::default()),
                gone: tokio::sync::Notify::new(),
            }),
        }
    }

    /// A signal for one more connection.
    pub fn signal(&self) -> StopSignal {
        let slot = Arc::new(Slot::default());
        let mut slots = lock(&self.inner.slots);
        let id = slots.next;
        slots.next += 1;
        slots.live.insert(id, slot.clone());
        StopSignal {
            inner: self.inner.clone(),
            slot,
            id,
            stored: (AtomicUsize::new(0), AtomicUsize::new(0)),
        }
    }

    /// Tells every connection, present and future, to stop.
    pub fn stop(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let slots: Vec<Arc<Slot>> = lock(&self.inner.slots).live.values().cloned().collect();
        for slot in slots {
            // Taken under the slot's lock: a connection that stores its
            // waker after this sees `stopping` when it checks again.
            let waker = lock(&slot.waker).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Completes once every signal is dropped (every connection ended).
    pub async fn closed(&self) {
        loop {
            let gone = self.inner.gone.notified();
            let mut gone = std::pin::pin!(gone);
            gone.as_mut().enable();
            if lock(&self.inner.slots).live.is_empty() {
                return;
            }
            gone.await;
        }
    }
}

impl StopSignal {
    /// Whether the stop began.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Ready once the stop began; otherwise wakes `cx` when it begins.
    pub fn poll_stopping(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_stopping() {
            return Poll::Ready(());
        }
        // Only `stop` takes the waker out of the slot, after setting
        // `stopping`, which was checked above; so a waker stored once stays.
        let waker = cx.waker();
        let id = (waker.data() as usize, waker.vtable() as *const _ as usize);
        if (
            self.stored.0.load(Ordering::Relaxed),
            self.stored.1.load(Ordering::Relaxed),
        ) != id
        {
            let mut slot = lock(&self.slot.waker);
            match &*slot {
                Some(w) if w.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
            self.stored.0.store(id.0, Ordering::Relaxed);
            self.stored.1.store(id.1, Ordering::Relaxed);
        }
        if self.is_stopping() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Completes once the stop began.
    pub fn stopping(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_stopping(cx))
    }
}

impl Drop for StopSignal {
    fn drop(&mut self) {
        let mut slots = lock(&self.inner.slots);
        slots.live.remove(&self.id);
        if slots.live.is_empty() && self.inner.stopping.load(Ordering::SeqCst) {
            self.inner.gone.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_wakes_every_waiting_connection_and_closed_waits_for_all() {
        let stopper = Arc::new(Stopper::new());
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let signal = stopper.signal();
            tasks.push(tokio::spawn(async move {
                signal.stopping().await;
                assert!(signal.is_stopping());
                // Ends a little later, as a connection finishing its answer.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(tasks.iter().all(|t| !t.is_finished()));
        // A signal made after the stop sees it at once.
        stopper.stop();
        let late = stopper.signal();
        assert!(late.is_stopping());
        drop(late);
        let closed = tokio::time::timeout(Duration::from_secs(5), stopper.closed());
        closed
            .await
            .expect("closed() returns once every signal is gone");
        for t in tasks {
            assert!(t.is_finished());
            t.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_signal_polled_again_or_by_another_task_is_still_woken() {
        let stopper = Stopper::new();
        let signal = stopper.signal();
        // Polled several times by one task (the sleep wakes it in between),
        // then handed to another task, which waits with its own waker.
        let signal = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::select! {
                    () = signal.stopping() => panic!("stopped before the stop"),
                    () = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
            signal
        })
        .await
        .unwrap();
        let waiting = tokio::spawn(async move {
            signal.stopping().await;
            signal.is_stopping()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        stopper.stop();
        let stopped = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(stopped
            .expect("the stop did not wake the new task")
            .unwrap());
    }

    #[tokio::test]
    async fn closed_waits_while_a_signal_lives() {
        let stopper = Stopper::new();
        let signal = stopper.signal();
        stopper.stop();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), stopper.closed())
                .await
                .is_err()
        );
        drop(signal);
        tokio::time::timeout(Duration::from_secs(1), stopper.closed())
            .await
            .unwrap();
    }
}
