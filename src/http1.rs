//! HTTP/1.1 server connections, written for this API.
//!
//! hyper serves HTTP/2; HTTP/1.1 is served here because a gateway's
//! connections are mostly idle keep-alives and waiting watches, and what a
//! connection holds while it waits is what 10,000 of them cost. This
//! connection owns no read buffer: request heads are parsed straight from
//! the TLS layer's decrypted record (a head split across records is
//! gathered in a buffer that is freed again), and each answer is written
//! as one buffer, one TLS record and one system call, then freed. A one-shot
//! watch sends its event and the end of its chunked body together.
//!
//! Framing is strict: `Content-Length` or chunked `Transfer-Encoding`
//! (never both), no obs-fold, bounded head, chunk lines and body; any
//! violation answers 400 and closes, as a request smuggling defence.

use std::future::Future;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE, EXPECT, HOST, TRANSFER_ENCODING,
};
use hyper::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::api::{self, App, Client};
use crate::body::{ApiBody, Parked, WatchBody};
use crate::stop::StopSignal;

/// The limits of one connection (from `[server]`).
#[derive(Clone, Debug)]
pub struct Limits {
    /// Waiting for the first byte of the next request.
    pub idle_timeout: Duration,
    /// From a request's first byte until its whole answer is written (a
    /// watch: until its head is written).
    pub request_timeout: Duration,
    /// Request headers, all together (name + value + 4 per header).
    pub max_header_bytes: usize,
    /// Request headers, counted.
    pub max_header_count: usize,
    /// Request body.
    pub max_body_bytes: usize,
}

impl Limits {
    /// The whole head (request line, headers, line ends) may not exceed
    /// this: the header limit plus room for a long request line.
    fn max_head(&self) -> usize {
        self.max_header_bytes + 65536
    }
}

/// Longest chunk-size or trailer line of a chunked request body.
const MAX_CHUNK_LINE: usize = 4096;

/// Why a connection stops before its next request.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The client closed, or the connection failed.
    Gone,
    /// Malformed or ambiguous framing: 400, then close.
    BadRequest,
    /// 400 saying why, then close (Go's words, so etcd's).
    BadRequestBecause(&'static str),
    /// An `Expect` other than `100-continue`: 417, then close.
    ExpectationFailed,
    /// A head over the limits: 431, then close.
    HeadTooLarge,
    /// A body over `max_body_bytes`: 413 etcd-style, then close.
    BodyTooLarge,
}

impl From<io::Error> for Stop {
    fn from(_: io::Error) -> Stop {
        Stop::Gone
    }
}

impl Stop {
    /// The answer to send before closing, if any.
    fn answer(self, limits: &Limits) -> Option<Response<ApiBody>> {
        let resp = match self {
            Stop::Gone => return None,
            Stop::BadRequest => api::plain(StatusCode::BAD_REQUEST, "400 Bad Request"),
            Stop::BadRequestBecause(why) => {
                api::plain(StatusCode::BAD_REQUEST, &format!("400 Bad Request: {why}"))
            }
            Stop::ExpectationFailed => {
                let mut r = Response::new(ApiBody::empty());
                *r.status_mut() = StatusCode::EXPECTATION_FAILED;
                r
            }
            Stop::HeadTooLarge => api::headers_too_large(),
            Stop::BodyTooLarge => return Some(api::body_too_large(limits.max_body_bytes)),
        };
        Some(api::close(resp))
    }
}

