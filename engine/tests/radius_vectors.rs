//! Data-driven golden-vector test of the RADIUS codec.
//!
//! Every `*.txt` file in `tests/vectors/` is read line by line: `secret "..."` sets the shared
//! secret, `packet NAME` ... `end` holds a hex dump, and each `expect NAME KIND ...` line is
//! handed to [`check`]. The RFC 2865 §7 examples are copied from the RFC; the Tollgate and
//! malformed vectors are produced by `tests/vectors/generate.py` with Python's own MD5 and
//! HMAC, so the codec is checked against arithmetic it did not do itself.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tollgate_engine::radius::{
    encode_reply, encode_request, unhide_password, verify_request, verify_response, Code, Packet,
    MAX_PACKET_LEN, MAX_PASSWORD_LEN,
};

/// One whitespace-separated token of a vector line.
#[derive(Clone, Debug)]
enum Token {
    /// A bare word: a name, a keyword, a number or a `0x` hex value.
    Word(String),
    /// A double-quoted text value, without its quotes.
    Text(Vec<u8>),
}

/// What the lines read so far have defined, which an `expect` line is checked against.
struct Context {
    secret: Vec<u8>,
    packets: HashMap<String, Vec<u8>>,
    /// Packets named by at least one `expect` line, so that no vector sits unchecked.
    used: HashSet<String>,
}

fn tokenize(line: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').expect("unterminated quoted text");
            tokens.push(Token::Text(quoted.as_bytes()[..end].to_vec()));
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            tokens.push(Token::Word(rest[..end].to_string()));
            rest = rest[end..].trim_start();
        }
    }
    tokens
}

fn word(t: &Token) -> &str {
    match t {
        Token::Word(w) => w,
        Token::Text(_) => panic!("expected a bare word, found quoted text"),
    }
}

fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("bad hex digit"))
        .collect()
}

fn value(t: &Token) -> Vec<u8> {
    match t {
        Token::Text(bytes) => bytes.clone(),
        Token::Word(w) => hex(w.strip_prefix("0x").expect("values are \"text\" or 0xHEX")),
    }
}

fn number(t: &Token) -> u8 {
    word(t).parse().expect("expected a number from 0 to 255")
}

/// Reads `TYPE VALUE` pairs.
fn attribute_list(tokens: &[Token]) -> Vec<(u8, Vec<u8>)> {
    assert!(tokens.len() % 2 == 0, "attributes come in TYPE VALUE pairs");
    tokens
        .chunks(2)
        .map(|pair| (number(&pair[0]), value(&pair[1])))
        .collect()
}

