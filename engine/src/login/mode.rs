//! Login modes of a RADIUS client and the reading of an appended passcode.

use std::fmt;
use std::str::FromStr;

/// How a RADIUS client presents the two factors.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum LoginMode {
    /// Password and passcode typed into one field, passcode last (`Secret123492817`).
    Append,
    /// Password first; Tollgate answers Access-Challenge and the passcode comes in a second
    /// Access-Request that carries the State of the challenge.
    Challenge,
    /// The client checked the password itself; User-Password holds the passcode alone.
    PasscodeOnly,
}

impl LoginMode {
    /// The name used in configuration, the CLI, audit lines and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMode::Append => "append",
            LoginMode::Challenge => "challenge",
            LoginMode::PasscodeOnly => "passcode-only",
        }
    }
}

impl fmt::Display for LoginMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A login mode name that is none of `append`, `challenge`, `passcode-only`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown login mode `{0}` (expected append, challenge or passcode-only)")]
pub struct ParseModeError(pub String);

impl FromStr for LoginMode {
    type Err = ParseModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "append" => Ok(LoginMode::Append),
            "challenge" => Ok(LoginMode::Challenge),
            "passcode-only" | "passcode_only" => Ok(LoginMode::PasscodeOnly),
            other => Err(ParseModeError(other.to_owned())),
        }
    }
}

/// Splits `password + passcode` typed into one field.
///
/// The passcode is the last `digits` octets and must be ASCII digits; the password before it
/// must not be empty, because an empty directory password is never a valid credential.
/// Returns `(password, passcode)`, or `None` when the field cannot hold both.
pub fn split_appended(field: &[u8], digits: u8) -> Option<(&[u8], &[u8])> {
    let digits = usize::from(digits);
    if digits == 0 || field.len() <= digits {
        return None;
    }
    let (password, passcode) = field.split_at(field.len() - digits);
    if passcode.iter().all(u8::is_ascii_digit) {
        Some((password, passcode))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_their_names() {
        for mode in [
            LoginMode::Append,
            LoginMode::Challenge,
            LoginMode::PasscodeOnly,
        ] {
            assert_eq!(mode.as_str().parse::<LoginMode>(), Ok(mode));
        }
        assert!("push".parse::<LoginMode>().is_err());
    }

    fn check(field: &str, digits: u8, expected: Option<(&str, &str)>) {
        let got = split_appended(field.as_bytes(), digits);
        let expected = expected.map(|(p, c)| (p.as_bytes(), c.as_bytes()));
        assert_eq!(got, expected, "field {field:?} digits {digits}");
    }

    #[test]
    fn appended_passcodes_are_split_from_the_end() {
        check("Secret123492817", 6, Some(("Secret123", "492817")));
        check("Secret12349281712", 8, Some(("Secret123", "49281712")));
        check("492817", 6, None);
        check("x492817", 6, Some(("x", "492817")));
        check("Secret12349281a", 6, None);
        check("", 6, None);
        check("abc", 0, None);
    }
}
