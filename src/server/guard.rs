//! Frame validation in front of pgwire's decoder.
//!
//! pgwire decodes a message body from the whole read buffer, trusting the lengths and counts
//! inside it: a short or lying message makes it read past the message, or panic. It also
//! buffers any message up to 1 GiB, logged in or not. [`GuardedIo`] sits between the socket and
//! pgwire's framing and hands pgwire one complete frame at a time, only after checking that
//! frame the way PostgreSQL's backend does: the declared length within the limit for the
//! connection's phase (a few kilobytes before login), and every count, length and code in the
//! body consistent with the bytes present. A frame that fails is never given to pgwire; the
//! read fails, and the connection loop answers FATAL 08P01 with [`GuardedIo::violation`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// PostgreSQL's limit for a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_BYTES: usize = 10_000;
/// Before login only password (SASL) messages arrive, each a few hundred bytes.
const MAX_LOGIN_MESSAGE_BYTES: usize = 8 * 1024;
/// After login, any message but Query, Parse, Bind and CopyData (whose limit is configured).
const MAX_CONTROL_MESSAGE_BYTES: usize = 64 * 1024;

const PROTOCOL_3: u32 = 3 << 16;
const CANCEL_REQUEST: u32 = 80_877_102;

/// Where a connection is in its life, which decides what a frame may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The startup packet (or a cancel request), which carries no tag byte.
    Startup,
    /// The first password message: a SASLInitialResponse.
    SaslInitial,
    /// Later SASL messages, until login completes.
    Sasl,
    /// Logged in: the simple and extended query protocols.
    Session,
}

/// An I/O wrapper that releases validated frames only; writes pass straight through.
pub struct GuardedIo<T> {
    inner: T,
    pending: BytesMut,
    /// Bytes at the front of `pending` that form validated frames, ready for pgwire.
    released: usize,
    phase: Phase,
    max_message_bytes: usize,
    violation: Option<String>,
}

impl<T> GuardedIo<T> {
    /// `already_read`: bytes read from the socket before this wrapper existed (TLS negotiation
    /// reads ahead); they are validated like the rest.
    pub fn new(inner: T, already_read: BytesMut, max_message_bytes: usize) -> Self {
        GuardedIo {
            inner,
            pending: already_read,
            released: 0,
            phase: Phase::Startup,
            max_message_bytes,
            violation: None,
        }
    }

    /// Login completed: the query protocols' messages and limits apply from now on.
    pub fn logged_in(&mut self) {
        self.phase = Phase::Session;
    }

    /// Why the last read failed, when a frame broke the protocol.
    pub fn violation(&self) -> Option<&str> {
        self.violation.as_deref()
    }

    fn refuse(&mut self, why: String) -> io::Error {
        let error = io::Error::new(io::ErrorKind::InvalidData, why.clone());
        self.violation = Some(why);
        error
    }

    /// The size of the frame at the front of `pending` once its header is in, after checking
    /// the declared length against the phase's limit.
    fn frame_size(&mut self) -> io::Result<Option<usize>> {
        let tagged = self.phase != Phase::Startup;
        let header = if tagged { 5 } else { 4 };
        if self.pending.len() < header {
            return Ok(None);
        }
        let declared = i32::from_be_bytes(
            self.pending[header - 4..header]
                .try_into()
                .expect("four length bytes"),
        );
        let (minimum, limit) = match self.phase {
            Phase::Startup => (8, MAX_STARTUP_BYTES),
            Phase::SaslInitial | Phase::Sasl => (4, MAX_LOGIN_MESSAGE_BYTES),
            Phase::Session => match self.pending[0] {
                b'Q' | b'P' | b'B' | b'd' => (4, self.max_message_bytes),
                _ => (4, MAX_CONTROL_MESSAGE_BYTES),
            },
        };
        let declared = usize::try_from(declared).unwrap_or(0);
        if declared < minimum {
            return Err(self.refuse(format!("invalid message length {declared}")));
        }
        if declared > limit {
            return Err(self.refuse(format!(
                "message of {declared} bytes exceeds the limit of {limit} bytes"
            )));
        }
        Ok(Some(if tagged { declared + 1 } else { declared }))
    }

    /// Checks the complete frame `frame` and moves to the phase it leads to.
    fn admit(&mut self, frame_size: usize) -> Result<(), String> {
        self.phase = next_phase(self.phase, &self.pending[..frame_size])?;
        Ok(())
    }
}

