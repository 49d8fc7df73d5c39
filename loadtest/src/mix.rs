//! What kinds of request a run sends, and in which proportions.
//!
//! A mix is a weight per [`Kind`]. Kinds are drawn with smooth weighted round-robin rather
//! than at random, so that every stretch of the run, however short, holds the requested
//! proportions and two runs of the same mix send the same sequence.

use std::fmt;

/// One kind of request and the answer it should get.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A correct login; expects Access-Accept.
    Good,
    /// A login with a wrong code (a wrong password under PAP); expects Access-Reject.
    WrongCode,
    /// A request signed with a wrong shared secret; the server should drop it silently.
    BadSecret,
    /// A datagram that is not a valid RADIUS packet; the server should drop it silently.
    Malformed,
    /// A login with a code the server accepted before; expects Access-Reject.
    Replay,
    /// A login of a user that does not exist; expects Access-Reject.
    UnknownUser,
    /// A real user's login with a wrong password; expects Access-Reject. Beside
    /// `unknown-user`, it shows whether a reply's timing tells which names exist.
    WrongPassword,
}

/// How many kinds there are.
pub const KINDS: usize = 7;

impl Kind {
    /// Every kind, in the order of their indices.
    pub const ALL: [Kind; KINDS] = [
        Kind::Good,
        Kind::WrongCode,
        Kind::BadSecret,
        Kind::Malformed,
        Kind::Replay,
        Kind::UnknownUser,
        Kind::WrongPassword,
    ];

    /// The name used in `--mix` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Good => "accept",
            Kind::WrongCode => "reject",
            Kind::BadSecret => "bad-secret",
            Kind::Malformed => "malformed",
            Kind::Replay => "replay",
            Kind::UnknownUser => "unknown-user",
            Kind::WrongPassword => "bad-password",
        }
    }

    /// The kind of a `--mix` name.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The position of the kind in [`Kind::ALL`], for per-kind arrays.
    pub fn index(self) -> usize {
        match self {
            Kind::Good => 0,
            Kind::WrongCode => 1,
            Kind::BadSecret => 2,
            Kind::Malformed => 3,
            Kind::Replay => 4,
            Kind::UnknownUser => 5,
            Kind::WrongPassword => 6,
        }
    }

    /// Whether the request logs a real user in, so that the user must not be busy.
    pub fn needs_user(self) -> bool {
        matches!(
            self,
            Kind::Good | Kind::WrongCode | Kind::Replay | Kind::WrongPassword
        )
    }

    /// Whether the server should answer at all.
    pub fn expects_reply(self) -> bool {
        !matches!(self, Kind::BadSecret | Kind::Malformed)
    }

    /// Whether the server counts the request as a failed login of a real user, towards
    /// its lockout threshold.
    pub fn counts_as_failure(self) -> bool {
        matches!(self, Kind::WrongCode | Kind::Replay | Kind::WrongPassword)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A weight per kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: [u32; KINDS],
}

impl Mix {
    /// The default of `--mix`: mostly good logins with a little of every kind of trouble.
    pub const DEFAULT_SPEC: &'static str =
        "accept=80,reject=10,bad-secret=3,malformed=3,replay=2,unknown-user=2";

    /// A mix of one kind only.
    pub fn only(kind: Kind) -> Mix {
        let mut weights = [0; KINDS];
        weights[kind.index()] = 1;
        Mix { weights }
    }

    /// Parses `name=weight,...`; kinds left out get weight 0 and at least one must be
    /// positive.
    pub fn parse(spec: &str) -> Result<Mix, String> {
        let mut weights = [0u32; KINDS];
        let mut seen = [false; KINDS];
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not name=weight"))?;
            let kind = Kind::parse(name.trim()).ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown kind `{name}` (known: {})", names.join(", "))
            })?;
            if std::mem::replace(&mut seen[kind.index()], true) {
                return Err(format!("`{name}` is given twice"));
            }
            weights[kind.index()] = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight `{weight}` of `{name}` is not a whole number"))?;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("the mix has no kind with a positive weight".to_owned());
        }
        if weights.iter().map(|&w| u64::from(w)).sum::<u64>() > 1_000_000 {
            return Err("the weights add up to more than 1000000".to_owned());
        }
        Ok(Mix { weights })
    }

    /// The weight of a kind.
    pub fn weight(&self, kind: Kind) -> u32 {
        self.weights[kind.index()]
    }

    /// Whether the kind is ever sent.
    pub fn has(&self, kind: Kind) -> bool {
        self.weight(kind) > 0
    }

    /// The mix as `name=weight,...`, positive weights only.
    pub fn spec(&self) -> String {
        Kind::ALL
            .iter()
            .filter(|k| self.has(**k))
            .map(|k| format!("{}={}", k.name(), self.weight(*k)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Draws kinds in the proportions of a mix (smooth weighted round-robin, as nginx
/// balances upstreams): each draw adds every weight to its kind's credit, picks the kind with
/// the most credit and takes the total weight off it.
#[derive(Debug, Clone)]
pub struct Picker {
    weights: [i64; KINDS],
    credit: [i64; KINDS],
    total: i64,
}

impl Picker {
    /// A picker for `mix`.
    pub fn new(mix: &Mix) -> Self {
        let weights = mix.weights.map(i64::from);
        Picker {
            weights,
            credit: [0; KINDS],
            total: weights.iter().sum(),
        }
    }

    /// The next kind to send.
    pub fn next_kind(&mut self) -> Kind {
        let mut best = 0;
        for i in 0..KINDS {
            self.credit[i] += self.weights[i];
            if self.credit[i] > self.credit[best] {
                best = i;
            }
        }
        self.credit[best] -= self.total;
        Kind::ALL[best]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mix_parses() {
        let mix = Mix::parse(Mix::DEFAULT_SPEC).unwrap();
        assert_eq!(mix.weight(Kind::Good), 80);
        assert_eq!(mix.weight(Kind::UnknownUser), 2);
        assert_eq!(mix.spec(), Mix::DEFAULT_SPEC);
    }

    #[test]
    fn a_mix_of_the_last_kind_alone_draws_only_it() {
        let mut picker = Picker::new(&Mix::parse("bad-password=1").unwrap());
        for _ in 0..20 {
            assert_eq!(picker.next_kind(), Kind::WrongPassword);
        }
    }

    #[test]
    fn bad_mixes_are_refused() {
        for bad in [
            "",
            "accept=0",
            "accept",
            "accept=x",
            "nope=1",
            "accept=1,accept=2",
        ] {
            assert!(Mix::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_window_holds_the_proportions() {
        let mix =
            Mix::parse("accept=80,reject=10,bad-secret=3,malformed=3,replay=2,unknown-user=2")
                .unwrap();
        let mut picker = Picker::new(&mix);
        let mut counts = [0u32; KINDS];
        for _ in 0..100 {
            counts[picker.next_kind().index()] += 1;
        }
        assert_eq!(counts, [80, 10, 3, 3, 2, 2, 0]);
        let mut only = Picker::new(&Mix::only(Kind::Replay));
        assert!((0..10).all(|_| only.next_kind() == Kind::Replay));
    }
}
