//! `tollgate token import` and `tollgate user import`: bulk seeds and users from CSV, each
//! in one transaction.
//!
//! Each line is `user,secret_base32[,totp|hotp[,digits[,algorithm[,period_or_counter]]]]`.
//! Empty lines and lines starting with `#` are skipped, and so is a first line that starts
//! with `user,` (a header). A bad line stops the import with its line number, and nothing
//! of the file is kept.

use std::io::{BufRead, BufReader};
use std::path::Path;

use tollgate_engine::otp::{base32, Algorithm, TokenKind, TokenParams};
use zeroize::Zeroizing;

use super::CliError;
use crate::store::{ImportReport, NewToken, Store, StoreError};

/// Parses one CSV line into a user name and a token.
pub fn parse_line(line: &str) -> Result<(String, NewToken), String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    if fields.len() < 2 || fields.len() > 6 {
        return Err(format!("expected 2 to 6 fields, found {}", fields.len()));
    }
    let user = fields[0];
    if user.is_empty() {
        return Err("empty user name".to_owned());
    }
    let secret = base32::decode(fields[1]).map_err(|e| format!("secret: {e}"))?;
    let hotp = match fields.get(2).copied().unwrap_or("totp") {
        "" | "totp" => false,
        "hotp" => true,
        other => return Err(format!("type `{other}` is neither totp nor hotp")),
    };
    let digits = match fields.get(3).copied().unwrap_or("") {
        "" => 6,
        d => d
            .parse()
            .map_err(|_| format!("digits `{d}` is not a number"))?,
    };
    let algorithm = match fields.get(4).copied().unwrap_or("") {
        "" => Algorithm::Sha1,
        a => Algorithm::parse(a)
            .ok_or_else(|| format!("algorithm `{a}` is not sha1, sha256 or sha512"))?,
    };
    let last: u64 = match fields.get(5).copied().unwrap_or("") {
        "" if hotp => 0,
        "" => 30,
        n => n.parse().map_err(|_| format!("`{n}` is not a number"))?,
    };
    let params = TokenParams {
        kind: if hotp {
            TokenKind::Hotp
        } else {
            TokenKind::Totp {
                period: u32::try_from(last).map_err(|_| "period too large".to_owned())?,
                t0: 0,
            }
        },
        algorithm,
        digits,
    };
    params.validate().map_err(|e| e.to_string())?;
    if secret.len() < 10 {
        return Err("secret shorter than 80 bits".to_owned());
    }
    Ok((
        user.to_owned(),
        NewToken {
            params,
            secret: Zeroizing::new(secret),
            counter: if hotp { last } else { 0 },
        },
    ))
}

fn open_lines(path: &Path) -> Result<Box<dyn BufRead>, CliError> {
    if path == Path::new("-") {
        return Ok(Box::new(BufReader::new(std::io::stdin())));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| CliError(format!("cannot open {}: {e}", path.display())))?;
    Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
}

/// Reads `name,password` lines (a header starting with `name,` and `#` lines skipped).
pub fn read_user_rows(path: &Path) -> Result<Vec<(String, Zeroizing<String>)>, CliError> {
    user_rows(open_lines(path)?)
}

/// The rows of [`read_user_rows`], from any reader.
pub fn user_rows(input: impl BufRead) -> Result<Vec<(String, Zeroizing<String>)>, CliError> {
    let mut rows = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = Zeroizing::new(line.map_err(|e| CliError(format!("line {n}: {e}")))?);
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.trim().is_empty()
            || trimmed.starts_with('#')
            || (n == 1 && trimmed.starts_with("name,"))
        {
            continue;
        }
        let Some((name, password)) = trimmed.split_once(',') else {
            return Err(CliError(format!("line {n}: expected name,password")));
        };
        if password.is_empty() || password.len() > 120 {
            return Err(CliError(format!("line {n}: a password is 1 to 120 bytes")));
        }
        rows.push((name.trim().to_owned(), Zeroizing::new(password.to_owned())));
    }
    Ok(rows)
}

/// Reads `name,delivery,mobile,email` lines; a header starting with `name,` and lines
/// starting with `#` are skipped.
pub fn read_delivery_rows(
    path: &Path,
) -> Result<Vec<(String, crate::store::DeliverySettings)>, CliError> {
    delivery_rows(open_lines(path)?)
}

/// The rows of [`read_delivery_rows`], from any reader.
pub fn delivery_rows(
    input: impl BufRead,
) -> Result<Vec<(String, crate::store::DeliverySettings)>, CliError> {
    let mut rows = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| CliError(format!("line {n}: {e}")))?;
        let trimmed = line.trim();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || (n == 1 && trimmed.starts_with("name,"))
        {
            continue;
        }
        let fields: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        if fields.len() < 2 || fields.len() > 4 {
            return Err(CliError(format!(
                "line {n}: expected name,delivery[,mobile[,email]]"
            )));
        }
        let method = crate::store::Method::parse(fields[1]).ok_or_else(|| {
            CliError(format!(
                "line {n}: `{}` is not a delivery method",
                fields[1]
            ))
        })?;
        let opt = |i: usize| {
            fields
                .get(i)
                .filter(|v| !v.is_empty())
                .map(|v| (*v).to_owned())
        };
        rows.push((
            fields[0].to_owned(),
            crate::store::DeliverySettings {
                method,
                mobile: opt(2),
                email: opt(3),
            },
        ));
    }
    Ok(rows)
}

/// Hashes every password with Argon2id and `params`, one thread per core.
pub fn hash_all(
    rows: Vec<(String, Zeroizing<String>)>,
    params: &crate::store::HashParams,
) -> Vec<(String, Option<String>)> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let chunk = rows.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(name, pw)| {
                            (
                                name.clone(),
                                Some(crate::store::hash_password(pw.as_bytes(), params)),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Imports a CSV file ('-' reads standard input).
pub fn import_file(
    store: &mut Store,
    path: &Path,
    create_users: bool,
) -> Result<ImportReport, CliError> {
    let reader = open_lines(path)?;
    let rows = reader.lines().enumerate().filter_map(|(i, line)| {
        let n = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(StoreError::Invalid(format!("line {n}: {e}")))),
        };
        let trimmed = line.trim();
        if trimmed.is_empty()
            || trimmed.starts_with('#')
            || (n == 1 && trimmed.starts_with("user,"))
        {
            return None;
        }
        Some(parse_line(trimmed).map_err(|e| StoreError::Invalid(format!("line {n}: {e}"))))
    });
    Ok(store.import_tokens(rows, create_users)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_defaults_and_options() {
        let (u, t) = parse_line("alice,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(u, "alice");
        assert_eq!(t.params.kind, TokenKind::Totp { period: 30, t0: 0 });
        assert_eq!(t.params.digits, 6);
        let (_, t) = parse_line("bob, GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ ,hotp,8,sha256,42").unwrap();
        assert_eq!(t.params.kind, TokenKind::Hotp);
        assert_eq!(t.params.algorithm, Algorithm::Sha256);
        assert_eq!(t.counter, 42);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(parse_line("alice").unwrap_err().contains("fields"));
        assert!(parse_line("alice,!!!").unwrap_err().contains("secret"));
        assert!(parse_line("alice,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,push")
            .unwrap_err()
            .contains("push"));
        assert!(parse_line("alice,GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ,totp,9").is_err());
        assert!(parse_line("alice,GEZDGNBV")
            .unwrap_err()
            .contains("80 bits"));
    }
}