/// Serves HTTP/1.1 requests on `io` until the client leaves, a request
/// asks to close, a limit is hit, or `stop` signals the stop (in-flight
/// answers finish; a waiting watch ends its body cleanly).
///
/// Not an `async fn`: an async fn's future would hold the connection
/// twice (its argument, and the local rebound from it; rust-lang/rust
/// #62958), and every waiting watch pays for the connection's size.
/// The connection is boxed: a parked watch moves it into the store's
/// fan-out and back, and every future it passes through would keep room
/// for all of it.
#[allow(clippy::manual_async_fn)]
pub fn serve<S>(
    io: S,
    app: Arc<App>,
    client: Arc<Client>,
    limits: Limits,
    stop: StopSignal,
) -> impl Future<Output = ()> + Send
where
    S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = Box::new(io);
    async move {
        // Bytes of the next request read past the previous one (pipelining,
        // or a head split across TLS records).
        let mut carry: Vec<u8> = Vec::new();
        let mut deadline = Deadline::new(&limits);
        loop {
            if stop.is_stopping() {
                break;
            }
            let next = next_request(&mut io, &mut carry, &limits, &stop, &mut deadline);
            let req = match next.await {
                Ok(Some(req)) => req,
                Ok(None) => break,
                Err(stop) => {
                    let Some(resp) = stop.answer(&limits) else {
                        break;
                    };
                    app.metrics.record_unread(resp.status());
                    boxed(answer_stop(&mut io, resp, &mut deadline)).await;
                    break;
                }
            };
            let version = req.version();
            let is_head = req.method() == Method::HEAD;
            let mut close = wants_close(&req);
            let resp = match api::answer(&app, &client, req) {
                api::Answer::Ready(resp) => resp,
                api::Answer::Later(write) => match deadline.bound(write).await {
                    Some(resp) => resp,
                    None => break,
                },
            };
            close |= resp
                .headers()
                .get(CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            let stream = matches!(resp.body(), ApiBody::Watch(_));
            // An HTTP/1.0 client has no chunked encoding: a streamed body ends
            // with the connection.
            close |= stream && version == Version::HTTP_10;
            close |= stop.is_stopping();
            // Boxed, as reading is: the connection's own future stays small.
            let ok = if stream && !is_head && version == Version::HTTP_11 && is_once(&resp) {
                let w = boxed(write_parked(io, resp, close, &mut carry, &limits, &stop));
                match w.await {
                    (Some(back), ok) => {
                        io = back;
                        ok
                    }
                    // The client left: nothing to shut down.
                    (None, _) => return,
                }
            } else if stream && !is_head {
                let w = boxed(write_stream(
                    &mut io, resp, version, close, &mut carry, &limits, &stop,
                ));
                w.await
            } else {
                let w = boxed(write_response(&mut io, resp, version, is_head, close));
                // A client that does not read its answer holds no
                // connection past the request's deadline.
                deadline.bound(w).await.unwrap_or(false)
            };
            if !ok || close {
                break;
            }
            if carry.is_empty() {
                // Nothing pending: give the buffer back while the connection
                // waits.
                carry = Vec::new();
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
    }
}

/// Answers the connection's first request with `refusal` and closes (a
/// connection over a per-identity limit: refused fast, never queued). A
/// client that sends nothing is closed at `idle_timeout`, one that is slow
/// to send its request at `request_timeout`.
pub async fn refuse<S>(mut io: S, refusal: Response<ApiBody>, limits: Limits, stop: StopSignal)
where
    S: AsyncBufRead + AsyncWrite + Unpin + Send,
{
    let mut carry: Vec<u8> = Vec::new();
    let mut deadline = Deadline::new(&limits);
    let next = boxed(next_request(
        &mut io,
        &mut carry,
        &limits,
        &stop,
        &mut deadline,
    ));
    let (resp, version, is_head) = match next.await {
        Ok(Some(req)) => (refusal, req.version(), req.method() == Method::HEAD),
        Ok(None) => return,
        Err(stop) => match stop.answer(&limits) {
            Some(resp) => (resp, Version::HTTP_11, false),
            None => return,
        },
    };
    let w = boxed(write_response(
        &mut io,
        api::close(resp),
        version,
        is_head,
        true,
    ));
    if deadline.bound(w).await.unwrap_or(false) {
        boxed(linger(&mut io)).await;
    }
}

/// Writes the answer to a request that stops the connection (400, 431,
/// 413), bounded like every answer: a client that does not read it holds
/// no connection past the request's deadline. Then lingers.
async fn answer_stop<S>(io: &mut S, resp: Response<ApiBody>, deadline: &mut Deadline)
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let w = write_response(io, resp, Version::HTTP_11, false, true);
    if deadline.bound(w).await.unwrap_or(false) {
        linger(io).await;
    }
}

/// Closes after an error answer without resetting the connection: the
/// client may still be sending a body keygate will not read (a 413), and
/// closing with unread bytes would make the kernel send a reset that can
/// destroy the answer before the client reads it. So: our side of the
/// connection is shut down, then what still comes is read and dropped, for
/// at most 2 s and 16 MiB.
async fn linger<S>(io: &mut S)
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    if tokio::time::timeout_at(deadline, io.shutdown())
        .await
        .is_err()
    {
        return;
    }
    let mut drained = 0usize;
    while drained < 16 << 20 {
        match tokio::time::timeout_at(deadline, io.fill_buf()).await {
            Ok(Ok(b)) if !b.is_empty() => {
                let n = b.len();
                drained += n;
                Pin::new(&mut *io).consume(n);
            }
            _ => break,
        }
    }
}

