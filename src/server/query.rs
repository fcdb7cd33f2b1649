//! Simple and extended query protocol handlers.

use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_describe_response, send_execution_response,
    send_query_response, send_ready_for_query,
};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo, Response,
};
use pgwire::api::stmt::QueryParser;
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Describe, Execute, Parse, ParseComplete, TARGET_TYPE_BYTE_PORTAL,
    TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;

use super::sqlstate::user_error;
use super::{Connection, InFlightGuard, encode, sqlstate};
use crate::exec::{ExecError, Outcome, PreparedStatement, Session, StatementActivity};
use crate::sql;

fn session_of(slot: &OnceLock<Arc<Session>>) -> PgWireResult<Arc<Session>> {
    slot.get().cloned().ok_or_else(|| {
        user_error(sqlstate::error(
            sqlstate::PROTOCOL_VIOLATION,
            "query before authentication completed",
        ))
    })
}

/// A statement prepared through Parse, with the types Describe reports.
#[derive(Debug, Clone)]
pub struct Prepared {
    inner: Arc<PreparedStatement>,
    param_types: Vec<Type>,
    /// The statement's text, which `pg_stat_activity` shows while it runs.
    text: Arc<str>,
}

/// Plans statements for the extended protocol in the connection's session.
pub struct StatementPreparer {
    session: Arc<OnceLock<Arc<Session>>>,
    shared: Arc<super::Shared>,
}

impl StatementPreparer {
    pub(super) fn new(session: Arc<OnceLock<Arc<Session>>>, shared: Arc<super::Shared>) -> Self {
        StatementPreparer { session, shared }
    }
}

#[async_trait]
impl QueryParser for StatementPreparer {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        text: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(&self.session)?;
        let _busy = InFlightGuard::enter(&self.shared);
        let mut statements = sql::parse(text).map_err(|e| {
            session.fail_block();
            user_error(sqlstate::sql_error(&e))
        })?;
        if statements.len() > 1 {
            session.fail_block();
            return Err(user_error(sqlstate::error(
                sqlstate::SYNTAX_ERROR,
                "cannot insert multiple commands into a prepared statement",
            )));
        }
        let Some(statement) = statements.pop() else {
            return Ok(None);
        };
        let inner = session
            .prepare(statement)
            .await
            .map_err(|e| user_error(sqlstate::exec_error(&e)))?;
        let count = types.len().max(inner.param_types.len());
        let param_types = (0..count)
            .map(|i| match types.get(i) {
                Some(Some(declared)) if *declared != Type::UNKNOWN => declared.clone(),
                _ => inner
                    .param_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .map(|t| encode::pg_type(&t))
                    .unwrap_or(Type::TEXT),
            })
            .collect();
        Ok(Some(Prepared {
            inner: Arc::new(inner),
            param_types,
            text: Arc::from(text),
        }))
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(statement.param_types.clone())
    }

    fn get_result_schema(
        &self,
        statement: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(match &statement.inner.result_schema {
            Some(schema) => encode::field_infos(schema, format.unwrap_or(&Format::UnifiedText)),
            None => Vec::new(),
        })
    }
}

impl Connection {
    /// Rows are computed while they stream to the client, so a statement stays in flight (and
    /// a graceful shutdown waits for it) until its result stream is done.
    /// `outcome`, whose rows (if any) keep the server's in-flight count, and `activity` (the
    /// statement's `pg_stat_activity` state), until they have been read.
    fn until_streamed(&self, outcome: Outcome, activity: Option<StatementActivity>) -> Outcome {
        match outcome {
            Outcome::Rows { schema, stream } => Outcome::Rows {
                schema: schema.clone(),
                stream: self.held_while_streamed(schema, stream, activity),
            },
            other => other,
        }
    }

    fn held_while_streamed(
        &self,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        activity: Option<StatementActivity>,
    ) -> SendableRecordBatchStream {
        let guard = InFlightGuard::enter(&self.shared);
        let stream = stream.map(move |batch| {
            let _held = (&guard, &activity);
            batch
        });
        Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream))
    }
}

