use super::*;
use crate::store::event::{Action, NodeRepr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;

fn event(index: u64) -> Arc<Event> {
    let node = NodeRepr {
        key: "/a".into(),
        value: Some("v".into()),
        dir: false,
        expiration: None,
        ttl: 0,
        modified: index,
        created: index,
    };
    Arc::new(Event::new(Action::Set, node, None))
}

/// Counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll(rx: &OnceReceiver, count: &Arc<Count>) -> Poll<Outcome> {
    let waker = Waker::from(count.clone());
    rx.poll(&mut Context::from_waker(&waker))
}

/// A writer that records the index it wrote and whether it was dropped.
fn writer(wrote: &Arc<AtomicUsize>, dropped: &Arc<AtomicUsize>) -> Writer {
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (wrote, on_drop) = (wrote.clone(), OnDrop(dropped.clone()));
    Box::new(move |e: &Arc<Event>| {
        let _keep = &on_drop;
        wrote.store(e.index() as usize, Ordering::SeqCst);
    })
}

#[test]
fn an_event_before_parking_is_the_tasks_to_write() {
    let (tx, rx) = slot();
    let count = Arc::new(Count::default());
    assert!(poll(&rx, &count).is_pending());
    assert!(tx.send(&event(7)).is_none());
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "the waiting task is woken"
    );
    let (wrote, dropped) = Default::default();
    assert!(!rx.park(writer(&wrote, &dropped)), "too late to park");
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    match poll(&rx, &count) {
        Poll::Ready(Outcome::Event(e)) => assert_eq!(e.index(), 7),
        _ => panic!("expected the event"),
    }
}

#[test]
fn a_parked_watch_is_written_by_its_writer_then_its_task_is_woken() {
    let (tx, rx) = slot();
    let count = Arc::new(Count::default());
    let (wrote, dropped) = (Arc::default(), Arc::default());
    assert!(rx.park(writer(&wrote, &dropped)));
    assert!(poll(&rx, &count).is_pending());
    let parked = tx.send(&event(9)).expect("the writer is handed out");
    assert!(poll(&rx, &count).is_pending(), "still writing");
    assert!(!rx.unpark(), "a writing writer keeps the connection");
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    parked.run();
    assert_eq!(wrote.load(Ordering::SeqCst), 9);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once written");
    assert!(matches!(poll(&rx, &count), Poll::Ready(Outcome::Written)));
    drop(tx);
    assert!(matches!(poll(&rx, &count), Poll::Ready(Outcome::Closed)));
}

#[test]
fn a_parked_write_dropped_unrun_leaves_the_event_to_the_task() {
    let (tx, rx) = slot();
    let count = Arc::new(Count::default());
    let (wrote, dropped) = (Arc::default(), Arc::default());
    assert!(rx.park(writer(&wrote, &dropped)));
    assert!(poll(&rx, &count).is_pending());
    drop(tx.send(&event(3)).expect("parked"));
    assert_eq!(wrote.load(Ordering::SeqCst), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    match poll(&rx, &count) {
        Poll::Ready(Outcome::Event(e)) => assert_eq!(e.index(), 3),
        _ => panic!("expected the event"),
    }
}

#[test]
fn a_watch_let_go_by_the_hub_closes_and_drops_its_writer() {
    let (tx, rx) = slot();
    let count = Arc::new(Count::default());
    let (wrote, dropped) = (Arc::default(), Arc::default());
    assert!(rx.park(writer(&wrote, &dropped)));
    assert!(poll(&rx, &count).is_pending());
    drop(tx);
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the connection is let go"
    );
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll(&rx, &count), Poll::Ready(Outcome::Closed)));
}

#[test]
fn unparking_or_leaving_takes_the_writer_back() {
    let (tx, rx) = slot();
    let (wrote, dropped) = (Arc::default(), Arc::default());
    assert!(rx.park(writer(&wrote, &dropped)));
    assert!(rx.unpark());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert!(tx.send(&event(4)).is_none(), "no writer any more");
    assert_eq!(wrote.load(Ordering::SeqCst), 0);

    let (_tx, rx) = slot();
    let dropped2 = Arc::new(AtomicUsize::new(0));
    assert!(rx.park(writer(&wrote, &dropped2)));
    drop(rx);
    assert_eq!(dropped2.load(Ordering::SeqCst), 1);
}

