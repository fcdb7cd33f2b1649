//! Startup and authentication: TLS requirement, connection limit, SCRAM-SHA-256 against stored
//! verifiers, lockout after repeated failures, and the parameters reported after login.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::sasl::SaslMechanismFactory;
use pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret};
use pgwire::api::auth::{
    AuthDriver, AuthOutcome, AuthSource, LoginInfo, Password, ServerParameterProvider,
    StartupHandler, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, METADATA_USER};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use ring::hmac;

use super::Connection;
use super::sqlstate::{INVALID_AUTHORIZATION, INVALID_PASSWORD, TOO_MANY_CONNECTIONS, fatal};
use crate::exec::{AuthSecret, Engine, LoginOutcome, PG_SERVER_VERSION};
use crate::model::Role;

/// Looks users up for SCRAM. Unknown users get a deterministic fake verifier, so the exchange
/// runs to the end and fails exactly as a wrong password does.
pub struct UserSecrets {
    engine: Arc<Engine>,
    mock_key: hmac::Key,
}

impl Debug for UserSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserSecrets")
    }
}

impl UserSecrets {
    pub fn new(engine: Arc<Engine>) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let mock_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system random source");
        UserSecrets { engine, mock_key }
    }

    fn mock_secret(&self, user: &str) -> ScramSecret {
        let tag = |label: &str| {
            hmac::sign(&self.mock_key, format!("{label}\0{user}").as_bytes())
                .as_ref()
                .to_vec()
        };
        ScramSecret::Verifier {
            salt: tag("salt")[..16].to_vec(),
            iterations: self.engine.config().auth.scram_iterations as usize,
            stored_key: tag("stored"),
            server_key: tag("server"),
        }
    }
}

#[async_trait]
impl AuthSource for UserSecrets {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::UserError(Box::new(super::sqlstate::error(
            INVALID_AUTHORIZATION,
            "only SCRAM-SHA-256 authentication is supported",
        ))))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let user = login.user().unwrap_or_default();
        let secret = match self.engine.auth_secret(user) {
            Ok(AuthSecret::Known(v)) => ScramSecret::Verifier {
                salt: v.salt,
                iterations: v.iterations as usize,
                stored_key: v.stored_key,
                server_key: v.server_key,
            },
            Ok(AuthSecret::Unknown) => self.mock_secret(user),
            Err(e) => {
                tracing::error!("reading user {user:?} for login: {e}");
                self.mock_secret(user)
            }
        };
        Ok((secret, None))
    }
}

/// The role of the authenticated user, kept in the connection's extensions for the parameters.
struct AuthenticatedRole(Role);

/// Server parameters sent after login (`ParameterStatus`).
pub struct StartupParameters;

impl ServerParameterProvider for StartupParameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let superuser = client
            .session_extensions()
            .get::<AuthenticatedRole>()
            .is_some_and(|role| role.0 >= Role::Dba);
        let metadata = client.metadata();
        let mut params: HashMap<String, String> = [
            ("server_version", PG_SERVER_VERSION),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("IntervalStyle", "postgres"),
            ("TimeZone", "UTC"),
            ("integer_datetimes", "on"),
            ("standard_conforming_strings", "on"),
            ("default_transaction_read_only", "off"),
            ("in_hot_standby", "off"),
            ("is_superuser", if superuser { "on" } else { "off" }),
            ("scram_iterations", "4096"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (key, name) in [
            ("application_name", "application_name"),
            (METADATA_USER, "session_authorization"),
        ] {
            params.insert(
                name.to_owned(),
                metadata.get(key).cloned().unwrap_or_default(),
            );
        }
        Some(params)
    }
}

/// Everything authentication needs that outlives a single connection.
pub struct Authenticator {
    pub scram: ScramAuth,
    pub lockout: super::lockout::Lockout,
    pub driver: AuthDriver<StartupParameters>,
}

fn password_failed(user: &str) -> PgWireError {
    fatal(
        INVALID_PASSWORD,
        format!("password authentication failed for user \"{user}\""),
    )
}