/// A future on the heap. Made in a function of its own so that the caller's
/// future never holds the unboxed one (rustc keeps a temporary's storage
/// in the caller's state until the end of its statement, past the await).
#[inline(never)]
pub(crate) fn boxed<F: Future>(f: F) -> Pin<Box<F>> {
    Box::pin(f)
}

/// Whether the request asks for the connection to close after its answer.
fn wants_close<B>(req: &Request<B>) -> bool {
    let has = |token: &str| {
        req.headers().get_all(CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if req.version() == Version::HTTP_10 {
        !has("keep-alive")
    } else {
        has("close")
    }
}

/// Reads the next request: head and whole body. `None`: the client left
/// (or went idle past `idle_timeout`, or shutdown began) between requests.
async fn next_request<S>(
    io: &mut S,
    carry: &mut Vec<u8>,
    limits: &Limits,
    stop: &StopSignal,
    deadline: &mut Deadline,
) -> Result<Option<Request<Bytes>>, Stop>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    if carry.is_empty() {
        // Idle: wait for the first byte, the idle timeout or shutdown.
        let now = Instant::now();
        deadline.set(now + limits.idle_timeout);
        let first = tokio::select! {
            biased;
            r = std::future::poll_fn(|cx| Pin::new(&mut *io).poll_fill_buf(cx).map_ok(|b| b.is_empty())) => r,
            _ = deadline.passed(Some(now)) => return Ok(None),
            () = stop.stopping() => return Ok(None),
        };
        match first {
            Ok(false) => {}
            Ok(true) | Err(_) => return Ok(None),
        }
    }
    // One deadline from the request's first byte until its answer is
    // written.
    deadline.set(Instant::now() + limits.request_timeout);
    // Boxed: a waiting connection does not carry the reading state.
    let read = boxed(read_request(io, carry, limits));
    match deadline.bound(read).await {
        Some(r) => r.map(Some),
        None => Err(Stop::Gone),
    }
}

/// Polls `sleep`, due at `due`, unless it already holds this task's waker
/// (`armed`) and `now` (read here when `None`) is before `due`: a timer
/// keeps the waker of its last poll until it fires, and it never fires
/// before its moment, so until then polling it again would only read its
/// memory (cold, in a connection that waited long: 10,000 watches woken at
/// once each paid for it). `armed` is set by a pending poll and cleared
/// when the timer fires.
pub(crate) fn poll_timer(
    sleep: Pin<&mut tokio::time::Sleep>,
    due: Instant,
    armed: &mut bool,
    now: Option<Instant>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if *armed && now.unwrap_or_else(Instant::now) < due {
        return Poll::Pending;
    }
    // Unconstrained: a poll refused for the task's budget would not leave
    // the waker with the timer.
    let mut sleep = tokio::task::unconstrained(sleep);
    let polled = Pin::new(&mut sleep).poll(cx);
    *armed = polled.is_pending();
    polled
}

/// A connection's one timer, for its idle and request deadlines.
///
/// Moving a deadline does not touch the timer: the timer is armed at most
/// `step` (the shorter of the two timeouts) ahead, and when it fires early
/// it is re-armed toward the current deadline. Every deadline is set at
/// least `step` ahead of its moment, so the timer never fires late; a busy
/// connection pays for a clock read per request instead of registering
/// and cancelling timers.
/// Nor does waiting touch it once armed (`poll_timer`).
struct Deadline {
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The timer's own deadline, kept here: moving the deadline reads no
    /// memory of the timer's (cold, in a connection that waited long).
    fires: Instant,
    at: Instant,
    step: Duration,
    /// The timer holds this connection's waker: it was polled, and has
    /// not been seen to fire since.
    armed: bool,
}

impl Deadline {
    fn new(limits: &Limits) -> Deadline {
        let step = limits.idle_timeout.min(limits.request_timeout);
        let at = Instant::now() + step;
        Deadline {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            fires: at,
            at,
            step,
            armed: false,
        }
    }

    /// Moves the deadline to `at`.
    fn set(&mut self, at: Instant) {
        self.at = at;
        if at < self.fires {
            self.reset(at);
        }
    }

    fn reset(&mut self, at: Instant) {
        // The timer keeps its waker across a reset (and one reset into
        // the past fires at once, waking it).
        self.fires = at;
        self.sleep.as_mut().reset(at);
    }

    /// Ready once the deadline has passed. `now`: the time, if the caller
    /// has just read it.
    fn poll_passed(&mut self, cx: &mut Context<'_>, mut now: Option<Instant>) -> Poll<()> {
        loop {
            let timer = self.sleep.as_mut();
            std::task::ready!(poll_timer(
                timer,
                self.fires,
                &mut self.armed,
                now.take(),
                cx
            ));
            let now = Instant::now();
            if now >= self.at {
                return Poll::Ready(());
            }
            let next = self.at.min(now + self.step);
            self.reset(next);
        }
    }

    /// Completes once the deadline has passed; `now` as in `poll_passed`,
    /// for the first poll.
    fn passed(&mut self, mut now: Option<Instant>) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| self.poll_passed(cx, now.take()))
    }

    /// `f`'s output, or `None` if the deadline passes first.
    async fn bound<F: Future>(&mut self, f: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            _ = self.passed(None) => None,
        }
    }
}

