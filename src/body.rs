//! The response body: a whole buffer, or a watch that yields events as
//! they are committed.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::api::Authority;
use crate::quota::Held;
use crate::store::event::{encode_bare, Action, Event};
use crate::store::once::{OnceReceiver, Outcome};
use crate::store::WatchGuard;

/// A response body.
pub enum ApiBody {
    /// A complete body (possibly empty).
    Full(Option<Bytes>),
    /// A watch.
    Watch(WatchBody),
}

impl ApiBody {
    /// A complete body.
    pub fn full(b: impl Into<Bytes>) -> ApiBody {
        ApiBody::Full(Some(b.into()))
    }

    /// No body.
    pub fn empty() -> ApiBody {
        ApiBody::Full(None)
    }
}

/// A watch in progress. Dropping it (the client went away) removes the
/// watcher from the hub at once.
pub struct WatchBody {
    state: State,
    _guard: Option<WatchGuard>,
    /// The client's authority when answers are filtered to its view (its
    /// grants as they are when an event is written: a reload may change
    /// them).
    view: Option<Arc<Authority>>,
    /// (client, key, the log writes JSON) for the audit line written when
    /// the watch ends (boxed: a waiting watch's connection holds the body
    /// twice over, and every byte of it is paid 10,000 times over by
    /// 10,000 watches).
    audit: Option<Box<(String, String, bool)>>,
    /// The watch's slot under `max_watches_per_identity`, given back when
    /// the watch ends.
    _slot: Option<Held>,
}

impl Drop for WatchBody {
    fn drop(&mut self) {
        if let Some((client, key, json)) = self.audit.as_deref() {
            crate::audit::watch_end(client, key, *json);
        }
    }
}

impl WatchBody {
    /// Writes a `watch_end` audit line for `client` and `key` when the
    /// watch ends; `json`: the log writes JSON.
    pub fn audited(mut self, client: &str, key: &str, json: bool) -> WatchBody {
        self.audit = Some(Box::new((client.to_string(), key.to_string(), json)));
        self
    }

    /// Holds `slot` until the watch ends.
    pub fn holding(mut self, slot: Held) -> WatchBody {
        self._slot = Some(slot);
        self
    }

    fn render(&self, e: &Event) -> Bytes {
        render(self.view.as_deref(), e)
    }

    /// A one-shot watch not answered yet hands the writing of its event
    /// to `write` (given the event as the client may see it), which the
    /// store's fan-out runs as the event comes, without waking the
    /// watch's task first. False when there is nothing to park (the
    /// event came already, or not a one-shot watch): `write` is dropped.
    pub fn park(&mut self, write: Box<dyn FnOnce(Bytes) + Send>) -> bool {
        let State::Once(rx) = &self.state else {
            return false;
        };
        let view = self.view.clone();
        rx.park(Box::new(move |e: &Arc<Event>| {
            write(render(view.as_deref(), e))
        }))
    }

    /// A one-shot watch still waiting for its event.
    pub fn is_once(&self) -> bool {
        matches!(self.state, State::Once(_))
    }

    /// Takes back what `park` handed out, unless it is being written
    /// (false: then `poll_parked` soon says `Written`).
    pub fn unpark(&self) -> bool {
        match &self.state {
            State::Once(rx) => rx.unpark(),
            _ => true,
        }
    }

    /// What came to a parked watch, once something did.
    pub fn poll_parked(&mut self, cx: &mut Context<'_>) -> Poll<Parked> {
        let State::Once(rx) = &self.state else {
            return Poll::Ready(Parked::Ended);
        };
        let outcome = std::task::ready!(rx.poll(cx));
        self.state = State::Ready(None);
        let parked = match outcome {
            Outcome::Event(e) => Parked::Event(self.render(&e)),
            Outcome::Written => Parked::Written,
            Outcome::Closed => return Poll::Ready(Parked::Ended),
        };
        // A one-shot watch is removed from the hub as it is sent to.
        if let Some(g) = self._guard.take() {
            g.delivered();
        }
        Poll::Ready(parked)
    }
}

/// What came to a parked watch.
pub enum Parked {
    /// The event, for the connection to write.
    Event(Bytes),
    /// The store's fan-out wrote it.
    Written,
    /// The watch ended without an event.
    Ended,
}

/// `e` as a client with `view` may see it. The watch let through only
/// events the client could see when each was published: whole, or — the
/// removal of a directory above its view — the directory's key alone.
/// Decided by the event's kind, since a reload may have changed the grants
/// since: an event published before it is not turned into a bare
/// directory it never was.
fn render(view: Option<&Authority>, e: &Event) -> Bytes {
    let dir_removal = e.node.dir && matches!(e.action, Action::Delete | Action::Expire);
    match view {
        Some(a) if dir_removal && !a.grants.load().can_read(&e.node.key) => {
            Bytes::from(encode_bare(e))
        }
        _ => e.json(),
    }
}

