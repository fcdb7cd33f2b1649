//! The PostgreSQL front end: listener, TLS, startup/authentication, simple and extended query,
//! cancel, result encoding, and the graceful close of connections. It receives a running
//! engine from `node`, which owns start-up and shutdown of everything else.
//!
//! Each accepted socket gets a [`Connection`], which implements pgwire's handler traits and holds
//! the connection's `exec::Session` once the user has logged in. This layer holds no SQL
//! semantics: it parses text with `sql`, hands statements to `exec`, and encodes what comes back.

mod auth;
mod cancel;
mod copy;
mod encode;
mod guard;
mod lanes;
mod lockout;
mod named;
mod query;
mod socket;
pub mod sqlstate;
mod tls;
mod values;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pgwire::api::PgWireServerHandlers;
use pgwire::api::auth::AuthDriver;
use tokio::net::TcpListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::exec::{Engine, ExecError, Session};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "cannot listen on {address}: the address is already in use (is another PostgreSQL or KalamDB running?). Stop it or choose another [server] port in server.toml"
    )]
    AddressInUse { address: String },
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Protocol(#[from] pgwire::error::PgWireError),
    #[error("cannot start the connection threads: {0}")]
    Lanes(std::io::Error),
}

/// State shared by all connections.
struct Shared {
    config: Arc<Config>,
    engine: Arc<Engine>,
    auth: auth::Authenticator,
    cancels: Arc<cancel::CancelRegistry>,
    in_flight: InFlight,
    slots: Slots,
}

/// Connection slots. A connection takes a `general` one once it has sent a valid startup
/// packet; when they are all taken, a system-role login may take a `reserved` one. Until login
/// completes it also holds a `logging_in` one: there may be twice as many connections logging
/// in as slots (PostgreSQL allows as many), and an idle socket that never logs in is dropped at
/// the authentication timeout without ever having taken a slot.
struct Slots {
    general: Arc<Semaphore>,
    reserved: Arc<Semaphore>,
    logging_in: Arc<Semaphore>,
}

/// Counts statements being executed, so shutdown can wait for them.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// Held while a statement runs, including while its rows stream to the client.
struct InFlightGuard(Arc<Shared>);

impl InFlightGuard {
    fn enter(shared: &Arc<Shared>) -> InFlightGuard {
        shared.in_flight.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(shared.clone())
    }
}

impl InFlight {
    async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let in_flight = &self.0.in_flight;
        if in_flight.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            in_flight.idle.notify_waiters();
        }
    }
}

/// One client connection; implements pgwire's handler traits.
pub struct Connection {
    shared: Arc<Shared>,
    session: Arc<OnceLock<Arc<Session>>>,
    statements: Arc<query::StatementPreparer>,
    cancel_key: Mutex<Option<(i32, bytes::Bytes)>>,
    /// Held from accept until login completes; `None` when too many clients are logging in.
    logging_in: Mutex<Option<OwnedSemaphorePermit>>,
    /// The connection slot, taken at the startup packet (see [`Slots`]).
    slot: Mutex<Option<OwnedSemaphorePermit>>,
    named: Mutex<named::NamedObjects>,
    /// The COPY FROM STDIN waiting for its data, if one is.
    copy_in: Mutex<Option<copy::ActiveCopy>>,
    /// Where the client connected from, as `pg_stat_activity` shows it.
    peer: std::net::SocketAddr,
    /// Raised by `pg_terminate_backend`: the connection closes with 57P01.
    termination: Arc<crate::exec::Termination>,
}

impl Connection {
    /// Binds the logged-in session to this connection and makes it reachable by cancel requests.
    fn attach_session(&self, session: Session, cancel_key: (i32, bytes::Bytes)) {
        session.enter_backends(cancel_key.0, Some(self.peer), self.termination.clone());
        let session = Arc::new(session);
        self.shared
            .cancels
            .register(cancel_key.clone(), Arc::downgrade(&session));
        *self.cancel_key.lock().expect("cancel key") = Some(cancel_key);
        let _ = self.session.set(session);
        self.logging_in.lock().expect("login permit").take();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(key) = self.cancel_key.lock().expect("cancel key").take() {
            self.shared.cancels.unregister(&key);
        }
    }
}

struct Handlers(Arc<Connection>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.0.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.0.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.0.shared.cancels.clone()
    }
}

