//! `tollgate user|token|client …`: the admin commands on the embedded store.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use rand::RngCore;
use tollgate_config::{ClientAddress, SharedSecret};
use tollgate_engine::login::LoginMode;
use tollgate_engine::otp::{self, Algorithm, TokenKind, TokenParams};
use zeroize::Zeroizing;

use super::{read_stdin_line, terminal_qr, CliError, GlobalOpts};
use crate::store::{NewClient, NewToken, Store, TokenRecord};

/// Issuer shown by authenticator apps.
pub const ISSUER: &str = "Tollgate";

fn open_store(global: &GlobalOpts) -> Result<Store, CliError> {
    let config = global.config()?;
    let mut store = Store::open_existing(&config.data_dir)?;
    store.set_hash_params(crate::store::HashParams::from_config(&config.passwords));
    Ok(store)
}

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add a user; without --password-stdin the user has no password here and can log in
    /// only through passcode-only clients.
    Add {
        /// User name (matched without case).
        name: String,
        /// Read the directory password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Add users in bulk from a CSV file of `name,password` lines (passwords are hashed
    /// with Argon2id on every core; one transaction).
    Import {
        /// The CSV file ('-' for standard input).
        file: PathBuf,
    },
    /// Set a user's password, read from standard input.
    Passwd {
        /// User name.
        name: String,
    },
    /// List users.
    List,
    /// Show one user and their tokens.
    Show {
        /// User name.
        name: String,
    },
    /// Refuse every login of a user.
    Disable {
        /// User name.
        name: String,
    },
    /// Allow a disabled user again.
    Enable {
        /// User name.
        name: String,
    },
    /// Clear a user's failure count and lock.
    Unlock {
        /// User name.
        name: String,
    },
    /// Set the delivery settings of many users from a CSV file of
    /// `name,delivery,mobile,email` lines (one transaction).
    DeliveryImport {
        /// The CSV file ('-' for standard input).
        file: PathBuf,
        /// Create users that do not exist (without a password).
        #[arg(long)]
        create_users: bool,
    },
    /// Set how a user's second factor reaches them, and their mobile number and e-mail
    /// address (an empty value clears it).
    Set {
        /// User name.
        name: String,
        /// token | realtime-sms | realtime-email | realtime-voice | preload-sms | preload-email | push
        #[arg(long, value_parser = parse_method)]
        delivery: Option<crate::store::Method>,
        /// Mobile number (E.164, e.g. +447700900123).
        #[arg(long)]
        mobile: Option<String>,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
    },
    /// Remove a user and their tokens.
    Remove {
        /// User name.
        name: String,
    },
}

fn lock_text(lockout: &tollgate_engine::login::LockoutState) -> String {
    match lockout.locked_until {
        Some(u64::MAX) => "locked until unlocked".to_owned(),
        Some(t) if t > crate::unix_now() => format!("locked for {} s more", t - crate::unix_now()),
        _ if lockout.failures > 0 => format!("{} recent failures", lockout.failures),
        _ => "-".to_owned(),
    }
}