/// Sends one statement's response the way pgwire's own simple-query loop does, tracking the
/// transaction status it implies.
async fn send_response<C>(
    client: &mut C,
    response: Response,
    status: &mut TransactionStatus,
) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match response {
        Response::EmptyQuery => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?
        }
        Response::Query(results) => send_query_response(client, results, true).await?,
        Response::Execution(tag) => send_execution_response(client, tag).await?,
        Response::TransactionStart(tag) => {
            send_execution_response(client, tag).await?;
            *status = status.to_in_transaction_state();
        }
        Response::TransactionEnd(tag) => {
            send_execution_response(client, tag).await?;
            *status = status.to_idle_state();
        }
        Response::Error(e) => {
            client
                .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                .await?;
            *status = status.to_error_state();
        }
        Response::CopyIn(_) | Response::CopyOut(_) | Response::CopyBoth(_) => {
            return Err(PgWireError::ApiError(
                "COPY responses are not produced by simple queries here".into(),
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    /// Runs a Query message's statements one at a time, each one's rows streamed to the client
    /// before the next statement starts, as PostgreSQL does: a later statement sees the earlier
    /// ones' effects, and no result waits in memory for the statements after it.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        let mut status = client.transaction_status();
        client.set_state(PgWireConnectionState::QueryInProgress);
        let session = session_of(&self.session)?;
        let _busy = InFlightGuard::enter(&self.shared);
        // The whole Query message shows as the backend's statement until ReadyForQuery.
        let _activity = session.statement_started(&Arc::from(query.query.as_str()));
        crate::fault::panic_point("query", &query.query);
        match sql::parse(&query.query) {
            Err(e) => {
                // A syntax error fails the transaction block as any failed statement does.
                session.fail_block();
                let error = Response::Error(Box::new(sqlstate::sql_error(&e)));
                send_response(client, error, &mut status).await?;
            }
            Ok(statements) if statements.is_empty() => {
                send_response(client, Response::EmptyQuery, &mut status).await?;
            }
            Ok(statements) => {
                let copy_in_at = statements
                    .iter()
                    .position(|s| matches!(s, sql::Statement::Copy(copy) if !copy.to_client));
                if copy_in_at.is_some_and(|at| at + 1 < statements.len()) {
                    let error = sqlstate::error(
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        "COPY FROM STDIN must be the last statement of a query string",
                    );
                    send_response(client, Response::Error(Box::new(error)), &mut status).await?;
                } else {
                    for statement in statements {
                        let reply = self.run_simple(client, &session, statement).await;
                        let response = match reply {
                            Reply::Response(response) => response,
                            Reply::CopyIn(response) => {
                                let Response::CopyIn(copy) = response else {
                                    return Err(PgWireError::ApiError(
                                        "COPY IN without its response".into(),
                                    ));
                                };
                                pgwire::api::copy::send_copy_in_response(client, copy).await?;
                                // The rows, CopyDone and ReadyForQuery come through the copy handler.
                                client.set_state(PgWireConnectionState::CopyInProgress(false));
                                client.set_transaction_status(status);
                                return Ok(());
                            }
                            Reply::CopyOut {
                                options,
                                schema,
                                stream,
                            } => match super::copy::send_copy_out(client, options, schema, stream)
                                .await
                            {
                                Ok(()) => continue,
                                Err(PgWireError::UserError(info)) => Response::Error(info),
                                Err(other) => return Err(other),
                            },
                        };
                        let failed = matches!(response, Response::Error(_));
                        send_response(client, response, &mut status).await?;
                        if failed {
                            break;
                        }
                    }
                }
            }
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    /// The responses of a whole Query message at once; pgwire calls it only through
    /// `on_query`, which this handler replaces with a statement-at-a-time loop.
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.session)?;
        let statements = match sql::parse(query) {
            Ok(statements) => statements,
            Err(e) => {
                session.fail_block();
                return Ok(vec![Response::Error(Box::new(sqlstate::sql_error(&e)))]);
            }
        };
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let response = match self.run_simple(client, &session, statement).await {
                Reply::Response(response) | Reply::CopyIn(response) => response,
                Reply::CopyOut {
                    options,
                    schema,
                    stream,
                } => super::copy::copy_out_response(options, schema, stream),
            };
            let failed = matches!(response, Response::Error(_));
            responses.push(response);
            if failed {
                break;
            }
        }
        Ok(responses)
    }
}