/// A parsed head: what the request needs, owned.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

/// Parses a complete head from `buf`; `Ok(None)` when more bytes are
/// needed. Returns the head and its length.
fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, Stop> {
    #[cfg(test)]
    tests::PARSES.with(|n| n.set(n.get() + 1));
    // Left uninitialized: httparse writes the ones it fills (zeroing 4 KiB
    // of slots was a visible share of every request). On the stack up to
    // the usual limits; a larger `max_header_count` takes them from the heap.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
    let mut more = Vec::new();
    let slots = match slots.get_mut(..limits.max_header_count) {
        Some(s) => s,
        None => {
            more.resize_with(limits.max_header_count, std::mem::MaybeUninit::uninit);
            &mut more[..]
        }
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head() {
                return Err(Stop::HeadTooLarge);
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Stop::HeadTooLarge),
        Err(_) => return Err(Stop::BadRequest),
    };
    if len > limits.max_head() {
        return Err(Stop::HeadTooLarge);
    }
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(Stop::BadRequest)?;
    let uri = req
        .path
        .and_then(|p| Uri::from_maybe_shared(Bytes::copy_from_slice(p.as_bytes())).ok())
        .ok_or(Stop::BadRequest)?;
    let version = match req.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Stop::BadRequest)?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| Stop::BadRequest)?;
        headers.append(name, value);
    }
    Ok(Some((
        Head {
            method,
            uri,
            version,
            headers,
        },
        len,
    )))
}

/// What Go's server (and so etcd) refuses in a head before its body:
/// HTTP/1.1 without exactly one well-formed `Host`, and an `Expect` other
/// than `100-continue`.
fn host_and_expect(head: &Head) -> Result<(), Stop> {
    let mut hosts = head.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if head.version == Version::HTTP_11 => {
            return Err(Stop::BadRequestBecause("missing required Host header"));
        }
        (Some(_), Some(_)) => return Err(Stop::BadRequest),
        (Some(host), None) if !host.as_bytes().iter().all(|b| valid_host_byte(*b)) => {
            return Err(Stop::BadRequestBecause("malformed Host header"));
        }
        _ => {}
    }
    if head
        .headers
        .get(EXPECT)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        return Err(Stop::ExpectationFailed);
    }
    Ok(())
}

/// A byte a `Host` value may hold: a name, an IP literal and a port (the
/// set Go accepts).
fn valid_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b)
}

/// How the request body is framed.
enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn framing(head: &Head) -> Result<Framing, Stop> {
    let te = head.headers.get_all(TRANSFER_ENCODING);
    if te.iter().next().is_some() {
        if head.version == Version::HTTP_10 || head.headers.contains_key(CONTENT_LENGTH) {
            return Err(Stop::BadRequest);
        }
        // Exactly one coding, chunked: keygate knows no other.
        let mut codings = Vec::new();
        for v in te {
            let v = v.to_str().map_err(|_| Stop::BadRequest)?;
            codings.extend(v.split(',').map(str::trim).filter(|t| !t.is_empty()));
        }
        if !matches!(codings[..], [c] if c.eq_ignore_ascii_case("chunked")) {
            return Err(Stop::BadRequest);
        }
        return Ok(Framing::Chunked);
    }
    let mut length = None;
    for v in head.headers.get_all(CONTENT_LENGTH) {
        for part in v.to_str().map_err(|_| Stop::BadRequest)?.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Stop::BadRequest);
            }
            let n: u64 = part.parse().map_err(|_| Stop::BadRequest)?;
            if length.is_some_and(|l| l != n) {
                return Err(Stop::BadRequest);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        None | Some(0) => Framing::None,
        Some(n) => Framing::Length(usize::try_from(n).unwrap_or(usize::MAX)),
    })
}

