//! Serving connections so that the socket holds under load and abuse.
//!
//! * **Timeouts on every connection**: a request head must arrive within `header_timeout` of
//!   the connection being ready for one (a new connection, or one kept alive after an
//!   answer: so an idle connection is closed after that long too); a body must arrive within
//!   `body_timeout` ([`super::answer`]); a peer that stops reading its answer for
//!   `write_timeout` is dropped ([`TimedIo`]).
//! * **A connection limit below the file limit** ([`connection_limit`]): descriptors never
//!   run out, so the listener never stalls on `EMFILE`. At the limit, a new connection closes
//!   the connection that has been idle longest (no request under way, no answer being sent)
//!   and is served; only when every connection is busy is it answered `503` and closed. So
//!   a thousand idle connections cannot lock anyone out, and nobody waits behind them.
//! * **Shutdown** stops accepting, lets requests under way finish (at most
//!   [`SHUTDOWN_GRACE`]) and closes the rest.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};

/// Who is on the other end of a connection (for the request log).
#[derive(Clone, Debug)]
pub struct Peer(pub String);

/// How long connections may take, and how many there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From "ready for a request" (new or kept alive) to its complete head.
    pub header_timeout: Duration,
    /// From the head to the end of the body.
    pub body_timeout: Duration,
    /// A write that makes no progress for this long drops the connection.
    pub write_timeout: Duration,
    /// Open connections at most (both listeners together); capped by [`connection_limit`].
    pub max_connections: usize,
}

/// Connections allowed when the file limit leaves room.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Descriptors kept for everything else: the database, the serial port, logs, the
/// simulator, the listeners themselves.
pub const RESERVED_FDS: u64 = 128;

/// How long requests under way may take to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// The connection limit for a process that may open `nofile` descriptors: what is asked,
/// but always [`RESERVED_FDS`] below the file limit (and at least 8).
pub fn connection_limit(asked: usize, nofile: u64) -> usize {
    let room = nofile.saturating_sub(RESERVED_FDS).max(8);
    asked.clamp(1, usize::try_from(room).unwrap_or(usize::MAX))
}

/// The soft limit on open files (RLIMIT_NOFILE) of this process.
pub fn file_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        // `rlim_t` is 32 bits wide on armhf, 64 elsewhere.
        #[allow(clippy::useless_conversion)]
        u64::from(rl.rlim_cur)
    } else {
        1024
    }
}

/// What a listener hands over: a stream of either kind.
pub enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

/// A listener of either kind.
pub enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    async fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept().await?;
                let peer = match s.peer_cred() {
                    Ok(c) => Peer(format!("uid={} gid={}", c.uid(), c.gid())),
                    Err(_) => Peer("uid=? gid=?".into()),
                };
                Ok((Stream::Unix(s), peer))
            }
            Listener::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), Peer(format!("tcp {addr}"))))
            }
        }
    }
}

/// The open connections, oldest first, and whether each is busy.
#[derive(Default)]
pub struct Connections {
    state: Mutex<ConnState>,
}

#[derive(Default)]
struct ConnState {
    next: u64,
    open: BTreeMap<u64, Conn>,
}

struct Conn {
    /// Requests under way, counting answers still being sent.
    busy: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub struct AllBusy;

/// An admitted connection; dropping it forgets it.
pub struct Admitted {
    conns: Arc<Connections>,
    id: u64,
    pub busy: Arc<AtomicUsize>,
    pub close: Arc<Notify>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.conns.lock().open.remove(&self.id);
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admit a new connection; at `max`, close the connection idle longest to make room.
    pub fn admit(self: &Arc<Self>, max: usize) -> Result<Admitted, AllBusy> {
        let mut s = self.lock();
        if s.open.len() >= max {
            let idle = s
                .open
                .iter()
                .find(|(_, c)| c.busy.load(Ordering::SeqCst) == 0)
                .map(|(id, _)| *id)
                .ok_or(AllBusy)?;
            if let Some(c) = s.open.remove(&idle) {
                c.close.notify_one();
            }
        }
        let id = s.next;
        s.next += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        s.open.insert(
            id,
            Conn {
                busy: busy.clone(),
                close: close.clone(),
            },
        );
        Ok(Admitted {
            conns: self.clone(),
            id,
            busy,
            close,
        })
    }