/// Checks `frame`, complete, against what `phase` allows; returns the phase it leads to.
fn next_phase(phase: Phase, frame: &[u8]) -> Result<Phase, String> {
    match phase {
        Phase::Startup => {
            let code = u32::from_be_bytes(frame[4..8].try_into().expect("startup code"));
            match code {
                // 3.x: a newer minor version is answered by protocol negotiation.
                _ if code & 0xffff_0000 == PROTOCOL_3 => {
                    startup_parameters(&frame[8..])?;
                    Ok(Phase::SaslInitial)
                }
                CANCEL_REQUEST if frame.len() >= 16 => Ok(Phase::Startup),
                _ if code >> 16 < 1000 => Err(format!(
                    "unsupported frontend protocol {}.{}: server supports 3.0",
                    code >> 16,
                    code & 0xffff
                )),
                _ => Err(format!("invalid startup packet (code {code})")),
            }
        }
        Phase::SaslInitial => {
            expect_tag(frame, b"pX")?;
            if frame[0] != b'p' {
                return Ok(phase);
            }
            let mut body = Body::new(&frame[5..]);
            body.string()?;
            let length = body.i32()?;
            if length != -1 {
                body.bytes(length)?;
            }
            body.end()?;
            Ok(Phase::Sasl)
        }
        Phase::Sasl => expect_tag(frame, b"pX").map(|()| phase),
        Phase::Session => session_message(frame).map(|()| phase),
    }
}

fn expect_tag(frame: &[u8], allowed: &[u8]) -> Result<(), String> {
    if allowed.contains(&frame[0]) {
        Ok(())
    } else {
        Err(format!(
            "unexpected message type 0x{:02x} during authentication",
            frame[0]
        ))
    }
}

/// `name\0value\0 ... \0`: pairs of strings, the name never empty, ending in one more NUL.
fn startup_parameters(body: &[u8]) -> Result<(), String> {
    let mut body = Body::new(body);
    loop {
        let name = body.string()?;
        if name.is_empty() {
            return body.end();
        }
        body.string()?;
    }
}

/// The frontend messages of a logged-in session, laid out as PostgreSQL's protocol says.
fn session_message(frame: &[u8]) -> Result<(), String> {
    let mut body = Body::new(&frame[5..]);
    match frame[0] {
        b'Q' => {
            body.string()?;
        }
        b'P' => {
            body.string()?;
            body.string()?;
            let types = body.u16()?;
            for _ in 0..types {
                body.i32()?;
            }
        }
        b'B' => bind(&mut body)?,
        b'D' | b'C' => {
            match body.u8()? {
                b'S' | b'P' => {}
                other => return Err(format!("invalid DESCRIBE/CLOSE message subtype {other}")),
            }
            body.string()?;
        }
        b'E' => {
            body.string()?;
            body.i32()?;
        }
        b'S' | b'H' | b'X' | b'c' => {}
        b'd' => return Ok(()),
        b'f' => {
            body.string()?;
        }
        other => return Err(format!("invalid frontend message type {other}")),
    }
    body.end()
}

fn bind(body: &mut Body<'_>) -> Result<(), String> {
    body.string()?;
    body.string()?;
    let formats = body.u16()?;
    for _ in 0..formats {
        format_code(body.u16()?)?;
    }
    let values = body.u16()?;
    if formats > 1 && formats != values {
        return Err(format!(
            "bind message has {formats} parameter formats but {values} parameters"
        ));
    }
    for _ in 0..values {
        let length = body.i32()?;
        if length != -1 {
            body.bytes(length)?;
        }
    }
    let results = body.u16()?;
    for _ in 0..results {
        format_code(body.u16()?)?;
    }
    Ok(())
}

fn format_code(code: u16) -> Result<(), String> {
    match code {
        0 | 1 => Ok(()),
        other => Err(format!("unsupported format code: {other}")),
    }
}

/// A cursor over a message body whose every read is checked against the bytes present.
struct Body<'a> {
    bytes: &'a [u8],
}

