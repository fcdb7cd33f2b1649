//! A raw PostgreSQL client over a TCP socket: hand-made frames, and SCRAM-SHA-256 just far
//! enough to reach a logged-in session. For tests that send what no driver would.

use base64::Engine as _;
use ring::{digest, hmac, pbkdf2};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A startup packet (protocol 3.0) with `params`.
pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = (3u32 << 16).to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// A frontend message: type byte, length, body.
pub fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A simple-protocol Query message.
pub fn query(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    frame(b'Q', &body)
}

/// The next backend message, as (type, body).
pub async fn read_message(socket: &mut TcpStream) -> (u8, Vec<u8>) {
    try_read_message(socket).await.unwrap()
}

/// The next backend message, or the I/O error that stopped it (the server closed the socket).
pub async fn try_read_message(socket: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 5];
    socket.read_exact(&mut header).await?;
    let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    socket.read_exact(&mut body).await?;
    Ok((header[0], body))
}

/// A logged-in session; panics when login fails.
pub async fn login(port: u16, user: &str, password: &str) -> TcpStream {
    try_login(port, user, password)
        .await
        .unwrap_or_else(|e| panic!("login failed: {e}"))
}

/// A logged-in session, or why the server did not give one.
pub async fn try_login(port: u16, user: &str, password: &str) -> Result<TcpStream, String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    socket
        .write_all(&startup(&[("user", user), ("database", "kalamdb")]))
        .await
        .map_err(|e| format!("sending the startup packet: {e}"))?;
    // The reply to one login step, which must be an Authentication message.
    let authentication = async |socket: &mut TcpStream, step: &str| {
        let (tag, body) = try_read_message(socket)
            .await
            .map_err(|e| format!("reading the reply to {step}: {e}"))?;
        if tag != b'R' {
            return Err(format!(
                "{step} answered with {:?}: {}",
                tag as char,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(body)
    };
    authentication(&mut socket, "the startup packet").await?;
    let nonce = "hostileclientnonce0123456789";
    let first_bare = format!("n={user},r={nonce}");
    let mut body = b"SCRAM-SHA-256\0".to_vec();
    let initial = format!("n,,{first_bare}");
    body.extend_from_slice(&(initial.len() as i32).to_be_bytes());
    body.extend_from_slice(initial.as_bytes());
    socket
        .write_all(&frame(b'p', &body))
        .await
        .map_err(|e| format!("sending the SASL initial response: {e}"))?;
    let body = authentication(&mut socket, "the SASL initial response").await?;
    let server_first = String::from_utf8(body[4..].to_vec()).unwrap();
    let field = |name: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    let (combined, salt, iterations) = (field("r="), field("s="), field("i="));
    let salt = base64::engine::general_purpose::STANDARD
        .decode(salt)
        .unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations.parse().unwrap(),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let without_proof = format!("c=biws,r={combined}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, stored_key.as_ref()),
        auth_message.as_bytes(),
    );
    let proof: Vec<u8> = client_key
        .as_ref()
        .iter()
        .zip(signature.as_ref())
        .map(|(a, b)| a ^ b)
        .collect();
    let final_message = format!(
        "{without_proof},p={}",
        base64::engine::general_purpose::STANDARD.encode(proof)
    );
    socket
        .write_all(&frame(b'p', final_message.as_bytes()))
        .await
        .map_err(|e| format!("sending the SASL proof: {e}"))?;
    loop {
        let (tag, body) = try_read_message(&mut socket)
            .await
            .map_err(|e| format!("reading the reply to the SASL proof: {e}"))?;
        if tag == b'E' {
            return Err(format!("refused: {}", String::from_utf8_lossy(&body)));
        }
        if tag == b'Z' {
            return Ok(socket);
        }
    }
}