/// Reads one whole request (head and body).
async fn read_request<S>(
    io: &mut S,
    carry: &mut Vec<u8>,
    limits: &Limits,
) -> Result<Request<Bytes>, Stop>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    // The head: straight from the decrypted record when it holds all of it.
    let head = loop {
        if !carry.is_empty() {
            if let Some((head, len)) = parse_head(carry, limits)? {
                carry.drain(..len);
                break head;
            }
        } else {
            let buf = fill(io).await?;
            if let Some((head, len)) = parse_head(buf, limits)? {
                Pin::new(&mut *io).consume(len);
                break head;
            }
        }
        // More of the head: parsed again only once a line has ended (or it
        // outgrew its limit), so a head trickled in a byte per record costs
        // a parse per line, not per byte.
        loop {
            let buf = fill(io).await?;
            let n = buf.len();
            let line_ended = buf.contains(&b'\n');
            carry.extend_from_slice(buf);
            Pin::new(&mut *io).consume(n);
            if line_ended || carry.len() > limits.max_head() {
                break;
            }
        }
    };
    host_and_expect(&head)?;
    let framing = framing(&head)?;
    let body = match framing {
        Framing::None => Bytes::new(),
        Framing::Length(n) if n > limits.max_body_bytes => return Err(Stop::BodyTooLarge),
        Framing::Length(n) => {
            continue_if_expected(io, &head).await?;
            // Grown as the body arrives: a length is only a promise.
            let mut body = Vec::with_capacity(n.min(64 << 10));
            take_from_carry(carry, &mut body, n);
            while body.len() < n {
                let buf = fill(io).await?;
                let take = buf.len().min(n - body.len());
                body.extend_from_slice(&buf[..take]);
                Pin::new(&mut *io).consume(take);
            }
            Bytes::from(body)
        }
        Framing::Chunked => {
            continue_if_expected(io, &head).await?;
            read_chunked(io, carry, limits).await?
        }
    };
    let mut req = Request::new(body);
    *req.method_mut() = head.method;
    *req.uri_mut() = head.uri;
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers;
    Ok(req)
}

fn take_from_carry(carry: &mut Vec<u8>, out: &mut Vec<u8>, want: usize) {
    let take = carry.len().min(want.saturating_sub(out.len()));
    out.extend_from_slice(&carry[..take]);
    carry.drain(..take);
}

/// `Expect: 100-continue` on HTTP/1.1: tell the client to send the body.
async fn continue_if_expected<S>(io: &mut S, head: &Head) -> Result<(), Stop>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let expects = head
        .headers
        .get(hyper::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects && head.version == Version::HTTP_11 {
        io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        io.flush().await?;
    }
    Ok(())
}

/// The next decrypted bytes; the client closing mid-request is `Gone`.
async fn fill<S>(io: &mut S) -> Result<&[u8], Stop>
where
    S: AsyncBufRead + Unpin,
{
    match io.fill_buf().await? {
        [] => Err(Stop::Gone),
        b => Ok(b),
    }
}

/// Reads one byte-oriented piece of a chunked body: from `carry` first,
/// then from the connection.
struct ChunkReader<'a, S> {
    io: &'a mut S,
    carry: &'a mut Vec<u8>,
}

impl<S: AsyncBufRead + AsyncWrite + Unpin> ChunkReader<'_, S> {
    /// A line without its CRLF (at most `MAX_CHUNK_LINE` bytes).
    async fn line(&mut self) -> Result<Vec<u8>, Stop> {
        let mut line = Vec::new();
        loop {
            let (chunk, from_carry) = if self.carry.is_empty() {
                (fill(self.io).await?, false)
            } else {
                (&self.carry[..], true)
            };
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            line.extend_from_slice(&chunk[..take]);
            if from_carry {
                self.carry.drain(..take);
            } else {
                Pin::new(&mut *self.io).consume(take);
            }
            if line.len() > MAX_CHUNK_LINE {
                return Err(Stop::BadRequest);
            }
            if done {
                if line.len() < 2 || line[line.len() - 2] != b'\r' {
                    return Err(Stop::BadRequest);
                }
                line.truncate(line.len() - 2);
                return Ok(line);
            }
        }
    }

    /// Exactly `n` bytes appended to `out`.
    async fn exact(&mut self, out: &mut Vec<u8>, n: usize) -> Result<(), Stop> {
        let want = out.len() + n;
        take_from_carry(self.carry, out, want);
        while out.len() < want {
            let buf = fill(self.io).await?;
            let take = buf.len().min(want - out.len());
            out.extend_from_slice(&buf[..take]);
            Pin::new(&mut *self.io).consume(take);
        }
        Ok(())
    }
}

