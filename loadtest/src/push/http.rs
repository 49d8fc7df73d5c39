//! A small HTTP/1.1 client: one keep-alive connection, one request at a time.
//!
//! The simulated apps need little of HTTP: a request with a few headers and a JSON body, and
//! a status and a body back. This client writes each request in one `write` (no Nagle
//! delay), reads the head line by line and the body by `Content-Length` or chunked
//! encoding, within bounds ([`MAX_HEAD`], [`MAX_BODY`]) and a read timeout, and keeps the
//! connection for the next request unless the server closes it. It speaks plain HTTP only:
//! the harness talks to a mobile API on a loopback address, served with `allow_plain`.
//!
//! A connection kept from an earlier request may have been closed by the server in the
//! meantime (it closes idle connections); a request that finds it so before any byte of an
//! answer comes back fails with [`HttpError::Stale`], and the caller may send it again on a
//! fresh connection (signed afresh: a signed request's nonce is single-use).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// The longest response head (status line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest response body accepted.
pub const MAX_BODY: usize = 4 << 20;

/// Why a request got no usable answer.
#[derive(Debug)]
pub enum HttpError {
    /// The connection could not be made.
    Connect(io::Error),
    /// Sending or receiving failed (including the read timeout).
    Io(io::Error),
    /// A kept-alive connection was closed before any answer: send again on a new one.
    Stale,
    /// The answer is not HTTP/1.1 as expected.
    Malformed(&'static str),
    /// The head or the body is larger than this client accepts.
    TooLarge,
}

impl HttpError {
    /// A short name for counting errors by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::Connect(_) => "connect",
            HttpError::Io(_) => "io",
            HttpError::Stale => "closed",
            HttpError::Malformed(_) => "malformed",
            HttpError::TooLarge => "too-large",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "cannot connect: {e}"),
            HttpError::Io(e) => write!(f, "connection failed: {e}"),
            HttpError::Stale => f.write_str("the server closed the connection without answering"),
            HttpError::Malformed(what) => write!(f, "malformed HTTP answer: {what}"),
            HttpError::TooLarge => f.write_str("the HTTP answer is too large"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A status and a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One connection to one server, opened on first use and kept alive.
#[derive(Debug)]
pub struct Conn {
    server: SocketAddr,
    local: Option<IpAddr>,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
    out: Vec<u8>,
    line: Vec<u8>,
}

impl Conn {
    /// A client of `server` whose connections and reads give up after `timeout`.
    pub fn new(server: SocketAddr, timeout: Duration) -> Conn {
        Conn {
            server,
            local: None,
            timeout,
            stream: None,
            out: Vec::with_capacity(1024),
            line: Vec::with_capacity(256),
        }
    }

    /// A client whose connections leave from the local address `local` (any port).
    pub fn with_local(server: SocketAddr, local: IpAddr, timeout: Duration) -> Conn {
        Conn {
            local: Some(local),
            ..Conn::new(server, timeout)
        }
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends one request and reads its answer. `headers` must be free of line breaks (the
    /// callers' are made by the harness or checked before use).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        let reused = self.stream.is_some();
        let result = self.exchange(method, path, headers, body, reused);
        match &result {
            Ok(r) if !r.keep_alive => self.stream = None,
            Ok(_) => {}
            Err(_) => self.stream = None,
        }
        result.map(|r| r.response)
    }

    fn connect(&self) -> Result<TcpStream, HttpError> {
        let stream = match self.local {
            None => TcpStream::connect_timeout(&self.server, self.timeout),
            Some(ip) => {
                use socket2::{Domain, Socket, Type};
                let socket = Socket::new(Domain::for_address(self.server), Type::STREAM, None)
                    .map_err(HttpError::Connect)?;
                socket
                    .bind(&SocketAddr::new(ip, 0).into())
                    .map_err(HttpError::Connect)?;
                socket
                    .connect_timeout(&self.server.into(), self.timeout)
                    .map(|()| socket.into())
            }
        }
        .map_err(HttpError::Connect)?;
        stream.set_nodelay(true).map_err(HttpError::Connect)?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(HttpError::Connect)?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(HttpError::Connect)?;
        Ok(stream)
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        reused: bool,
    ) -> Result<Exchange, HttpError> {
        if self.stream.is_none() {
            self.stream = Some(BufReader::with_capacity(16 * 1024, self.connect()?));
        }
        self.out.clear();
        {
            use std::fmt::Write as _;
            let mut head = String::with_capacity(256);
            let _ = write!(
                head,
                "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
                self.server,
                body.len()
            );
            if !body.is_empty() {
                head.push_str("content-type: application/json\r\n");
            }
            for (name, value) in headers {
                let _ = write!(head, "{name}: {value}\r\n");
            }
            head.push_str("\r\n");
            self.out.extend_from_slice(head.as_bytes());
            self.out.extend_from_slice(body);
        }
        let Some(reader) = self.stream.as_mut() else {
            return Err(HttpError::Stale);
        };
        if let Err(e) = reader.get_mut().write_all(&self.out) {
            return Err(if reused && is_closed(&e) {
                HttpError::Stale
            } else {
                HttpError::Io(e)
            });
        }
        read_response(reader, &mut self.line, reused, method == "HEAD")
    }
}

/// An answer and whether the connection may carry the next request.
struct Exchange {
    response: Response,
    keep_alive: bool,
}

/// Whether an I/O error means the peer closed the connection.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// Reads one line (without its CR LF) into `line`; `Ok(false)` at the end of the stream
/// before any byte.
fn read_line<R: BufRead>(r: &mut R, line: &mut Vec<u8>, max: usize) -> Result<bool, HttpError> {
    line.clear();
    loop {
        let buf = r.fill_buf().map_err(HttpError::Io)?;
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(false);
            }
            return Err(HttpError::Malformed("the connection closed within a line"));
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&buf[..i]);
                r.consume(i + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > max {
                    return Err(HttpError::TooLarge);
                }
                return Ok(true);
            }
            None => {
                let n = buf.len();
                line.extend_from_slice(buf);
                r.consume(n);
                if line.len() > max {
                    return Err(HttpError::TooLarge);
                }
            }
        }
    }
}