/// What one statement of a Query message answers.
enum Reply {
    Response(Response),
    /// A COPY FROM STDIN's CopyInResponse: the data follows in CopyData messages.
    CopyIn(Response),
    /// A COPY TO STDOUT's rows, written in the COPY format.
    CopyOut {
        options: sql::CopyOptions,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
}

impl Connection {
    /// Executes one statement of a Query message; its rows stream when the response is sent.
    async fn run_simple<C>(
        &self,
        client: &mut C,
        session: &Arc<Session>,
        statement: sql::Statement,
    ) -> Reply
    where
        C: ClientPortalStore,
        C::PortalStore: PortalStore,
    {
        if let Err(taken) = self.prepare_name_free(client.portal_store(), &statement) {
            session.fail_block();
            return Reply::Response(Response::Error(Box::new(sqlstate::exec_error(&taken))));
        }
        match session.execute(statement).await {
            Ok(Outcome::CopyIn(copy)) => Reply::CopyIn(self.start_copy_in(session.clone(), copy)),
            Ok(Outcome::CopyOut {
                options,
                schema,
                stream,
            }) => Reply::CopyOut {
                options,
                stream: self.held_while_streamed(schema.clone(), stream, None),
                schema,
            },
            Ok(outcome) => {
                if let Outcome::Deallocate {
                    name, dropped_here, ..
                } = &outcome
                    && let Err(e) =
                        self.deallocate(client.portal_store(), name.as_deref(), *dropped_here)
                {
                    session.fail_block();
                    return Reply::Response(Response::Error(Box::new(sqlstate::exec_error(&e))));
                }
                Reply::Response(encode::response(
                    self.until_streamed(outcome, None),
                    &Format::UnifiedText,
                ))
            }
            Err(e) => Reply::Response(Response::Error(Box::new(sqlstate::exec_error(&e)))),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Prepared;
    type QueryParser = StatementPreparer;

    fn query_parser(&self) -> Arc<StatementPreparer> {
        self.statements.clone()
    }

    /// As pgwire's, after admitting a new statement name under the connection's cap.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let session = session_of(&self.session)?;
        // The unnamed statement's key is no name a PREPARE can hold.
        if message.name.is_some() && session.has_sql_prepared(name) {
            session.fail_block();
            let taken = ExecError::DuplicatePreparedStatement(name.to_owned());
            return Err(user_error(sqlstate::exec_error(&taken)));
        }
        let store = client.portal_store();
        self.admit_named(
            |n| &mut n.statements,
            name,
            "prepared statements",
            |n| store.get_statement(n).is_some(),
        )?;
        let parsed = StoredStatement::parse(client, &message, self.query_parser()).await;
        let parsed = parsed.inspect_err(|_| self.forget_statement(name, client.portal_store()))?;
        match parsed {
            Some(statement) => client.portal_store().put_statement(Arc::new(statement)),
            None => client.portal_store().put_empty_statement(name),
        }
        client
            .send(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    /// As pgwire's, except that a statement returning no rows is described by NoData even
    /// when it has parameters (pgwire sends an empty RowDescription then, which pgJDBC reads
    /// as a result set it did not expect once it switches to named statements).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        // A FETCH returns its cursor's columns as they are now; the cursor may not have been
        // declared yet when the FETCH was parsed.
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && let Some(Entry::Value(portal)) = client.portal_store().get_portal(name)
            && let Some(cursor) = fetched_cursor(&portal.statement.statement)
        {
            let described = match session_of(&self.session)?.cursor_schema(cursor) {
                Some(schema) => DescribePortalResponse::new(encode::field_infos(
                    &schema,
                    &portal.result_column_format,
                )),
                None => DescribePortalResponse::no_data(),
            };
            send_describe_response(client, &described).await?;
            return Ok(());
        }
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT
            && let Some(Entry::Value(stored)) = client.portal_store().get_statement(name)
            && let Some(cursor) = fetched_cursor(&stored.statement)
            && let Some(schema) = session_of(&self.session)?.cursor_schema(cursor)
        {
            let fields = encode::field_infos(&schema, &Format::UnifiedText);
            let described = DescribeStatementResponse::new(Vec::new(), fields);
            send_describe_response(client, &described).await?;
            return Ok(());
        }
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT
            && let Some(Entry::Value(stored)) = client.portal_store().get_statement(name)
            && stored.statement.inner.result_schema.is_none()
        {
            let described = self.do_describe_statement(client, &stored).await?;
            let oids = described.parameters.iter().map(|t| t.oid()).collect();
            client
                .feed(PgWireBackendMessage::ParameterDescription(
                    ParameterDescription::new(oids),
                ))
                .await?;
            client
                .send(PgWireBackendMessage::NoData(NoData::new()))
                .await?;
            return Ok(());
        }
        // A SQL cursor is a portal too: psycopg 3 describes its named cursors this way.
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && client.portal_store().get_portal(name).is_none()
            && let Some(schema) = session_of(&self.session)?.cursor_schema(name)
        {
            let fields = encode::field_infos(&schema, &Format::UnifiedText);
            send_describe_response(client, &DescribePortalResponse::new(fields)).await?;
            return Ok(());
        }
        self._on_describe(client, message).await
    }

    /// As pgwire's, after admitting a new portal name under the connection's cap. A Bind that
    /// fails fails the transaction block, as in PostgreSQL.
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let bound = self.bind_portal(client, message).await;
        if bound.is_err() {
            session_of(&self.session)?.fail_block();
        }
        bound
    }

    /// As pgwire's, with the row limit bounded: pgwire reserves room for `max_rows` rows up
    /// front, so a client asking for two billion rows (or a negative number, which it reads
    /// as a huge one) would make the server allocate tens of gigabytes and abort. A negative
    /// limit means "all rows", as in PostgreSQL; a limit above [`MAX_ROWS_PER_EXECUTE`]
    /// suspends the portal after that many rows, and the client's next Execute continues it.
    async fn on_execute<C>(&self, client: &mut C, mut message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        message.max_rows = bounded_row_limit(message.max_rows);
        self._on_execute(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(&self.session)?;
        let _busy = InFlightGuard::enter(&self.shared);
        let prepared = &portal.statement.statement;
        let activity = session.statement_started(&prepared.text);
        let params =
            encode::decode_params(portal, &prepared.param_types, &prepared.inner.param_types)
                .inspect_err(|_| session.fail_block())?;
        self.prepare_name_free(client.portal_store(), &prepared.inner.statement)
            .map_err(|taken| {
                session.fail_block();
                user_error(sqlstate::exec_error(&taken))
            })?;
        // An error here is returned (not sent as a Response) so pgwire skips to the next Sync.
        let outcome = session
            .execute_prepared(&prepared.inner, params)
            .await
            .map_err(|e| user_error(sqlstate::exec_error(&e)))?;
        let outcome = match outcome {
            Outcome::CopyIn(copy) => return Ok(self.start_copy_in(session, copy)),
            Outcome::CopyOut {
                options,
                schema,
                stream,
            } => {
                let stream = self.held_while_streamed(schema.clone(), stream, Some(activity));
                return Ok(super::copy::copy_out_response(options, schema, stream));
            }
            other => other,
        };
        if let Outcome::Deallocate {
            name, dropped_here, ..
        } = &outcome
        {
            self.deallocate(client.portal_store(), name.as_deref(), *dropped_here)
                .map_err(|e| {
                    session.fail_block();
                    user_error(sqlstate::exec_error(&e))
                })?;
        }
        Ok(encode::response(
            self.until_streamed(outcome, Some(activity)),
            &portal.result_column_format,
        ))
    }
}

impl Connection {
    /// As pgwire's, with the unnamed and empty statements' rules and the portal cap.
    async fn bind_portal<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
        let store = client.portal_store();
        let portal = match store.get_statement(statement_name) {
            Some(Entry::Value(statement)) => Some(Portal::try_new(&message, statement)?),
            Some(Entry::Empty) if message.parameters.is_empty() => None,
            Some(Entry::Empty) => {
                return Err(user_error(sqlstate::error(
                    sqlstate::PROTOCOL_VIOLATION,
                    format!(
                        "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires 0",
                        message.parameters.len()
                    ),
                )));
            }
            None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
        };
        self.admit_named(
            |n| &mut n.portals,
            portal_name,
            "portals",
            |n| store.get_portal(n).is_some(),
        )?;
        match portal {
            Some(portal) => store.put_portal(Arc::new(portal)),
            None => store.put_empty_portal(portal_name),
        }
        client
            .send(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }
}

/// The SQL cursor a FETCH (not a MOVE) reads, if `statement` is one.
fn fetched_cursor(statement: &Prepared) -> Option<&str> {
    match &statement.inner.statement {
        sql::Statement::FetchCursor {
            name,
            move_only: false,
            ..
        } => Some(name),
        _ => None,
    }
}

/// Rows one Execute returns at most before the portal is suspended.
pub const MAX_ROWS_PER_EXECUTE: i32 = 1 << 16;

/// The Execute row limit pgwire is given for the one the client sent (0: every row).
fn bounded_row_limit(requested: i32) -> i32 {
    if requested <= 0 {
        0
    } else {
        requested.min(MAX_ROWS_PER_EXECUTE)
    }
}