pub fn user(global: &GlobalOpts, cmd: UserCmd) -> Result<ExitCode, CliError> {
    let mut store = open_store(global)?;
    match cmd {
        UserCmd::Add {
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_stdin_line("password")?)
            } else {
                None
            };
            let u = store.add_user(&name, password.as_ref().map(|p| p.as_bytes()))?;
            println!("user {} added (id {})", u.name, u.id);
        }
        UserCmd::Import { file } => {
            let started = std::time::Instant::now();
            let rows = super::import::read_user_rows(&file)?;
            let hashed = super::import::hash_all(rows, &store.hash_params());
            let n = store.import_users(&hashed)?;
            println!(
                "imported {n} users in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        UserCmd::Passwd { name } => {
            let password = read_stdin_line("password")?;
            store.set_password(&name, password.as_bytes())?;
            println!("password of {name} changed");
        }
        UserCmd::List => {
            let users = store.users()?;
            println!(
                "{:<6} {:<32} {:<9} {:<8} lock",
                "id", "name", "password", "state"
            );
            for u in users {
                println!(
                    "{:<6} {:<32} {:<9} {:<8} {}",
                    u.id,
                    u.name,
                    if u.password_hash.is_some() {
                        "set"
                    } else {
                        "none"
                    },
                    if u.disabled { "disabled" } else { "enabled" },
                    lock_text(&u.lockout)
                );
            }
        }
        UserCmd::Show { name } => {
            let u = store
                .user(&name)?
                .ok_or_else(|| CliError(format!("no user named `{name}`")))?;
            println!("name:      {}", u.name);
            println!("id:        {}", u.id);
            println!(
                "password:  {}",
                if u.password_hash.is_some() {
                    "set"
                } else {
                    "none"
                }
            );
            println!(
                "state:     {}",
                if u.disabled { "disabled" } else { "enabled" }
            );
            println!("lock:      {}", lock_text(&u.lockout));
            println!("failures:  {}", u.lockout.failures);
            println!("delivery:  {}", u.delivery.method.as_str());
            println!(
                "mobile:    {}",
                u.delivery.mobile.as_deref().unwrap_or("(none)")
            );
            println!(
                "email:     {}",
                u.delivery.email.as_deref().unwrap_or("(none)")
            );
            let tokens = store.tokens(Some(u.id))?;
            println!("tokens:    {}", tokens.len());
            for t in &tokens {
                println!("  {}", describe_token(t));
            }
        }
        UserCmd::DeliveryImport { file, create_users } => {
            let rows = super::import::read_delivery_rows(&file)?;
            let (updated, created) = store.set_delivery_many(&rows, create_users)?;
            println!(
                "delivery settings of {} users set ({created} created)",
                updated + created
            );
        }
        UserCmd::Set {
            name,
            delivery,
            mobile,
            email,
        } => {
            if let Some(m) = mobile.as_deref().filter(|m| !m.is_empty()) {
                if !m.starts_with('+')
                    || !m[1..].chars().all(|c| c.is_ascii_digit() || c == ' ')
                    || m.len() < 8
                {
                    return Err(CliError(format!(
                        "--mobile `{m}`: give an international number such as +447700900123"
                    )));
                }
            }
            if let Some(e) = email.as_deref().filter(|e| !e.is_empty()) {
                if !e.contains('@') || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(CliError(format!("--email `{e}` is not an address")));
                }
            }
            let d = store.set_delivery(&name, delivery, mobile.as_deref(), email.as_deref())?;
            if let crate::store::Method::Realtime(c) | crate::store::Method::Preload(c) = d.method {
                if d.destination(c).is_none() {
                    println!(
                        "warning: {name} has no {} destination yet; set --{}",
                        c.as_str(),
                        if c == crate::delivery::Channel::Email {
                            "email"
                        } else {
                            "mobile"
                        }
                    );
                }
            }
            println!(
                "user {name}: delivery {}, mobile {}, email {}",
                d.method.as_str(),
                d.mobile.as_deref().unwrap_or("(none)"),
                d.email.as_deref().unwrap_or("(none)")
            );
        }
        UserCmd::Disable { name } => {
            store.set_disabled(&name, true)?;
            println!("user {name} disabled");
        }
        UserCmd::Enable { name } => {
            store.set_disabled(&name, false)?;
            println!("user {name} enabled");
        }
        UserCmd::Unlock { name } => {
            store.unlock(&name)?;
            println!("user {name} unlocked");
        }
        UserCmd::Remove { name } => {
            store.remove_user(&name)?;
            println!("user {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_token(t: &TokenRecord) -> String {
    let kind = match t.params.kind {
        TokenKind::Totp { period, .. } => format!("totp/{period}s"),
        TokenKind::Hotp => format!("hotp next counter {}", t.state.next_counter),
    };
    format!(
        "token {:<6} {} {} {} digits",
        t.id, kind, t.params.algorithm, t.params.digits
    )
}

#[derive(Debug, Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum TokenType {
    /// Time-based (RFC 6238), for authenticator apps.
    Totp,
    /// Event-based (RFC 4226), for imported hardware tokens.
    Hotp,
}

