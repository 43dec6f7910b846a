//! A one-shot watch's slot: the hub puts the event in it, or — when the
//! watch's connection parked itself there — hands the event to the
//! connection's own writer, so that the answer is written without first
//! waking the connection's task.
//!
//! Waking 10,000 watches one task at a time touches every task's state
//! before its event goes out; the fan-out that runs parked writers
//! ([`fan_out`]) writes every answer first, and each task then only takes
//! its connection back.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::event::Event;

/// Writes a parked watch's answer (the event, and the answer's end) to its
/// connection. Runs once, outside the hub's lock.
pub type Writer = Box<dyn FnOnce(&Arc<Event>) + Send>;

/// Parked writers are run in batches of this many, each batch a task of
/// its own (many cores share a large fan-out).
const FAN_OUT_BATCH: usize = 64;

enum State {
    /// No event yet; the waker of the task waiting, and the writer when
    /// its connection is parked.
    Waiting {
        waker: Option<Waker>,
        writer: Option<Writer>,
    },
    /// The hub handed the event to the writer, which has not finished.
    Writing { waker: Option<Waker> },
    /// The event, for the task to write.
    Event(Arc<Event>),
    /// The writer wrote the answer.
    Written,
    /// The watch ended without an event (the hub let it go: a reload, or
    /// the store closing).
    Closed,
    /// The task took what came.
    Taken,
}

struct Slot {
    state: Mutex<State>,
}

fn lock(slot: &Slot) -> MutexGuard<'_, State> {
    slot.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a one-shot watch got.
pub enum Outcome {
    /// The event: the task writes it.
    Event(Arc<Event>),
    /// The parked connection's writer wrote the answer.
    Written,
    /// Ended without an event.
    Closed,
}

/// A new slot: the hub's end and the watch's end.
pub(crate) fn slot() -> (OnceSender, OnceReceiver) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Waiting {
            waker: None,
            writer: None,
        }),
    });
    (OnceSender(slot.clone()), OnceReceiver(slot))
}

/// The hub's end. Dropped unsent, it closes the watch.
pub(crate) struct OnceSender(Arc<Slot>);

impl OnceSender {
    /// Delivers `e`. When the watch's connection is parked, returns its
    /// writer, which the caller runs outside the hub's lock.
    pub(crate) fn send(&self, e: &Arc<Event>) -> Option<ParkedWrite> {
        let mut state = lock(&self.0);
        match std::mem::replace(&mut *state, State::Taken) {
            State::Waiting {
                waker,
                writer: Some(writer),
            } => {
                *state = State::Writing { waker };
                Some(ParkedWrite {
                    slot: self.0.clone(),
                    writer: Some(writer),
                    event: e.clone(),
                })
            }
            State::Waiting {
                waker,
                writer: None,
            } => {
                *state = State::Event(e.clone());
                drop(state);
                if let Some(w) = waker {
                    w.wake();
                }
                None
            }
            other => {
                *state = other;
                None
            }
        }
    }
}

impl Drop for OnceSender {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        if let State::Waiting { waker, writer } = &mut *state {
            // The writer (and the connection it holds) goes before the
            // task can see `Closed` and take its connection back.
            drop(writer.take());
            let waker = waker.take();
            *state = State::Closed;
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// A parked connection's writer with its event, to run outside the hub's
/// lock. Dropped unrun, it leaves the event to the task.
pub struct ParkedWrite {
    slot: Arc<Slot>,
    writer: Option<Writer>,
    event: Arc<Event>,
}

impl ParkedWrite {
    /// Writes the answer, then wakes the task (to take its connection
    /// back).
    pub fn run(mut self) {
        if let Some(writer) = self.writer.take() {
            writer(&self.event);
            self.finish(State::Written);
        }
    }

    fn finish(&self, to: State) {
        let mut state = lock(&self.slot);
        if let State::Writing { waker } = &mut *state {
            let waker = waker.take();
            *state = to;
            drop(state);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl Drop for ParkedWrite {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            self.finish(State::Event(self.event.clone()));
        } else {
            // The writer panicked (a run that returns finishes first): the
            // watch ends rather than wait for a write that will not end.
            self.finish(State::Closed);
        }
    }
}

/// Runs parked writers: inline without a runtime, else in batches, each
/// a task (unconstrained: a batch writes to many connections in one poll,
/// past tokio's budget of I/O operations per poll).
pub fn fan_out(parked: Vec<ParkedWrite>, runtime: Option<&tokio::runtime::Handle>) {
    let Some(rt) = runtime else {
        parked.into_iter().for_each(ParkedWrite::run);
        return;
    };
    let mut parked = parked.into_iter();
    loop {
        let batch: Vec<ParkedWrite> = parked.by_ref().take(FAN_OUT_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        rt.spawn(tokio::task::unconstrained(async move {
            batch.into_iter().for_each(ParkedWrite::run);
        }));
    }
}

/// The watch's end.
pub struct OnceReceiver(Arc<Slot>);

impl OnceReceiver {
    /// Hands the writing of the answer to `writer`, run when the event
    /// comes. False (and `writer` dropped) when something already came.
    pub fn park(&self, writer: Writer) -> bool {
        let mut state = lock(&self.0);
        match &mut *state {
            State::Waiting { writer: slot, .. } => {
                *slot = Some(writer);
                true
            }
            _ => false,
        }
    }

    /// Takes the writer back, unless it is writing (then the task waits
    /// for `Written`). True when the connection is the task's again.
    pub fn unpark(&self) -> bool {
        let mut state = lock(&self.0);
        match &mut *state {
            State::Waiting { writer, .. } => {
                let writer = writer.take();
                drop(state);
                drop(writer);
                true
            }
            State::Writing { .. } => false,
            _ => true,
        }
    }

    /// What came, once something did.
    pub fn poll(&self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut state = lock(&self.0);
        match &mut *state {
            State::Waiting { waker, .. } | State::Writing { waker } => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            State::Event(_) => {
                let State::Event(e) = std::mem::replace(&mut *state, State::Taken) else {
                    return Poll::Ready(Outcome::Closed);
                };
                Poll::Ready(Outcome::Event(e))
            }
            State::Written => {
                *state = State::Taken;
                Poll::Ready(Outcome::Written)
            }
            State::Closed | State::Taken => Poll::Ready(Outcome::Closed),
        }
    }
}

impl Drop for OnceReceiver {
    fn drop(&mut self) {
        // A writer holds its connection: let it go with the watch.
        let writer = match &mut *lock(&self.0) {
            State::Waiting { writer, .. } => writer.take(),
            _ => None,
        };
        drop(writer);
    }
}

#[cfg(test)]
mod tests;