async fn read_chunked<S>(io: &mut S, carry: &mut Vec<u8>, limits: &Limits) -> Result<Bytes, Stop>
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let mut r = ChunkReader { io, carry };
    let mut body = Vec::new();
    loop {
        let line = r.line().await?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size).map_err(|_| Stop::BadRequest)?;
        let size = size.trim_matches(|c| c == ' ' || c == '\t');
        if size.is_empty() || size.len() > 15 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Stop::BadRequest);
        }
        let size = usize::from_str_radix(size, 16).map_err(|_| Stop::BadRequest)?;
        if size == 0 {
            // Trailers, ignored, up to the empty line.
            let mut trailer_bytes = 0;
            loop {
                let t = r.line().await?;
                if t.is_empty() {
                    return Ok(Bytes::from(body));
                }
                trailer_bytes += t.len();
                if trailer_bytes > limits.max_header_bytes {
                    return Err(Stop::HeadTooLarge);
                }
            }
        }
        if body
            .len()
            .checked_add(size)
            .is_none_or(|n| n > limits.max_body_bytes)
        {
            return Err(Stop::BodyTooLarge);
        }
        r.exact(&mut body, size).await?;
        let mut crlf = Vec::with_capacity(2);
        r.exact(&mut crlf, 2).await?;
        if crlf != b"\r\n" {
            return Err(Stop::BadRequest);
        }
    }
}

/// Encodes the status line and headers. `length`: the Content-Length to
/// send when the response has none (`None`: chunked, or no framing at all
/// for HTTP/1.0).
fn encode_head(
    out: &mut Vec<u8>,
    resp: &Response<ApiBody>,
    version: Version,
    length: Option<usize>,
    close: bool,
) {
    let status = resp.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in resp.headers() {
        if name == CONNECTION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !resp.headers().contains_key(CONTENT_LENGTH) {
        match length {
            Some(n) => {
                let _ = write!(out, "content-length: {n}\r\n");
            }
            None if version == Version::HTTP_11 => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n")
            }
            None => {}
        }
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if version == Version::HTTP_10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    if !resp.headers().contains_key(DATE) {
        out.extend_from_slice(b"date: ");
        date::append(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes a whole response in one piece.
async fn write_response<S>(
    io: &mut S,
    resp: Response<ApiBody>,
    version: Version,
    is_head: bool,
    close: bool,
) -> bool
where
    S: AsyncWrite + Unpin,
{
    // A watch here is one answered to HEAD: its headers, no body.
    let body = match resp.body() {
        ApiBody::Full(b) => b.clone().unwrap_or_default(),
        ApiBody::Watch(_) => Bytes::new(),
    };
    let mut out = Vec::with_capacity(256 + if is_head { 0 } else { body.len() });
    encode_head(&mut out, &resp, version, Some(body.len()), close);
    if !is_head {
        out.extend_from_slice(&body);
    }
    io.write_all(&out).await.is_ok() && io.flush().await.is_ok()
}

/// What a waiting watch wakes up for.
enum Wake {
    Frame(Option<Bytes>),
    ClientGone,
    Shutdown,
}

/// Writes a streamed (watch) response: the head at once, then each event
/// as it comes, until the body ends, the client leaves or shutdown.
async fn write_stream<S>(
    io: &mut S,
    resp: Response<ApiBody>,
    version: Version,
    close: bool,
    carry: &mut Vec<u8>,
    limits: &Limits,
    stop: &StopSignal,
) -> bool
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    let chunked = version == Version::HTTP_11;
    let mut out = Vec::with_capacity(256);
    encode_head(&mut out, &resp, version, None, close);
    let mut body = resp.into_body();
    if io.write_all(&out).await.is_err() || io.flush().await.is_err() {
        return false;
    }
    drop(out);
    // While the watch waits, the connection is read too: to notice the
    // client leaving (which ends the watch) and to keep what it pipelines.
    let mut reading = true;
    loop {
        let wake = std::future::poll_fn(|cx: &mut Context<'_>| {
            if let Poll::Ready(f) = Pin::new(&mut body).poll_frame(cx) {
                let data = f.and_then(|f| f.ok()).and_then(|f| f.into_data().ok());
                return Poll::Ready(Wake::Frame(data));
            }
            if poll_client_gone(&mut *io, carry, limits, &mut reading, cx).is_ready() {
                return Poll::Ready(Wake::ClientGone);
            }
            if stop.poll_stopping(cx).is_ready() {
                return Poll::Ready(Wake::Shutdown);
            }
            Poll::Pending
        })
        .await;
        let mut out = Vec::new();
        let stopped = matches!(wake, Wake::Shutdown);
        let end = match wake {
            Wake::ClientGone => return false,
            Wake::Shutdown => true,
            Wake::Frame(None) => true,
            Wake::Frame(Some(data)) => {
                if data.is_empty() {
                    continue;
                }
                if chunked {
                    out.reserve(data.len() + 32);
                    chunk(&mut out, &data, false);
                } else {
                    out.extend_from_slice(&data);
                }
                // A one-shot watch ends with its event: send both at once.
                body.is_end_stream()
            }
        };
        if end && chunked {
            chunk(&mut out, &[], true);
        }
        if !out.is_empty() && (io.write_all(&out).await.is_err() || io.flush().await.is_err()) {
            return false;
        }
        if end {
            return chunked && !stopped;
        }
    }
}

/// A one-shot watch (answered by one event, then ended).
fn is_once(resp: &Response<ApiBody>) -> bool {
    matches!(resp.body(), ApiBody::Watch(w) if w.is_once())
}

/// A parked connection: shared by its task and the writer the store's
/// fan-out runs.
struct ParkedIo<S> {
    io: S,
    /// What the writer could not write without waiting (the task writes
    /// it).
    rest: Vec<u8>,
    /// The writer's write failed.
    failed: bool,
}

/// Writes what it can of `out` now, without waiting (the waker is a
/// no-op: the task that owns the connection finishes the write); what is
/// left goes to `rest`. False on an error.
fn write_now<S: AsyncWrite + Unpin>(io: &mut S, out: &[u8], rest: &mut Vec<u8>) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut done = 0;
    while done < out.len() {
        match Pin::new(&mut *io).poll_write(&mut cx, &out[done..]) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return false,
            Poll::Ready(Ok(n)) => done += n,
            Poll::Pending => break,
        }
    }
    rest.extend_from_slice(&out[done..]);
    !matches!(Pin::new(&mut *io).poll_flush(&mut cx), Poll::Ready(Err(_)))
}