#[test]
fn fan_out_runs_every_writer_on_the_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let wrote = Arc::new(AtomicUsize::new(0));
    let mut parked = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..(FAN_OUT_BATCH * 2 + 5) {
        let (tx, rx) = slot();
        let wrote = wrote.clone();
        assert!(rx.park(Box::new(move |_: &Arc<Event>| {
            wrote.fetch_add(1, Ordering::SeqCst);
        })));
        parked.push(tx.send(&event(5)).expect("parked"));
        receivers.push(rx);
    }
    fan_out(parked, Some(rt.handle()));
    rt.block_on(async {
        for rx in &receivers {
            let outcome = std::future::poll_fn(|cx| rx.poll(cx)).await;
            assert!(matches!(outcome, Outcome::Written));
        }
    });
    assert_eq!(wrote.load(Ordering::SeqCst), FAN_OUT_BATCH * 2 + 5);
}

#[test]
fn a_writer_that_panics_ends_the_watch() {
    let (tx, rx) = slot();
    let count = Arc::new(Count::default());
    assert!(rx.park(Box::new(|_: &Arc<Event>| panic!("a writer failing"))));
    assert!(poll(&rx, &count).is_pending());
    let parked = tx.send(&event(6)).expect("parked");
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parked.run()));
    assert!(ran.is_err());
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task is woken");
    assert!(matches!(poll(&rx, &count), Poll::Ready(Outcome::Closed)));
}

/// Parks `n` watches whose writers count into `wrote` (the one at
/// `panics` panics instead), polls each once with a waker counting its wakes,
/// and hands them all an event.
fn parked_watches(
    n: usize,
    wrote: &Arc<AtomicUsize>,
    panics: Option<usize>,
) -> (Vec<ParkedWrite>, Vec<(OnceReceiver, Arc<Count>)>) {
    let mut parked = Vec::new();
    let mut watches = Vec::new();
    for i in 0..n {
        let (tx, rx) = slot();
        let w = wrote.clone();
        assert!(rx.park(Box::new(move |_: &Arc<Event>| {
            assert!(Some(i) != panics, "a writer failing");
            w.fetch_add(1, Ordering::SeqCst);
        })));
        let woken = Arc::new(Count::default());
        let waker = Waker::from(woken.clone());
        assert!(rx.poll(&mut Context::from_waker(&waker)).is_pending());
        parked.push(tx.send(&event(5)).expect("parked"));
        watches.push((rx, woken));
    }
    (parked, watches)
}

/// Runs the runtime until every watch was woken (or 1,000 turns).
fn run_until_woken(rt: &tokio::runtime::Runtime, watches: &[(OnceReceiver, Arc<Count>)]) {
    rt.block_on(async {
        for _ in 0..1000 {
            if watches.iter().all(|(_, w)| w.0.load(Ordering::SeqCst) > 0) {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
}

#[test]
fn a_writer_that_panics_in_a_fan_out_leaves_no_watch_waiting() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let n = FAN_OUT_BATCH * 2 + 5;
    let wrote = Arc::new(AtomicUsize::new(0));
    let (parked, watches) = parked_watches(n, &wrote, Some(3));
    fan_out(parked, Some(rt.handle()));
    run_until_woken(&rt, &watches);
    let (mut written, mut events, mut closed) = (0, 0, 0);
    for (i, (rx, woken)) in watches.iter().enumerate() {
        assert_eq!(woken.0.load(Ordering::SeqCst), 1, "watch {i}");
        match poll(rx, &Arc::default()) {
            Poll::Ready(Outcome::Written) => written += 1,
            // Left to its task: the rest of the batch that failed.
            Poll::Ready(Outcome::Event(_)) => events += 1,
            Poll::Ready(Outcome::Closed) => closed += 1,
            Poll::Pending => panic!("watch {i} still waits"),
        }
    }
    assert_eq!(closed, 1, "the watch whose writer panicked ends");
    assert_eq!(events, FAN_OUT_BATCH - 4);
    assert_eq!(written, n - 1 - events);
    assert_eq!(wrote.load(Ordering::SeqCst), written);
}