#[derive(Debug, Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum AlgorithmArg {
    /// HMAC-SHA-1 (what most apps support).
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Sha1 => Algorithm::Sha1,
            AlgorithmArg::Sha256 => Algorithm::Sha256,
            AlgorithmArg::Sha512 => Algorithm::Sha512,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Add a token to a user and print its otpauth:// URI and a QR code to scan.
    Add {
        /// Owner.
        user: String,
        /// Token type.
        #[arg(long = "type", value_enum, default_value = "totp")]
        kind: TokenType,
        /// Seed in base32; a random one of the hash's size is made when omitted.
        #[arg(long)]
        secret: Option<String>,
        /// Digits per code (6 to 8).
        #[arg(long, default_value_t = 6)]
        digits: u8,
        /// HMAC hash.
        #[arg(long, value_enum, default_value = "sha1")]
        algorithm: AlgorithmArg,
        /// TOTP time step in seconds.
        #[arg(long, default_value_t = 30)]
        period: u32,
        /// HOTP counter of the next code.
        #[arg(long, default_value_t = 0)]
        counter: u64,
        /// Do not print the QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// List tokens, of one user or of everyone.
    List {
        /// Only this user's tokens.
        user: Option<String>,
    },
    /// Remove a token by id.
    Remove {
        /// Token id (see `token list`).
        id: i64,
    },
    /// Import seeds in bulk from a CSV file:
    /// `user,secret_base32[,totp|hotp[,digits[,sha1|sha256|sha512[,period_or_counter]]]]`.
    Import {
        /// The CSV file ('-' for standard input).
        file: PathBuf,
        /// Create users that do not exist (without a password).
        #[arg(long)]
        create_users: bool,
    },
    /// Resynchronise a token that drifted (or an HOTP token pressed many times) from two
    /// consecutive codes it shows.
    Resync {
        /// Token id (see `token list`).
        id: i64,
        /// A code.
        code1: String,
        /// The code that follows it.
        code2: String,
    },
    /// Print the code a user's token shows now (for the demo and for tests; the seed
    /// stays in the store).
    Code {
        /// User name.
        user: String,
    },
}

fn print_enrolment(user: &str, token: &TokenRecord, qr: bool) {
    let uri = otp::otpauth_uri(ISSUER, user, &token.secret, &token.params, &token.state);
    println!("otpauth URI (scan it or paste it into an authenticator app):\n{uri}");
    if qr {
        if let Some(code) = terminal_qr(&uri) {
            println!("{code}");
        }
    }
}