/// What a parked watch wakes up for.
enum ParkedWake {
    Came(Parked),
    ClientGone,
    Shutdown,
}

/// Writes a one-shot watch's answer: the head at once; then the
/// connection is parked with the watch, so that the event is written by
/// the store's fan-out as it comes, without waking this task first (with
/// 10,000 watches, that put every task's state in the way of the last
/// event). Meanwhile this task still reads the connection (to notice the
/// client leaving, and keep what it pipelines) and minds shutdown. Gives
/// the connection back with whether it may serve another request; `None`
/// when the client left.
async fn write_parked<S>(
    mut io: S,
    resp: Response<ApiBody>,
    close: bool,
    carry: &mut Vec<u8>,
    limits: &Limits,
    stop: &StopSignal,
) -> (Option<S>, bool)
where
    S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut out = Vec::with_capacity(256);
    encode_head(&mut out, &resp, Version::HTTP_11, None, close);
    let ApiBody::Watch(mut body) = resp.into_body() else {
        return (Some(io), false);
    };
    if io.write_all(&out).await.is_err() || io.flush().await.is_err() {
        return (None, false);
    }
    drop(out);
    let shared = Arc::new(std::sync::Mutex::new(ParkedIo {
        io,
        rest: Vec::new(),
        failed: false,
    }));
    let writer = shared.clone();
    body.park(Box::new(move |data: Bytes| {
        let mut out = Vec::with_capacity(data.len() + 16);
        chunk(&mut out, &data, true);
        // A poisoned lock: the task's own reading panicked; the bytes
        // are still the connection's.
        let mut parked = writer.lock().unwrap_or_else(|p| p.into_inner());
        let p = &mut *parked;
        p.failed = !write_now(&mut p.io, &out, &mut p.rest);
    }));
    let wake = wait_parked(&mut body, &shared, carry, limits, stop).await;
    // The writer is gone (run, or taken back): the connection is this
    // task's alone again.
    let Ok(parked) = Arc::try_unwrap(shared) else {
        return (None, false);
    };
    let ParkedIo {
        mut io,
        rest,
        failed,
    } = parked.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut out = rest;
    let ok = match wake {
        ParkedWake::ClientGone => return (None, false),
        ParkedWake::Came(Parked::Written) if failed => return (None, false),
        ParkedWake::Came(Parked::Written) => true,
        ParkedWake::Came(Parked::Event(data)) => {
            chunk(&mut out, &data, true);
            true
        }
        ParkedWake::Came(Parked::Ended) => {
            chunk(&mut out, &[], true);
            true
        }
        ParkedWake::Shutdown => {
            chunk(&mut out, &[], true);
            false
        }
    };
    drop(body);
    if (!out.is_empty() && io.write_all(&out).await.is_err()) || io.flush().await.is_err() {
        return (None, false);
    }
    (Some(io), ok)
}