fn user_of<C: ClientInfo>(client: &C) -> String {
    client
        .metadata()
        .get(METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

#[async_trait]
impl StartupHandler for Connection {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let auth = &self.shared.auth;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.logging_in.lock().expect("login permit").is_none() {
                    return Err(fatal(
                        TOO_MANY_CONNECTIONS,
                        "sorry, too many clients already",
                    ));
                }
                *self.slot.lock().expect("slot") =
                    self.shared.slots.general.clone().try_acquire_owned().ok();
                if self.shared.config.tls.required && !client.is_secure() {
                    return Err(fatal(
                        INVALID_AUTHORIZATION,
                        "this server requires TLS: connect with sslmode=require or stronger",
                    ));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let user = user_of(client);
                if user.is_empty() {
                    return Err(fatal(
                        INVALID_AUTHORIZATION,
                        "no user name specified in startup packet",
                    ));
                }
                if auth.lockout.is_locked(&user, client.socket_addr().ip()) {
                    tracing::warn!(user, peer = %client.socket_addr(), "login refused: user is locked out after repeated failures");
                    return Err(password_failed(&user));
                }
                match auth
                    .driver
                    .begin_authentication(client, auth.scram.create())
                    .await?
                {
                    AuthOutcome::InProgress => Ok(()),
                    AuthOutcome::Authenticated { .. } => Err(PgWireError::InvalidSASLState),
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let user = user_of(client);
                let peer = client.socket_addr().ip();
                // Again at the proof: connections opened before a lock must not keep guessing.
                if auth.lockout.is_locked(&user, peer) {
                    tracing::warn!(user, %peer, "login refused: locked out after repeated failures");
                    return Err(password_failed(&user));
                }
                match auth.driver.advance_authentication(client, message).await {
                    Ok(AuthOutcome::InProgress) => Ok(()),
                    Ok(AuthOutcome::Authenticated { final_message, .. }) => {
                        let role = match self.shared.engine.record_login(&user) {
                            Ok(LoginOutcome::Allowed { role }) => role,
                            Ok(LoginOutcome::Gone) => return Err(password_failed(&user)),
                            Err(e) => {
                                tracing::error!(user, "recording login: {e}");
                                return Err(password_failed(&user));
                            }
                        };
                        self.claim_slot(role)?;
                        auth.lockout.record_success(&user, peer);
                        client.session_extensions().insert(AuthenticatedRole(role));
                        let startup = client.metadata().clone();
                        let session = self.shared.engine.open_session(
                            &user,
                            role,
                            startup.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                        );
                        // Completing the login assigns the connection its cancel key.
                        auth.driver
                            .complete_authentication(client, final_message)
                            .await?;
                        let (pid, secret) = client.pid_and_secret_key();
                        self.attach_session(session, (pid, secret.to_bytes()));
                        tracing::info!(user, role = %role, peer = %client.socket_addr(), tls = client.is_secure(), "login");
                        Ok(())
                    }
                    Err(e) => {
                        let failures = auth.lockout.record_failure(&user, peer);
                        tracing::warn!(user, peer = %client.socket_addr(), failures, "login failed: {e}");
                        Err(password_failed(&user))
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

impl Connection {
    /// A login without a general slot may take a reserved one if it is the system role.
    fn claim_slot(&self, role: Role) -> PgWireResult<()> {
        let mut slot = self.slot.lock().expect("slot");
        if slot.is_some() {
            return Ok(());
        }
        if role < Role::System {
            return Err(fatal(
                TOO_MANY_CONNECTIONS,
                "remaining connection slots are reserved for the system role",
            ));
        }
        *slot = self.shared.slots.reserved.clone().try_acquire_owned().ok();
        if slot.is_none() {
            return Err(fatal(
                TOO_MANY_CONNECTIONS,
                "sorry, too many clients already",
            ));
        }
        Ok(())
    }
}

/// Builds the SCRAM mechanism; with TLS the -PLUS (channel binding) variant is offered too.
pub fn scram_auth(engine: Arc<Engine>, cert_pem: Option<&[u8]>) -> PgWireResult<ScramAuth> {
    let mut scram = ScramAuth::new(Arc::new(UserSecrets::new(engine.clone())));
    scram.set_iterations(engine.config().auth.scram_iterations as usize);
    if let Some(pem) = cert_pem {
        scram.configure_certificate(pem)?;
    }
    debug_assert!(!scram.sasl_mechanism_names().is_empty());
    Ok(scram)
}