/// Serves PostgreSQL connections for `engine` until `shutdown` resolves, then lets running
/// statements finish (up to `[server] shutdown_timeout_seconds`) and closes every connection.
pub async fn serve(
    engine: Arc<Engine>,
    config: Arc<Config>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let tls = if config.tls.enabled {
        Some(tls::load(
            &config.tls.cert,
            &config.tls.key,
            config.listens_on_loopback(),
        )?)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        auth: auth::Authenticator {
            scram: auth::scram_auth(engine.clone(), tls.as_ref().map(|t| t.cert_pem.as_slice()))?,
            lockout: lockout::Lockout::new(
                config.auth.max_failed_attempts,
                Duration::from_secs(config.auth.lockout_seconds),
            ),
            driver: AuthDriver::new(auth::StartupParameters),
        },
        cancels: Arc::default(),
        config: config.clone(),
        engine,
        in_flight: InFlight::default(),
        slots: Slots {
            general: Arc::new(Semaphore::new(
                config.server.max_connections - config.server.reserved_connections,
            )),
            reserved: Arc::new(Semaphore::new(config.server.reserved_connections)),
            logging_in: Arc::new(Semaphore::new(config.server.max_connections * 2)),
        },
    });

    let address = config.listen_address();
    let listener = TcpListener::bind(&address).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServerError::AddressInUse {
                address: address.clone(),
            }
        } else {
            ServerError::Listen {
                address: address.clone(),
                source,
            }
        }
    })?;
    // With `port = 0` the system picks a free port: the log line names the one bound, so
    // whoever started the server (a test harness, a supervisor) can read it.
    let bound = listener.local_addr().ok();
    tracing::info!(
        tls = tls.is_some(),
        "KalamDB {} listening on {} (connect with: {})",
        env!("CARGO_PKG_VERSION"),
        bound.map_or(address.clone(), |a| a.to_string()),
        bound.map_or_else(|| "psql".to_owned(), psql_command)
    );

    let acceptor = tls.map(|t| t.acceptor);
    let lanes = lanes::Lanes::start(
        lanes::count(config.server.lanes),
        crate::sql::limits::THREAD_STACK_BYTES,
    )
    .map_err(ServerError::Lanes)?;
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let logging_in = shared.slots.logging_in.clone().try_acquire_owned().ok();
                let session = Arc::new(OnceLock::new());
                let connection = Arc::new(Connection {
                    shared: shared.clone(),
                    statements: Arc::new(query::StatementPreparer::new(session.clone(), shared.clone())),
                    session,
                    cancel_key: Mutex::new(None),
                    logging_in: Mutex::new(logging_in),
                    slot: Mutex::new(None),
                    named: Mutex::default(),
                    copy_in: Mutex::default(),
                    peer,
                    termination: Arc::default(),
                });
                let acceptor = acceptor.clone();
                let logged_in = connection.session.clone();
                let limits = socket::Limits {
                    termination: connection.termination.clone(),
                    max_message_bytes: config.server.max_message_bytes,
                    authentication_timeout: Duration::from_secs(config.server.authentication_timeout_seconds),
                    idle_in_transaction: Box::new(move || {
                        logged_in.get().and_then(|s| s.idle_in_transaction_timeout())
                    }),
                };
                let ended = connection.clone();
                // The socket is registered again with the lane's own reactor.
                let socket = match socket.into_std() {
                    Ok(socket) => socket,
                    Err(e) => {
                        tracing::warn!(%peer, "cannot hand the connection to a lane: {e}");
                        continue;
                    }
                };
                let (lane, seat) = lanes.least_busy();
                tasks.spawn_on(async move {
                    let _seat = seat;
                    let socket = match tokio::net::TcpStream::from_std(socket) {
                        Ok(socket) => socket,
                        Err(e) => {
                            tracing::warn!(%peer, "cannot serve the connection on its lane: {e}");
                            return;
                        }
                    };
                    if let Err(e) = socket::serve(socket, acceptor, Handlers(connection), limits).await {
                        tracing::debug!(%peer, "connection ended: {e}");
                    }
                    // Its statements and portals were freed with the protocol state.
                    if ended.named.lock().expect("named objects").held() >= named::MANY {
                        crate::allocator::release_freed_memory();
                    }
                }, &lane);
            }
        }
    }

    drop(listener);
    let grace = Duration::from_secs(config.server.shutdown_timeout_seconds);
    tracing::info!("shutting down: waiting up to {grace:?} for running statements");
    if tokio::time::timeout(grace, shared.in_flight.wait_idle())
        .await
        .is_err()
    {
        tracing::warn!("statements still running after {grace:?}; aborting them");
    }
    tasks.shutdown().await;
    drop(lanes);
    Ok(())
}

/// A psql command line that reaches a server bound to `bound` from the same machine, for the
/// start-up log line. A wildcard address is reached through loopback.
fn psql_command(bound: std::net::SocketAddr) -> String {
    let host = match bound.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "::1".to_owned(),
        ip => ip.to_string(),
    };
    format!(
        "psql -h {host} -p {} -U {} -d {}",
        bound.port(),
        crate::model::ROOT_USER,
        crate::model::DATABASE_NAME
    )
}