pub fn token(global: &GlobalOpts, cmd: TokenCmd) -> Result<ExitCode, CliError> {
    let mut store = open_store(global)?;
    match cmd {
        TokenCmd::Add {
            user,
            kind,
            secret,
            digits,
            algorithm,
            period,
            counter,
            no_qr,
        } => {
            let algorithm: Algorithm = algorithm.into();
            let secret = match secret {
                Some(s) => Zeroizing::new(
                    otp::base32::decode(&s).map_err(|e| CliError(format!("--secret: {e}")))?,
                ),
                None => {
                    let len = match algorithm {
                        Algorithm::Sha1 => 20,
                        Algorithm::Sha256 => 32,
                        Algorithm::Sha512 => 64,
                    };
                    let mut s = Zeroizing::new(vec![0u8; len]);
                    rand::rngs::OsRng.fill_bytes(&mut s);
                    s
                }
            };
            let params = TokenParams {
                kind: match kind {
                    TokenType::Totp => TokenKind::Totp { period, t0: 0 },
                    TokenType::Hotp => TokenKind::Hotp,
                },
                algorithm,
                digits,
            };
            let new = NewToken {
                params,
                secret,
                counter,
            };
            let config = global.config()?;
            match super::directory::enrol(&config, &mut store, &user, new)? {
                Ok((name, token)) if token.id == 0 => {
                    println!("token added to {name} in the directory");
                    print_enrolment(&name, &token, !no_qr);
                }
                Ok((name, token)) => {
                    println!("token {} added to {name}", token.id);
                    print_enrolment(&name, &token, !no_qr);
                }
                Err(new) => {
                    let token = store.add_token(&user, new)?;
                    println!("token {} added to {user}", token.id);
                    print_enrolment(&user, &token, !no_qr);
                }
            }
        }
        TokenCmd::List { user } => {
            let (tokens, names) = match &user {
                Some(name) => {
                    let u = store
                        .user(name)?
                        .ok_or_else(|| CliError(format!("no user named `{name}`")))?;
                    (store.tokens(Some(u.id))?, vec![(u.id, u.name)])
                }
                None => (
                    store.tokens(None)?,
                    store.users()?.into_iter().map(|u| (u.id, u.name)).collect(),
                ),
            };
            let names: std::collections::HashMap<i64, String> = names.into_iter().collect();
            for t in &tokens {
                let owner = names.get(&t.user_id).map(String::as_str).unwrap_or("?");
                println!("{:<24} {}", owner, describe_token(t));
            }
        }
        TokenCmd::Remove { id } => {
            store.remove_token(id)?;
            println!("token {id} removed");
        }
        TokenCmd::Import { file, create_users } => {
            let started = std::time::Instant::now();
            let report = super::import::import_file(&mut store, &file, create_users)?;
            println!(
                "imported {} tokens ({} users created) in {:.1} s",
                report.tokens,
                report.users_created,
                started.elapsed().as_secs_f64()
            );
        }
        TokenCmd::Resync { id, code1, code2 } => {
            let token = store
                .token(id)?
                .ok_or(crate::store::StoreError::NoSuchToken(id))?;
            let config = global.config()?;
            let policy = otp::VerifyPolicy {
                totp_window: config.otp.totp_window,
                hotp_lookahead: config.otp.hotp_lookahead,
                max_drift: config.otp.max_drift,
                resync_window: config.otp.resync_window,
            };
            let state = otp::resync(
                &token.secret,
                &token.params,
                &token.state,
                code1.as_bytes(),
                code2.as_bytes(),
                crate::unix_now(),
                &policy,
            )
            .ok_or_else(|| {
                CliError(format!(
                    "the two codes are not consecutive codes of token {id} within {} steps",
                    policy.resync_window
                ))
            })?;
            store.resync_token(id, state)?;
            println!("token {id} resynchronised (drift {} steps)", state.drift);
        }
        TokenCmd::Code { user } => {
            let u = store
                .user(&user)?
                .ok_or_else(|| CliError(format!("no user named `{user}`")))?;
            let token = store
                .tokens(Some(u.id))?
                .into_iter()
                .next()
                .ok_or_else(|| CliError(format!("{user} has no token")))?;
            let mut buf = [0u8; 8];
            let code = otp::current_code(
                &token.secret,
                &token.params,
                &token.state,
                crate::unix_now(),
                &mut buf,
            );
            println!("{}", String::from_utf8_lossy(code));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Copy, Clone, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Password and passcode in one field.
    Append,
    /// Password, then Access-Challenge for the passcode.
    Challenge,
    /// Passcode alone (the client checked the password).
    PasscodeOnly,
}

impl From<ModeArg> for LoginMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Append => LoginMode::Append,
            ModeArg::Challenge => LoginMode::Challenge,
            ModeArg::PasscodeOnly => LoginMode::PasscodeOnly,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Make a one-time enrolment code for a user's phone and print it with a QR code for
    /// the app to scan.
    Enrol {
        /// User name.
        user: String,
        /// Do not print the QR code.
        #[arg(long)]
        no_qr: bool,
    },
    /// List enrolled devices, of one user or of everyone.
    List {
        /// Only this user's devices.
        user: Option<String>,
    },
    /// Remove a device.
    Remove {
        /// Device id (see `device list`).
        id: String,
    },
}

/// Runs a `device` command.
pub fn device(global: &GlobalOpts, cmd: DeviceCmd) -> Result<ExitCode, CliError> {
    let config = global.config()?;
    let mut store = open_store(global)?;
    match cmd {
        DeviceCmd::Enrol { user, no_qr } => {
            let mut raw = [0u8; 15];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let code = otp::base32::encode(&raw);
            store.add_enrolment_code(&user, &code, config.mobile_api.enrol_ttl_secs as i64)?;
            let uri = format!(
                "tollgate://enrol?url={}&code={code}",
                config.mobile_api.public_url
            );
            println!(
                "enrolment code for {user} (valid {} s, once): {code}",
                config.mobile_api.enrol_ttl_secs
            );
            println!("{uri}");
            if !no_qr {
                if let Some(qr) = terminal_qr(&uri) {
                    println!("{qr}");
                }
            }
        }
        DeviceCmd::List { user } => {
            let (devices, names) = match &user {
                Some(name) => {
                    let u = store
                        .user(name)?
                        .ok_or_else(|| CliError(format!("no user named `{name}`")))?;
                    (store.devices(Some(u.id))?, vec![(u.id, u.name)])
                }
                None => (
                    store.devices(None)?,
                    store.users()?.into_iter().map(|u| (u.id, u.name)).collect(),
                ),
            };
            let names: std::collections::HashMap<i64, String> = names.into_iter().collect();
            for d in &devices {
                println!(
                    "{:<24} {:<34} {:<5} {:<8} {}",
                    names.get(&d.user_id).map(String::as_str).unwrap_or("?"),
                    d.id,
                    d.platform.as_str(),
                    d.key_alg,
                    d.name
                );
            }
        }
        DeviceCmd::Remove { id } => {
            store.remove_device(&id)?;
            println!("device {id} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Messages waiting to be sent (with --dead, the dead letters).
    List {
        /// Show the dead letters instead.
        #[arg(long)]
        dead: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Put a dead letter back in the queue.
    Resend {
        /// Message id (see `outbox list --dead`).
        id: i64,
    },
    /// Drop a dead letter for good.
    Discard {
        /// Message id (see `outbox list --dead`).
        id: i64,
    },
}

fn parse_method(s: &str) -> Result<crate::store::Method, String> {
    crate::store::Method::parse(s).ok_or_else(|| {
        format!("`{s}`: one of token, realtime-sms, realtime-email, realtime-voice, preload-sms, preload-email, push")
    })
}

/// Runs an `outbox` command.
pub fn outbox(global: &GlobalOpts, cmd: OutboxCmd) -> Result<ExitCode, CliError> {
    let mut store = open_store(global)?;
    match cmd {
        OutboxCmd::List { dead, limit } => {
            let (live, dead_count) = store.outbox_counts()?;
            println!("{live} waiting, {dead_count} dead letters");
            for m in store.outbox(dead, limit)? {
                println!(
                    "{:<8} {:<6} {:<28} {:<16} attempts {:<3} {}",
                    m.id,
                    m.channel.as_str(),
                    m.to,
                    m.purpose,
                    m.attempts,
                    m.last_error.as_deref().unwrap_or("")
                );
            }
        }
        OutboxCmd::Resend { id } => {
            store.resend(id)?;
            println!("message {id} queued again");
        }
        OutboxCmd::Discard { id } => {
            store.discard(id)?;
            println!("dead letter {id} discarded");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum ClientCmd {
    /// Add a RADIUS client; the shared secret is read from standard input.
    Add {
        /// Name in logs and metrics.
        name: String,
        /// Source address or CIDR network.
        #[arg(long)]
        address: ClientAddress,
        /// Read the shared secret from standard input (required).
        #[arg(long, required = true)]
        secret_stdin: bool,
        /// Login mode.
        #[arg(long, value_enum, default_value = "append")]
        mode: ModeArg,
        /// Drop requests without Message-Authenticator.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        require_message_authenticator: bool,
        /// Requests per second allowed (0: the server default).
        #[arg(long, default_value_t = 0)]
        rate_limit: u32,
    },
    /// List RADIUS clients of the store.
    List,
    /// Remove a RADIUS client.
    Remove {
        /// Name.
        name: String,
    },
}

pub fn client(global: &GlobalOpts, cmd: ClientCmd) -> Result<ExitCode, CliError> {
    let mut store = open_store(global)?;
    match cmd {
        ClientCmd::Add {
            name,
            address,
            secret_stdin: _,
            mode,
            require_message_authenticator,
            rate_limit,
        } => {
            let secret = read_stdin_line("shared secret")?;
            if secret.len() < 12 {
                eprintln!(
                    "warning: a shared secret of fewer than 12 characters is easy to guess offline"
                );
            }
            let c = store.add_client(NewClient {
                name,
                address,
                secret: SharedSecret::new(secret.as_bytes().to_vec()),
                mode: mode.into(),
                require_message_authenticator,
                rate_limit,
            })?;
            println!(
                "client {} added: {} mode {}, Message-Authenticator {}",
                c.name,
                c.address,
                c.mode,
                if c.require_message_authenticator {
                    "required"
                } else {
                    "optional"
                }
            );
        }
        ClientCmd::List => {
            println!(
                "{:<24} {:<20} {:<14} {:<10} rate",
                "name", "address", "mode", "msg-auth"
            );
            for c in store.clients()? {
                println!(
                    "{:<24} {:<20} {:<14} {:<10} {}",
                    c.name,
                    c.address.to_string(),
                    c.mode.as_str(),
                    if c.require_message_authenticator {
                        "required"
                    } else {
                        "optional"
                    },
                    if c.rate_limit == 0 {
                        "default".to_owned()
                    } else {
                        format!("{}/s", c.rate_limit)
                    }
                );
            }
        }
        ClientCmd::Remove { name } => {
            store.remove_client(&name)?;
            println!("client {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
