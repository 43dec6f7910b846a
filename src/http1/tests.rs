use super::*;

fn limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        max_header_bytes: 16384,
        max_header_count: 100,
        max_body_bytes: 64,
    }
}

thread_local! {
    /// How many times `parse_head` ran on this thread.
    pub(super) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Reads one request from `input` (as decrypted bytes would arrive).
fn read(input: &[u8]) -> Result<(Request<Bytes>, Vec<u8>), u16> {
    read_with(input, 7, &limits())
}

/// [`read`], the reader handing out `piece` bytes at a time, under `limits`.
fn read_with(
    input: &[u8],
    piece: usize,
    limits: &Limits,
) -> Result<(Request<Bytes>, Vec<u8>), u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(input).await.unwrap();
        drop(client);
        let mut io = tokio::io::BufReader::with_capacity(piece, server);
        let mut carry = Vec::new();
        match read_request(&mut io, &mut carry, limits).await {
            Ok(req) => {
                let mut rest = carry;
                io.read_to_end(&mut rest).await.unwrap();
                Ok((req, rest))
            }
            Err(stop) => Err(stop.answer(limits).map_or(0, |r| r.status().as_u16())),
        }
    })
}

use tokio::io::AsyncReadExt;

#[test]
fn heads_split_across_reads_are_gathered() {
    // The reader hands out 7 bytes at a time.
    let (req, rest) = read(b"GET /v2/keys/a?x=1 HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\nNEXT").unwrap();
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri().path(), "/v2/keys/a");
    assert_eq!(req.uri().query(), Some("x=1"));
    assert_eq!(req.headers()["a"], "b");
    assert_eq!(req.version(), Version::HTTP_11);
    assert_eq!(rest, b"NEXT");
}