    pub fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// Counts a request as under way until dropped (it travels with the answer's body).
struct Busy(Arc<AtomicUsize>);

impl Busy {
    fn new(c: &Arc<AtomicUsize>) -> Busy {
        c.fetch_add(1, Ordering::SeqCst);
        Busy(c.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accept and serve connections on `listener` until `stop` turns true; then finish what is
/// under way (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(
    listener: Listener,
    router: Router,
    limits: Limits,
    conns: Arc<Connections>,
    mut stop: watch::Receiver<bool>,
) {
    let max = connection_limit(limits.max_connections, file_limit());
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut stop) => break,
        };
        // Reap finished connection tasks as we go.
        while tasks.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Out of descriptors (another part of the process) or a connection reset
                // before it was accepted: wait a little rather than spin.
                tracing::warn!(error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        match conns.admit(max) {
            Ok(admitted) => {
                let router = router.clone();
                let stop = stop.clone();
                tasks.spawn(connection(stream, peer, router, limits, admitted, stop));
            }
            Err(AllBusy) => {
                tracing::warn!(peer = %peer.0, max, "API: every connection is busy; refusing one");
                tasks.spawn(refuse(stream, limits.write_timeout));
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn connection(
    stream: Stream,
    peer: Peer,
    router: Router,
    limits: Limits,
    admitted: Admitted,
    mut stop: watch::Receiver<bool>,
) {
    let busy = admitted.busy.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let guard = Busy::new(&busy);
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
            let router = router.clone();
            async move {
                let response = tower::ServiceExt::oneshot(router, req.map(Body::new)).await?;
                // The request stays under way until its answer has been sent.
                Ok::<_, Infallible>(response.map(move |b| {
                    Body::new(b.map_frame(move |f| {
                        let _ = &guard;
                        f
                    }))
                }))
            }
        });
    let io = TokioIo::new(TimedIo::new(stream, limits.write_timeout));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        // Closed to make room for a new connection: it was idle.
        _ = admitted.close.notified() => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
        }
    }
}

/// Every connection is busy: say so and close.
async fn refuse(mut stream: Stream, write_timeout: Duration) {
    use tokio::io::AsyncWriteExt;
    let body = r#"{"error":{"type":"too_many_connections","message":"every connection of the API is busy; try again shortly"},"ok":false}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n{}: {}\r\n\r\n{body}",
        body.len(),
        super::REQUEST_ID,
        uuid::Uuid::new_v4(),
    );
    let _ = tokio::time::timeout(write_timeout, async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A stream whose writes fail when they make no progress for `timeout` (a peer that stopped
/// reading). Reads are bounded by the header and body timeouts instead.
pub struct TimedIo {
    inner: Stream,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedIo {
    pub fn new(inner: Stream, timeout: Duration) -> Self {
        TimedIo {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// A write returned Pending: fail once it has been pending for the whole timeout.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl TimedIo {
    /// A write's outcome, with the stall clock: started when the peer stops taking bytes,
    /// cleared when it takes some, an error when it has not for `timeout`.
    fn timed<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => match self.check_stall(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.timed(cx, r)
    }

    /// Vectored, as the sockets are: hyper then queues an answer's body as it is instead of
    /// copying it into the connection's write buffer (which kept every keep-alive
    /// connection's buffer at the size of the largest list page it had sent).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.timed(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.timed(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tcp(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_stays_below_the_file_limit() {
        assert_eq!(connection_limit(512, 1024), 512);
        assert_eq!(connection_limit(512, 256), 128);
        assert_eq!(connection_limit(512, 100), 8);
        assert_eq!(connection_limit(512, u64::MAX), 512);
        assert_eq!(connection_limit(0, 1024), 1);
        assert!(file_limit() > 0);
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_is_dropped() {
        use tokio::io::AsyncWriteExt;
        let (a, _b) = tokio::net::UnixStream::pair().unwrap();
        let mut io = TimedIo::new(Stream::Unix(a), Duration::from_millis(200));
        let chunk = vec![0u8; 64 * 1024];
        let r = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                io.write_all(&chunk).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        })
        .await;
        let e = r.expect("the write gave up by itself").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    /// Vectored writes reach the socket whole and are timed like plain ones (hyper queues
    /// answer bodies instead of copying them only when the IO says it is vectored).
    #[tokio::test]
    async fn vectored_writes_pass_through_and_stall_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let mut io = TimedIo::new(Stream::Unix(a), Duration::from_millis(200));
        assert!(io.is_write_vectored());
        let parts = [io::IoSlice::new(b"head "), io::IoSlice::new(b"body")];
        let n = io.write_vectored(&parts).await.unwrap();
        assert_eq!(n, 9);
        let mut got = [0u8; 9];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"head body");
        let chunk = vec![0u8; 64 * 1024];
        let r = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let n = io.write_vectored(&[io::IoSlice::new(&chunk)]).await?;
                assert!(n > 0);
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        })
        .await;
        let e = r.expect("the write gave up by itself").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn at_the_limit_the_oldest_idle_connection_makes_room() {
        let conns = Arc::new(Connections::default());
        let a = conns.admit(2).unwrap();
        let b = conns.admit(2).unwrap();
        let _busy_a = Busy::new(&a.busy);
        // a is busy: b (idle) is closed for c.
        let c = conns.admit(2).unwrap();
        assert_eq!(conns.open(), 2);
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let seen = tokio::time::timeout(Duration::from_millis(100), b.close.notified()).await;
            closed.store(seen.is_ok(), Ordering::SeqCst);
        });
        assert!(closed.load(Ordering::SeqCst), "b was not told to close");
        // Both busy: the next one is refused.
        let _busy_c = Busy::new(&c.busy);
        assert_eq!(conns.admit(2).err(), Some(AllBusy));
        // b's own drop does not forget c, and a closed connection frees its place.
        drop(b);
        assert_eq!(conns.open(), 2);
        drop(a);
        assert_eq!(conns.open(), 1);
        assert!(conns.admit(2).is_ok());
    }
}
