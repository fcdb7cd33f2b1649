//! Runs every `tests/slt/*.slt` file against the real server, once over the simple query
//! protocol (text results) and once over the extended protocol (binary results), each on a
//! fresh server. Errors are reported as `[SQLSTATE] message`, so a file can pin the code.

mod common;

use common::TestServer;
use common::slt::{Protocol, run_file, slt_files};

async fn run_all(protocol: Protocol) {
    let mut failures = Vec::new();
    for file in slt_files(&common::repo_root().join("tests/slt")) {
        let server = TestServer::start();
        let conn = server.conn_string("root", &server.options.root_password);
        if let Err(failure) = run_file(&file, &conn, protocol).await {
            failures.push(failure);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn slt_files_pass_over_the_simple_protocol() {
    run_all(Protocol::Simple).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slt_files_pass_over_the_extended_protocol() {
    run_all(Protocol::Extended).await;
}
