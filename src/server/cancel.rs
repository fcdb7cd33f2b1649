//! Cancel requests: maps a connection's (process id, secret key) to its session.
//!
//! pgwire's own cancel support races the statement's planning against the request, but our
//! results are computed while they stream to the client, so the session's result stream is what
//! must stop; this registry finds the session to tell.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use pgwire::api::cancel::CancelHandler;
use pgwire::messages::cancel::CancelRequest;

use crate::exec::Session;

type CancelKey = (i32, Bytes);

#[derive(Default)]
pub struct CancelRegistry {
    sessions: Mutex<HashMap<CancelKey, Weak<Session>>>,
}

impl CancelRegistry {
    pub fn register(&self, key: CancelKey, session: Weak<Session>) {
        self.sessions
            .lock()
            .expect("cancel registry")
            .insert(key, session);
    }

    pub fn unregister(&self, key: &CancelKey) {
        self.sessions.lock().expect("cancel registry").remove(key);
    }
}

#[async_trait]
impl CancelHandler for CancelRegistry {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes());
        let session = self
            .sessions
            .lock()
            .expect("cancel registry")
            .get(&key)
            .and_then(Weak::upgrade);
        match session {
            Some(session) => {
                tracing::info!(
                    user = session.user_id(),
                    pid = request.pid,
                    "cancel request"
                );
                session.cancel_running_statement();
            }
            // Unknown keys are ignored silently, as PostgreSQL does, so keys cannot be probed.
            None => tracing::debug!(
                pid = request.pid,
                "cancel request for an unknown connection"
            ),
        }
    }
}