/// Waits for what comes to a parked watch, reading the connection
/// meanwhile (when the writer is not using it) and minding shutdown.
async fn wait_parked<S>(
    body: &mut WatchBody,
    shared: &std::sync::Mutex<ParkedIo<S>>,
    carry: &mut Vec<u8>,
    limits: &Limits,
    stop: &StopSignal,
) -> ParkedWake
where
    S: AsyncBufRead + Unpin,
{
    let mut reading = true;
    let mut stopping = false;
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if let Poll::Ready(p) = body.poll_parked(cx) {
            return Poll::Ready(ParkedWake::Came(p));
        }
        // Busy: the writer is writing, and wakes this task when done.
        let parked = match reading.then(|| shared.try_lock()) {
            Some(Ok(g)) => Some(g),
            Some(Err(std::sync::TryLockError::Poisoned(p))) => Some(p.into_inner()),
            Some(Err(std::sync::TryLockError::WouldBlock)) | None => None,
        };
        if let Some(mut parked) = parked {
            if poll_client_gone(&mut parked.io, carry, limits, &mut reading, cx).is_ready() {
                return Poll::Ready(ParkedWake::ClientGone);
            }
        }
        stopping = stopping || stop.poll_stopping(cx).is_ready();
        // A writer already writing finishes first.
        if stopping && body.unpark() {
            return Poll::Ready(ParkedWake::Shutdown);
        }
        Poll::Pending
    })
    .await
}

/// Reads what a client sends while its watch waits, to notice it leaving
/// (ready then) and to keep what it pipelines in `carry` — up to a head's
/// worth, after which `reading` turns false and nothing more is read
/// until the watch ends.
fn poll_client_gone<S: AsyncBufRead + Unpin>(
    io: &mut S,
    carry: &mut Vec<u8>,
    limits: &Limits,
    reading: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<()> {
    while *reading {
        match Pin::new(&mut *io).poll_fill_buf(cx) {
            Poll::Ready(Ok([])) | Poll::Ready(Err(_)) => return Poll::Ready(()),
            Poll::Ready(Ok(b)) => {
                let n = b.len();
                carry.extend_from_slice(b);
                Pin::new(&mut *io).consume(n);
                *reading = carry.len() <= limits.max_head();
            }
            Poll::Pending => break,
        }
    }
    Poll::Pending
}

/// Appends `data` as one chunk, and the end of the body when `end`.
fn chunk(out: &mut Vec<u8>, data: &[u8], end: bool) {
    if !data.is_empty() {
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    if end {
        out.extend_from_slice(b"0\r\n\r\n");
    }
}

/// The `Date` header, formatted once a second.
mod date {
    use std::cell::RefCell;

    thread_local! {
        static CACHE: RefCell<(i64, [u8; 29])> = const { RefCell::new((i64::MIN, [0; 29])) };
    }

    /// Appends the current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
    pub(super) fn append(out: &mut Vec<u8>) {
        let now = crate::store::now_nanos().div_euclid(1_000_000_000);
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != now {
                c.1 = format(now);
                c.0 = now;
            }
            out.extend_from_slice(&c.1);
        });
    }

    fn format(secs: i64) -> [u8; 29] {
        let t = time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let s = format!(
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            DAYS[t.weekday().number_days_from_monday() as usize],
            t.day(),
            MONTHS[u8::from(t.month()) as usize - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let mut b = [b' '; 29];
        let n = s.len().min(29);
        b[..n].copy_from_slice(&s.as_bytes()[..n]);
        b
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn imf_fixdate() {
            assert_eq!(&super::format(784111777), b"Sun, 06 Nov 1994 08:49:37 GMT");
            assert_eq!(&super::format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        }
    }
}

#[cfg(test)]
mod tests;