impl<'a> Body<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Body { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("insufficient data left in message".into());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("two bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("four bytes"),
        ))
    }

    fn bytes(&mut self, length: i32) -> Result<&'a [u8], String> {
        let length =
            usize::try_from(length).map_err(|_| format!("invalid value length {length}"))?;
        self.take(length)
    }

    /// A NUL-terminated string (its bytes, without the NUL).
    fn string(&mut self) -> Result<&'a [u8], String> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or("invalid string in message")?;
        let text = self.take(end)?;
        self.take(1)?;
        Ok(text)
    }

    fn end(&self) -> Result<(), String> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err("invalid message format: bytes after the end of the message".into())
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.released > 0 {
                let n = this.released.min(out.remaining());
                out.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                this.released -= n;
                return Poll::Ready(Ok(()));
            }
            if this.violation.is_some() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "protocol violation",
                )));
            }
            let wanted = match this.frame_size()? {
                Some(size) if this.pending.len() >= size => {
                    if let Err(why) = this.admit(size) {
                        return Poll::Ready(Err(this.refuse(why)));
                    }
                    this.released = size;
                    continue;
                }
                Some(size) => size - this.pending.len(),
                None => 5,
            };
            // Read no further than the frame being assembled (its size is within the limit).
            this.pending.reserve(wanted.min(64 * 1024));
            let read = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                &mut this.pending
            ))?;
            if read == 0 {
                return Poll::Ready(if this.pending.is_empty() {
                    Ok(())
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                });
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut frame = vec![tag];
        frame.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        frame.extend_from_slice(body);
        frame
    }

    fn session() -> GuardedIo<()> {
        let mut io = GuardedIo::new((), BytesMut::new(), 1 << 20);
        io.logged_in();
        io
    }

    fn admit(io: &mut GuardedIo<()>, frame: &[u8]) -> Result<(), String> {
        io.pending = BytesMut::from(frame);
        match io.frame_size() {
            Ok(Some(size)) if size == frame.len() => io.admit(size),
            Ok(other) => Err(format!("frame size {other:?} for {} bytes", frame.len())),
            Err(e) => Err(e.to_string()),
        }
    }

    fn bind_body(formats: &[u16], values: &[Option<&[u8]>], declared: Option<i32>) -> Vec<u8> {
        let mut body = b"\0\0".to_vec();
        body.extend_from_slice(&(formats.len() as u16).to_be_bytes());
        for f in formats {
            body.extend_from_slice(&f.to_be_bytes());
        }
        body.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for v in values {
            match v {
                Some(bytes) => {
                    let length = declared.unwrap_or(bytes.len() as i32);
                    body.extend_from_slice(&length.to_be_bytes());
                    body.extend_from_slice(bytes);
                }
                None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        body.extend_from_slice(&0u16.to_be_bytes());
        body
    }

    #[test]
    fn well_formed_messages_pass() {
        let mut io = session();
        admit(&mut io, &tagged(b'Q', b"SELECT 1\0")).unwrap();
        admit(&mut io, &tagged(b'P', b"s1\0SELECT $1\0\0\x01\0\0\0\x17")).unwrap();
        let body = bind_body(&[1], &[Some(b"\0\0\0\x05"), None], None);
        admit(&mut io, &tagged(b'B', &body)).unwrap();
        admit(&mut io, &tagged(b'D', b"S\0")).unwrap();
        admit(&mut io, &tagged(b'E', b"\0\0\0\0\0")).unwrap();
        admit(&mut io, &tagged(b'S', b"")).unwrap();
    }

    #[test]
    fn lying_lengths_and_counts_are_refused() {
        let mut io = session();
        // A Parse declaring 2 bytes, and one whose type count runs past its end.
        assert!(admit(&mut io, b"P\0\0\0\x02").is_err());
        assert!(admit(&mut io, &tagged(b'P', b"\0SELECT 1\0\xff\xff")).is_err());
        // Bind: a value longer than the message, a negative length, a bad format code,
        // and more formats than values.
        let long = bind_body(&[], &[Some(b"abc")], Some(1000));
        assert!(admit(&mut io, &tagged(b'B', &long)).is_err());
        let negative = bind_body(&[], &[Some(b"")], Some(-7));
        assert!(admit(&mut io, &tagged(b'B', &negative)).is_err());
        let format = bind_body(&[7], &[Some(b"1")], None);
        assert!(admit(&mut io, &tagged(b'B', &format)).is_err());
        let formats = bind_body(&[0, 0, 0], &[Some(b"1")], None);
        assert!(admit(&mut io, &tagged(b'B', &formats)).is_err());
        // Describe without a subtype; Sync with a body; an unknown type; trailing bytes.
        assert!(admit(&mut io, &tagged(b'D', b"")).is_err());
        assert!(admit(&mut io, &tagged(b'S', b"x")).is_err());
        assert!(admit(&mut io, &tagged(b'z', b"")).is_err());
        assert!(admit(&mut io, &tagged(b'Q', b"SELECT 1\0\0")).is_err());
    }

    #[test]
    fn limits_depend_on_the_phase() {
        let mut io = GuardedIo::new((), BytesMut::new(), 1 << 20);
        let mut huge = (2_000_000_000i32).to_be_bytes().to_vec();
        huge.extend_from_slice(&PROTOCOL_3.to_be_bytes());
        io.pending = BytesMut::from(&huge[..]);
        assert!(io.frame_size().is_err());

        let mut io = GuardedIo::new((), BytesMut::new(), 1 << 20);
        let mut startup = Vec::new();
        let params = b"user\0root\0\0";
        startup.extend_from_slice(&((8 + params.len()) as i32).to_be_bytes());
        startup.extend_from_slice(&PROTOCOL_3.to_be_bytes());
        startup.extend_from_slice(params);
        admit(&mut io, &startup).unwrap();
        // Before login: no query, and no password message beyond a few kilobytes.
        assert!(admit(&mut io, &tagged(b'Q', b"SELECT 1\0")).is_err());
        let big = vec![b'a'; MAX_LOGIN_MESSAGE_BYTES];
        assert!(admit(&mut io, &tagged(b'p', &big)).is_err());
        let mut initial = b"SCRAM-SHA-256\0".to_vec();
        initial.extend_from_slice(&5i32.to_be_bytes());
        initial.extend_from_slice(b"n,,n=");
        admit(&mut io, &tagged(b'p', &initial)).unwrap();
    }
}