fn read_response<R: BufRead>(
    r: &mut R,
    line: &mut Vec<u8>,
    reused: bool,
    head_only: bool,
) -> Result<Exchange, HttpError> {
    let first = match read_line(r, line, MAX_HEAD) {
        Ok(true) => true,
        Ok(false) if reused => return Err(HttpError::Stale),
        Ok(false) => {
            return Err(HttpError::Malformed(
                "the connection closed without an answer",
            ))
        }
        Err(HttpError::Io(e)) if reused && is_closed(&e) => return Err(HttpError::Stale),
        Err(e) => return Err(e),
    };
    debug_assert!(first);
    let status_line = std::str::from_utf8(line)
        .map_err(|_| HttpError::Malformed("the status line is not text"))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Malformed("not an HTTP/1.x status line"));
    }
    let status: u16 = parts
        .next()
        .filter(|s| s.len() == 3)
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or(HttpError::Malformed("no status code"))?;
    let mut keep_alive = version == "HTTP/1.1";
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut head = line.len();
    loop {
        if !read_line(r, line, MAX_HEAD)? {
            return Err(HttpError::Malformed(
                "the connection closed within the head",
            ));
        }
        head += line.len() + 2;
        if head > MAX_HEAD {
            return Err(HttpError::TooLarge);
        }
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(HttpError::Malformed("a header line without a colon"));
        };
        let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
        let value = String::from_utf8_lossy(&line[colon + 1..])
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| HttpError::Malformed("a bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::Malformed("two different Content-Lengths"));
                }
                length = Some(n);
            }
            "transfer-encoding" => {
                chunked = value.split(',').any(|v| v.trim() == "chunked");
            }
            "connection" => {
                if value.split(',').any(|v| v.trim() == "close") {
                    keep_alive = false;
                } else if value.split(',').any(|v| v.trim() == "keep-alive") {
                    keep_alive = true;
                }
            }
            _ => {}
        }
    }
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let body = if no_body {
        Vec::new()
    } else if chunked {
        read_chunked(r, line)?
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        let mut body = vec![0; n];
        r.read_exact(&mut body).map_err(HttpError::Io)?;
        body
    } else {
        // No length: the body runs to the end of the connection.
        keep_alive = false;
        let mut body = Vec::new();
        r.take(MAX_BODY as u64 + 1)
            .read_to_end(&mut body)
            .map_err(HttpError::Io)?;
        if body.len() > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        body
    };
    Ok(Exchange {
        response: Response { status, body },
        keep_alive,
    })
}

fn read_chunked<R: BufRead>(r: &mut R, line: &mut Vec<u8>) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        if !read_line(r, line, 1024)? {
            return Err(HttpError::Malformed(
                "the connection closed within a chunked body",
            ));
        }
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or(HttpError::Malformed("a bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                if !read_line(r, line, MAX_HEAD)? || line.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).map_err(HttpError::Io)?;
        if !read_line(r, line, 2)? || !line.is_empty() {
            return Err(HttpError::Malformed("a chunk not followed by CR LF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn parse(bytes: &[u8], reused: bool) -> Result<Exchange, HttpError> {
        let mut r = BufReader::new(Cursor::new(bytes.to_vec()));
        read_response(&mut r, &mut Vec::new(), reused, false)
    }

    #[test]
    fn bodies_by_length_and_by_chunks() {
        let e = parse(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
            false,
        )
        .unwrap();
        assert_eq!(e.response.status, 200);
        assert_eq!(e.response.body, b"{\"a\":1}");
        assert!(e.keep_alive);
        let e = parse(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(e.response.status, 404);
        assert_eq!(e.response.body, b"abcde");
        assert!(!e.keep_alive);
    }

    #[test]
    fn broken_answers_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"SIP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n",
        ] {
            assert!(
                parse(bad, false).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(parse(b"", true), Err(HttpError::Stale)));
        let long = format!("HTTP/1.1 200 OK\r\nx: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            parse(long.as_bytes(), false),
            Err(HttpError::TooLarge)
        ));
    }

    #[test]
    fn a_request_goes_out_in_one_piece_and_the_connection_is_kept() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                s.write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
                    .unwrap();
            }
            seen
        });
        let mut conn = Conn::new(addr, Duration::from_secs(5));
        for _ in 0..2 {
            let r = conn
                .request("POST", "/v1/x", &[("x-a", "1")], b"{}")
                .unwrap();
            assert_eq!((r.status, r.text().as_str()), (201, "ok"));
        }
        let seen = server.join().unwrap();
        assert!(seen[0].starts_with("POST /v1/x HTTP/1.1\r\n"));
        assert!(seen[0].contains("content-length: 2\r\n") && seen[0].contains("x-a: 1\r\n"));
        assert!(seen[0].ends_with("\r\n\r\n{}"));
        assert_eq!(seen.len(), 2, "one connection carried both");
    }
}
