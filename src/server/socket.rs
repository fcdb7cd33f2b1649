//! The per-connection message loop, over a socket that coalesces writes.
//!
//! pgwire flushes after every backend message, so a prepared statement's reply (BindComplete,
//! RowDescription, DataRow, CommandComplete, ReadyForQuery) costs four or five `send` calls and
//! as many wake-ups of the client. PostgreSQL sends it as one packet. [`CoalescingIo`] keeps
//! written bytes until the server is about to wait for the client (the next read), or until
//! enough have gathered to be worth sending: the client receives exactly what it would have,
//! in one write. The loop around it is pgwire's (startup timeout, Terminate, errors, cancel),
//! with the socket swapped after TLS negotiation.

use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::ErrorInfo;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

use super::guard::GuardedIo;
use super::sqlstate;
use crate::exec::Termination;

/// What one connection may ask of the server.
pub struct Limits {
    pub max_message_bytes: usize,
    /// A client that has not finished logging in within this time is dropped.
    pub authentication_timeout: Duration,
    /// How long the client may now stay silent inside a transaction block (`None`: forever).
    pub idle_in_transaction: Box<dyn Fn() -> Option<Duration> + Send>,
    /// Raised when another session terminates this one (`pg_terminate_backend`).
    pub termination: Arc<Termination>,
}
/// Pending output beyond this is written without waiting for the next read (large results).
const COALESCE_LIMIT: usize = 64 * 1024;

/// Buffers writes; flushes them before every read, when the buffer is large, and on shutdown.
pub struct CoalescingIo<T> {
    inner: T,
    pending: Vec<u8>,
    written: usize,
}

impl<T> CoalescingIo<T> {
    pub fn new(inner: T) -> Self {
        CoalescingIo {
            inner,
            pending: Vec::with_capacity(8 * 1024),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> CoalescingIo<T> {
    /// Writes out everything pending.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Pin::new(&mut self.inner).poll_flush(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for CoalescingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // About to wait for the client: it must first have every reply so far.
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= COALESCE_LIMIT {
            ready!(this.poll_drain(cx))?;
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Deferred to the next read (or the size limit): see the module comment.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Sleeps for `duration`, or forever without one.
async fn sleep_or_never(duration: Option<Duration>) {
    match duration {
        Some(duration) => tokio::time::sleep(duration).await,
        None => std::future::pending().await,
    }
}

/// Serves one TCP connection until the client leaves or a fatal error ends it.
pub async fn serve<H: PgWireServerHandlers>(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
    limits: Limits,
) -> io::Result<()> {
    let Limits {
        max_message_bytes,
        authentication_timeout,
        idle_in_transaction,
        termination,
    } = limits;
    let startup_timeout = tokio::time::sleep(authentication_timeout);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        negotiated = negotiate_tls(tcp, tls) => negotiated?,
    };
    let Some(framed) = negotiated else {
        return Ok(());
    };
    let old = framed.into_parts();
    // Bytes read ahead during TLS negotiation are validated like every later frame.
    let io = GuardedIo::new(CoalescingIo::new(old.io), old.read_buf, max_message_bytes);
    let mut parts = FramedParts::new(io, old.codec);
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let logging_in = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let next = AssertUnwindSafe(socket.next()).catch_unwind();
        let message = if logging_in {
            tokio::select! {
                _ = &mut startup_timeout => None,
                message = next => Some(message),
            }
        } else {
            let idle = idle_in_transaction();
            let waited = tokio::select! {
                biased;
                () = termination.requested() => Err(sqlstate::fatal_info(
                    sqlstate::ADMIN_SHUTDOWN,
                    "terminating connection due to administrator command",
                )),
                message = next => Ok(message),
                () = sleep_or_never(idle) => Err(sqlstate::fatal_info(
                    sqlstate::IDLE_IN_TRANSACTION_TIMEOUT,
                    "terminating connection due to idle-in-transaction timeout",
                )),
            };
            match waited {
                Ok(message) => Some(message),
                Err(info) => {
                    send_last_error(&mut socket, info).await;
                    break;
                }
            }
        };
        let message = match message {
            None | Some(Ok(None)) => break,
            Some(Ok(Some(Ok(message)))) => message,
            Some(Ok(Some(Err(e)))) => {
                // A malformed frame: PostgreSQL answers FATAL 08P01 and closes.
                let why = match socket.get_ref().violation() {
                    Some(why) => why.to_owned(),
                    None => e.to_string(),
                };
                let info = sqlstate::fatal_info(sqlstate::PROTOCOL_VIOLATION, why);
                send_last_error(&mut socket, info).await;
                break;
            }
            Some(Err(panic)) => {
                statement_panicked(panic);
                break;
            }
        };
        // The client is leaving; some (asyncpg) wait for the server to close first.
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_protocol = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let cancel_request = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        // A panic anywhere in a statement's handling fails that statement alone (XX000): the
        // connection, its session and every other connection carry on.
        let outcome = AssertUnwindSafe(process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        ))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(statement_panicked(panic)));
        if let Err(mut e) = outcome {
            errors.on_error(&socket, &mut e);
            // Every error before login ends the connection, as in PostgreSQL; a FATAL one
            // is the last message, never followed by ReadyForQuery.
            if e.is_fatal() || logging_in {
                let mut info = ErrorInfo::from(e);
                info.severity = sqlstate::SEVERITY_FATAL.into();
                send_last_error(&mut socket, info).await;
                break;
            }
            process_error(&mut socket, e, extended_protocol).await?;
        }
        if logging_in
            && !matches!(
                socket.state(),
                PgWireConnectionState::AwaitingStartup
                    | PgWireConnectionState::AuthenticationInProgress
            )
        {
            socket.get_mut().logged_in();
        }
        if cancel_request {
            break;
        }
    }
    // Whatever is still pending (a final error) goes out before the socket closes.
    let _ = socket.close().await;
    Ok(())
}

/// Sends the error that ends the connection; the client may already be gone.
async fn send_last_error<S>(socket: &mut S, info: ErrorInfo)
where
    S: futures::Sink<PgWireBackendMessage> + Unpin,
{
    let _ = socket
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await;
}

/// The error a client receives for a statement whose handling panicked; the panic itself was
/// logged with its backtrace by the hook `main` installs.
fn statement_panicked(panic: Box<dyn std::any::Any + Send>) -> pgwire::error::PgWireError {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    tracing::error!("a statement panicked: {what}");
    pgwire::error::PgWireError::UserError(Box::new(sqlstate::error(
        sqlstate::INTERNAL_ERROR,
        format!("internal error: the statement failed unexpectedly ({what})"),
    )))
}