fn borrowed(list: &[(u8, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    list.iter().map(|(t, v)| (*t, v.as_slice())).collect()
}

/// Splits an optional `require-ma` flag from the expected result.
fn flag_and_result(tokens: &[Token]) -> (bool, &str) {
    match tokens {
        [flag, result] if word(flag) == "require-ma" => (true, word(result)),
        [result] => (false, word(result)),
        _ => panic!("expected [require-ma] RESULT"),
    }
}

fn label<E: Copy>(result: Result<impl Sized, E>, as_str: fn(&E) -> &'static str) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => as_str(&e),
    }
}

/// Runs one `expect NAME KIND ARGS...` line against the packets defined so far.
fn check(ctx: &mut Context, tokens: &[Token]) {
    let name = word(&tokens[0]);
    let kind = word(&tokens[1]);
    let args = &tokens[2..];
    ctx.used.insert(name.to_string());
    let bytes = ctx
        .packets
        .get(name)
        .unwrap_or_else(|| panic!("unknown packet {name}"));
    let secret = ctx.secret.as_slice();
    let decoded = || Packet::decode(bytes).expect("packet decodes");
    let request_of = |token: &Token| {
        let request_name = word(token);
        ctx.packets
            .get(request_name)
            .unwrap_or_else(|| panic!("unknown request {request_name}"))
    };
    match kind {
        "code" => assert_eq!(decoded().code(), Code::from_u8(number(&args[0]))),
        "id" => assert_eq!(decoded().identifier(), number(&args[0])),
        "attrs" => {
            let got: Vec<(u8, Vec<u8>)> = decoded()
                .attributes()
                .map(|a| (a.typ, a.value.to_vec()))
                .collect();
            assert_eq!(got, attribute_list(args));
        }
        "password" => {
            let p = decoded();
            let hidden = p.attribute(2).expect("a User-Password attribute");
            let mut out = [0u8; MAX_PASSWORD_LEN];
            let clear = unhide_password(hidden, secret, p.authenticator(), &mut out).unwrap();
            assert_eq!(clear, value(&args[0]).as_slice());
        }
        "decode-error" => {
            let got = label(Packet::decode(bytes), |e| e.as_str());
            assert_eq!(got, word(&args[0]));
        }
        "verify-request" => {
            let (require, want) = flag_and_result(args);
            let got = label(verify_request(decoded(), secret, require), |e| e.as_str());
            assert_eq!(got, want);
        }
        "verify-response" => {
            let request = Packet::decode(request_of(&args[0])).expect("request decodes");
            let (require, want) = flag_and_result(&args[1..]);
            let got = label(
                verify_response(decoded(), request.authenticator(), secret, require),
                |e| e.as_str(),
            );
            assert_eq!(got, want);
        }
        "encodes-reply-to" => {
            let request = Packet::decode(request_of(&args[0])).expect("request decodes");
            let request = verify_request(request, secret, false).expect("request verifies");
            let code = Code::from_u8(number(&args[1]));
            let attrs = attribute_list(&args[2..]);
            let mut out = Vec::with_capacity(MAX_PACKET_LEN);
            encode_reply(&mut out, code, &request, secret, &borrowed(&attrs)).unwrap();
            assert_eq!(out, *bytes, "encode_reply output differs from the vector");
        }
        "encodes-request" => {
            let p = decoded();
            let with_mac = match word(&args[0]) {
                "ma" => true,
                "no-ma" => false,
                other => panic!("expected ma or no-ma, found {other}"),
            };
            let attrs = attribute_list(&args[1..]);
            let mut out = Vec::new();
            encode_request(
                &mut out,
                p.code(),
                p.identifier(),
                p.authenticator(),
                secret,
                &borrowed(&attrs),
                with_mac,
            )
            .unwrap();
            assert_eq!(out, *bytes, "encode_request output differs from the vector");
        }
        other => panic!("unknown expectation {other}"),
    }
}

/// Reads one vector file and runs its expectations, returning how many ran.
fn run_file(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let mut ctx = Context {
        secret: Vec::new(),
        packets: HashMap::new(),
        used: HashSet::new(),
    };
    let mut checks = 0;
    let mut lines = text.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let tokens = tokenize(line);
        let at = format!("{}:{}", path.display(), index + 1);
        match word(&tokens[0]) {
            "secret" => ctx.secret = value(&tokens[1]),
            "packet" => {
                let name = word(&tokens[1]).to_string();
                let mut dump = String::new();
                for (_, line) in lines.by_ref() {
                    if line.trim() == "end" {
                        break;
                    }
                    dump.push_str(line);
                    dump.push(' ');
                }
                let previous = ctx.packets.insert(name.clone(), hex(&dump));
                assert!(previous.is_none(), "{at}: packet {name} defined twice");
            }
            "expect" => {
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check(&mut ctx, &tokens[1..])
                }));
                if outcome.is_err() {
                    panic!("{at}: check failed: {line}");
                }
                checks += 1;
            }
            other => panic!("{at}: unknown directive {other}"),
        }
    }
    let mut unused: Vec<_> = ctx
        .packets
        .keys()
        .filter(|name| !ctx.used.contains(*name))
        .collect();
    unused.sort();
    assert!(
        unused.is_empty(),
        "{}: packets never checked: {unused:?}",
        path.display()
    );
    checks
}

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
}

#[test]
fn golden_vectors() {
    let files = vector_files();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for required in ["rfc2865.txt", "tollgate.txt", "malformed.txt"] {
        assert!(names.iter().any(|n| n == required), "missing {required}");
    }
    let mut total = 0;
    for file in &files {
        let checks = run_file(file);
        assert!(checks > 0, "{} holds no checks", file.display());
        total += checks;
    }
    assert!(total >= 60, "only {total} checks ran");
}

#[test]
fn tokenizer_handles_quoted_text_with_spaces() {
    let tokens = tokenize(r#"expect x attrs 18 "two words" 1 0x00ff"#);
    assert_eq!(tokens.len(), 7);
    assert_eq!(value(&tokens[4]), b"two words");
    assert_eq!(value(&tokens[6]), [0x00, 0xff]);
    assert!(value(&Token::Word("0x".into())).is_empty());
}