enum State {
    Ready(Option<Bytes>),
    /// etcd's quirk: a stream answered from history sends that one event
    /// and then stays open, silent, until the client leaves.
    ReadyThenSilent(Option<Bytes>),
    Once(OnceReceiver),
    Stream(mpsc::Receiver<Arc<Event>>),
}

impl WatchBody {
    /// A watch answered at once from history.
    pub fn ready(e: &Event, stream: bool, view: Option<Arc<Authority>>) -> WatchBody {
        let json = Some(render(view.as_deref(), e));
        WatchBody {
            _slot: None,
            audit: None,
            view,
            state: if stream {
                State::ReadyThenSilent(json)
            } else {
                State::Ready(json)
            },
            _guard: None,
        }
    }

    /// A watch for the next matching event.
    pub fn once(rx: OnceReceiver, guard: WatchGuard, view: Option<Arc<Authority>>) -> WatchBody {
        WatchBody {
            _slot: None,
            audit: None,
            view,
            state: State::Once(rx),
            _guard: Some(guard),
        }
    }

    /// A stream of events.
    pub fn stream(
        rx: mpsc::Receiver<Arc<Event>>,
        guard: WatchGuard,
        view: Option<Arc<Authority>>,
    ) -> WatchBody {
        WatchBody {
            _slot: None,
            audit: None,
            view,
            state: State::Stream(rx),
            _guard: Some(guard),
        }
    }
}

impl Body for ApiBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ApiBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ApiBody::Watch(w) => match &mut w.state {
                State::Ready(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
                State::ReadyThenSilent(b) => match b.take() {
                    Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                    None => Poll::Pending,
                },
                State::Once(rx) => match rx.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Outcome::Event(e)) => {
                        w.state = State::Ready(None);
                        // A one-shot sink is removed from the hub as it is
                        // sent to.
                        if let Some(g) = w._guard.take() {
                            g.delivered();
                        }
                        Poll::Ready(Some(Ok(Frame::data(w.render(&e)))))
                    }
                    // Never parked here: nothing was written for it.
                    Poll::Ready(Outcome::Written | Outcome::Closed) => {
                        w.state = State::Ready(None);
                        Poll::Ready(None)
                    }
                },
                State::Stream(rx) => match rx.poll_recv(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Some(e)) => {
                        let b = w.render(&e);
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    Poll::Ready(None) => Poll::Ready(None),
                },
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ApiBody::Full(b) => b.is_none(),
            ApiBody::Watch(w) => matches!(w.state, State::Ready(None)),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ApiBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ApiBody::Full(None) => SizeHint::with_exact(0),
            ApiBody::Watch(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::event::NodeRepr;

    /// The authority of a client that reads `read` only.
    fn reading(read: &str) -> Authority {
        let text = format!(
            "[tls]\ncert='c'\nkey='k'\nclient_ca='ca'\n[backend]\ndata_dir='d'\n\
             [roles.r]\nread=['{read}']\n[[bind]]\nany=true\nroles=['r']\n"
        );
        let config = crate::config::Config::parse(std::path::Path::new("/k.toml"), &text).unwrap();
        let grants = crate::policy::Policy::new(&config).grants(&Default::default());
        Authority {
            grants: arc_swap::ArcSwap::from_pointee(grants),
            revoked: Default::default(),
        }
    }

    fn event(action: Action, key: &str, dir: bool) -> Event {
        let node = NodeRepr {
            key: key.into(),
            value: (!dir).then(|| Arc::from("s")),
            dir,
            expiration: None,
            ttl: 0,
            modified: 2,
            created: 1,
        };
        Event::new(action, node, None)
    }

    #[test]
    fn a_watch_renders_an_event_by_its_kind() {
        let a = reading("/team-a/x");
        // In the view: whole.
        let e = event(Action::Set, "/team-a/x/k", false);
        assert_eq!(render(Some(&a), &e), e.json());
        // A directory removed above the view: its key alone.
        let e = event(Action::Delete, "/team-a", true);
        assert_eq!(
            render(Some(&a), &e),
            &b"{\"action\":\"delete\",\"node\":{\"key\":\"/team-a\",\"dir\":true},\"prevNode\":{\"key\":\"/team-a\",\"dir\":true}}\n"[..]
        );
        // A set the watch let through before a reload took the key out of
        // the view: as it was, never shaped as a directory it was not.
        let e = event(Action::Set, "/team-b/k", false);
        assert_eq!(render(Some(&a), &e), e.json());
        // Unfiltered: whole.
        let e = event(Action::Delete, "/team-a", true);
        assert_eq!(render(None, &e), e.json());
    }
}