#[test]
fn bodies_by_length_and_chunked() {
    let (req, rest) =
        read(b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\nvalue=xGET").unwrap();
    assert_eq!(req.body().as_ref(), b"value=x");
    assert_eq!(rest, b"GET");
    let (req, rest) =
        read(b"PUT /k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nval\r\n4;e=1\r\nue=x\r\n0\r\nT: 1\r\n\r\nGET")
            .unwrap();
    assert_eq!(req.body().as_ref(), b"value=x");
    assert_eq!(rest, b"GET");
}

#[test]
fn framing_errors() {
    let cases: [(&[u8], u16); 9] = [
        (
            b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            b"PUT /k HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (
            b"PUT /k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        (b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 2\r\n\r\nab", 400),
        (b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
        (b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n", 413),
        (
            b"PUT /k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n",
            413,
        ),
        (
            b"PUT /k HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
            400,
        ),
        // The client leaves mid-body.
        (b"PUT /k HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nab", 0),
    ];
    for (input, want) in cases {
        let got = read(input).map(|_| ()).unwrap_err();
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn head_limits() {
    let many: String = (0..101).map(|i| format!("H{i}: v\r\n")).collect();
    let input = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    assert_eq!(read(input.as_bytes()).map(|_| ()).unwrap_err(), 431);
    let long = format!("GET / HTTP/1.1\r\nHost: h\r\nA: {}", "x".repeat(90_000));
    assert_eq!(read(long.as_bytes()).map(|_| ()).unwrap_err(), 431);
}

#[test]
fn a_head_trickled_a_byte_at_a_time_is_parsed_once_per_line() {
    // Parsing the whole head again at every byte would cost its length
    // squared: 20,000 parses of up to 20 KB here.
    let input = format!(
        "GET /v2/keys/a HTTP/1.1\r\nHost: h\r\nA: {}\r\n\r\n",
        "x".repeat(20_000)
    );
    PARSES.with(|n| n.set(0));
    let (req, _) = read_with(input.as_bytes(), 1, &limits()).unwrap();
    assert_eq!(req.headers()["a"].len(), 20_000);
    let parses = PARSES.with(|n| n.get());
    assert!(parses <= 8, "{parses} parses of a three-line head");
    // A head that never ends is refused once it outgrows the limit.
    let endless = format!("GET / HTTP/1.1\r\nHost: h\r\nA: {}", "x".repeat(90_000));
    PARSES.with(|n| n.set(0));
    assert_eq!(
        read_with(endless.as_bytes(), 1, &limits())
            .map(|_| ())
            .unwrap_err(),
        431
    );
    let parses = PARSES.with(|n| n.get());
    assert!(parses <= 8, "{parses} parses of an endless head");
}

#[test]
fn more_headers_than_the_stack_holds_when_the_limit_allows_them() {
    let limits = Limits {
        max_header_count: 200,
        max_header_bytes: 1 << 20,
        ..limits()
    };
    let head = |n: usize| {
        let many: String = (0..n).map(|i| format!("H{i}: v\r\n")).collect();
        // HTTP/1.0: no Host needed, so all `n` headers are the test's.
        format!("GET / HTTP/1.0\r\n{many}\r\n")
    };
    let (req, _) = read_with(head(200).as_bytes(), 4096, &limits).unwrap();
    assert_eq!(req.headers().len(), 200);
    assert_eq!(req.headers()["h199"], "v");
    assert_eq!(
        read_with(head(201).as_bytes(), 4096, &limits)
            .map(|_| ())
            .unwrap_err(),
        431
    );
}

#[test]
fn an_error_answer_the_client_does_not_read_ends_at_the_deadline() {
    // The client sends a bad request and never reads: the 400 cannot be
    // written (16 bytes of room), and the connection must still end at the
    // request's deadline. Time is paused: it advances when all waits.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(16);
        let mut io = tokio::io::BufReader::new(server);
        let mut deadline = Deadline::new(&limits());
        deadline.set(Instant::now() + limits().request_timeout);
        let resp = Stop::BadRequest.answer(&limits()).unwrap();
        let started = Instant::now();
        let ended = tokio::time::timeout(
            Duration::from_secs(600),
            answer_stop(&mut io, resp, &mut deadline),
        )
        .await;
        assert!(ended.is_ok(), "the unread answer held the connection");
        let took = started.elapsed();
        assert!(
            took >= limits().request_timeout && took < limits().request_timeout * 2,
            "ended after {took:?}"
        );
        drop(client);
    });
}

#[test]
fn close_is_read_from_the_request() {
    let req = |v: Version, c: Option<&str>| {
        let mut r = Request::new(());
        *r.version_mut() = v;
        if let Some(c) = c {
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_str(c).unwrap());
        }
        wants_close(&r)
    };
    assert!(!req(Version::HTTP_11, None));
    assert!(req(Version::HTTP_11, Some("Close")));
    assert!(req(Version::HTTP_11, Some("te, close")));
    assert!(req(Version::HTTP_10, None));
    assert!(!req(Version::HTTP_10, Some("keep-alive")));
}

/// What a connection holds while it waits is what 10,000 watchers cost:
/// keep the connection's own future small (the TLS stream comes on top).
#[test]
fn a_waiting_connection_stays_small() {
    fn size_of_return<A, B, C, D, E, F>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }
    type Io = tokio::io::BufReader<tokio::io::DuplexStream>;
    let size = size_of_return(serve::<Io>);
    assert!(size <= 2048, "serve's future is {size} bytes");
}

#[test]
fn a_parked_write_leaves_what_would_wait_to_the_task() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, mut server) = tokio::io::duplex(16);
        let out: Vec<u8> = (0u8..40).collect();
        let mut rest = Vec::new();
        assert!(write_now(&mut server, &out, &mut rest));
        assert_eq!(rest, &out[16..], "what did not fit is kept, in order");
        let mut got = vec![0; 16];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, &out[..16]);
        // A closed peer is an error.
        drop(client);
        let mut rest = Vec::new();
        assert!(!write_now(&mut server, b"x", &mut rest));
    });
}

#[test]
fn host_and_expect_are_checked_as_go_checks_them() {
    let refused: [(&[u8], u16); 5] = [
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n", 417),
        (
            b"PUT /k HTTP/1.0\r\nExpect: 100-continue-ish\r\nContent-Length: 1\r\n\r\nx",
            417,
        ),
    ];
    for (input, want) in refused {
        let got = read(input).map(|_| ()).unwrap_err();
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
    }
    let accepted: [&[u8]; 3] = [
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:2379\r\n\r\n",
    ];
    for input in accepted {
        assert!(read(input).is_ok(), "{:?}", String::from_utf8_lossy(input));
    }
}
