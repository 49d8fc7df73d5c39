//! `tollgate directory test`, and enrolment of tokens for directory users.
//!
//! The test walks the path a login takes and reports each step: every server (connect,
//! TLS, service bind), then the user (search, attributes, groups, policy, account state,
//! tokens) and, when a password is given on standard input, the user's bind.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use tollgate_config::{Config, GroupMembership};

use super::{read_stdin_line, CliError, GlobalOpts};
use crate::ldap::conn::{ConnectError, Endpoints};
use crate::ldap::record::DirToken;
use crate::ldap::{Account, BindResult, DirUser, Domain, Domains, SwapResult};
use crate::store::{NewToken, Store, TokenRecord};

/// `tollgate directory ...`
#[derive(Debug, Subcommand)]
pub enum DirectoryCmd {
    /// Connect to a domain's servers, bind the service account, look up a user, and
    /// report what was found or exactly what failed.
    Test {
        /// The domain (its name or an alias); the only or default one when omitted.
        #[arg(long)]
        domain: Option<String>,
        /// A user to look up (without the domain part).
        user: Option<String>,
        /// Also check the user's password, read from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError(format!("cannot start the runtime: {e}")))
}

/// Starts the connections of every configured domain (lazily connected).
async fn start(config: &Config, store: &Store) -> Result<Domains, CliError> {
    Domains::start(&config.ldap, Arc::new(store.master_key()?))
        .await
        .map_err(|e| CliError(e.to_string()))
}

fn pick<'a>(domains: &'a Domains, name: Option<&str>) -> Result<&'a Arc<Domain>, CliError> {
    let list = domains.list();
    match name {
        Some(n) => domains
            .by_name(n)
            .ok_or_else(|| CliError(format!("no [[ldap]] domain is named `{n}`"))),
        None if list.len() == 1 => Ok(&list[0]),
        None => domains.default_domain().ok_or_else(|| {
            CliError("several domains are configured: name one with --domain".into())
        }),
    }
}

/// Runs `directory test`.
pub fn directory(global: &GlobalOpts, cmd: DirectoryCmd) -> Result<ExitCode, CliError> {
    let config = global.config()?;
    if config.ldap.is_empty() {
        return Err(CliError(
            "no [[ldap]] domain is configured: users live in the embedded directory".into(),
        ));
    }
    let store = Store::open_existing(&config.data_dir)?;
    let DirectoryCmd::Test {
        domain,
        user,
        password_stdin,
    } = cmd;
    let password = if password_stdin {
        Some(read_stdin_line("password")?)
    } else {
        None
    };
    runtime()?.block_on(async {
        let domains = start(&config, &store).await?;
        let domain = pick(&domains, domain.as_deref())?;
        let ok = test_domain(
            domain,
            user.as_deref(),
            password.as_deref().map(String::as_bytes),
        )
        .await;
        domains.stop();
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        })
    })
}

async fn test_domain(domain: &Domain, user: Option<&str>, password: Option<&[u8]>) -> bool {
    let c = &domain.config;
    println!(
        "domain {} ({:?} profile, {} server(s), base {})",
        domain.name,
        c.profile,
        c.servers.len(),
        c.base_dn
    );
    let ends: &Endpoints = &domain.ends;
    let mut any = false;
    for (i, server) in ends.servers.iter().enumerate() {
        let started = Instant::now();
        match ends.connect(i, true).await {
            Ok(mut ldap) => {
                any = true;
                println!(
                    "  server {}: connected{}, service account {} bound ({} ms)",
                    server.url,
                    if server.url.starts_with("ldaps://") {
                        " over TLS"
                    } else if c.starttls {
                        " with StartTLS"
                    } else {
                        " in clear text"
                    },
                    ends.bind_dn,
                    started.elapsed().as_millis()
                );
                let _ = ldap.unbind().await;
            }
            Err(ConnectError::Transport(e)) => {
                println!("  server {}: FAILED to connect: {e}", server.url);
            }
            Err(ConnectError::ServiceBind(why)) => {
                println!(
                    "  server {}: connected, but the service account {} was REFUSED: {why}",
                    server.url, ends.bind_dn
                );
            }
        }
    }
    if !any {
        println!("no server of {} could be used", domain.name);
        return false;
    }
    let Some(user) = user else {
        return true;
    };
    let now = crate::unix_now();
    let found = match domain.find_user(user, now).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            println!("  user {user}: NOT FOUND with {}", c.user_filter());
            return false;
        }
        Err(e) => {
            println!("  user {user}: lookup FAILED: {e}");
            return false;
        }
    };
    describe(domain, &found);
    let mut ok = found.account == Account::Active;
    if let Some(password) = password {
        match domain.check_password(&found.dn, password).await {
            Ok(BindResult::Good) => println!("  password: accepted by the directory"),
            Ok(BindResult::Bad) => {
                ok = false;
                println!("  password: REFUSED by the directory");
            }
            Ok(BindResult::Account(a)) => {
                ok = false;
                println!("  password: refused because the account is {a:?}");
            }
            Err(e) => {
                ok = false;
                println!("  password: check FAILED: {e}");
            }
        }
    }
    ok
}

fn describe(domain: &Domain, u: &DirUser) {
    let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    println!("  user {}: found {}", u.qualified, u.dn);
    println!("    name: {}", u.name);
    println!("    mobile: {}", or_none(&u.mobile));
    println!("    mail: {}", or_none(&u.mail));
    let how = match domain.config.group_membership() {
        GroupMembership::MemberOf => "memberOf",
        GroupMembership::GroupSearch => "group search",
    };
    println!(
        "    groups ({how}): {}",
        if u.groups.is_empty() {
            "(none)".to_owned()
        } else {
            u.groups.join("; ")
        }
    );
    println!("    policy: {}", domain.policy(u).as_str());
    println!("    account: {:?}", u.account);
    if domain.config.tokens_in_directory {
        println!(
            "    tokens in {}: {} readable of {}",
            domain.config.token_attribute,
            domain.tokens(u).len(),
            u.token_values.len()
        );
    }
}

/// Adds a token for a directory user: into the directory when the domain keeps token
/// records there, otherwise into the embedded store under `user@domain` (the entry is
/// created, without a password, if needed). Gives the token back when `user` belongs to
/// no domain, and the record and the name it was enrolled under otherwise.
pub fn enrol(
    config: &Config,
    store: &mut Store,
    user: &str,
    token: NewToken,
) -> Result<Result<(String, TokenRecord), NewToken>, CliError> {
    if config.ldap.is_empty() {
        return Ok(Err(token));
    }
    runtime()?.block_on(async {
        let domains = start(config, store).await?;
        let result = enrol_in(&domains, store, user, token).await;
        domains.stop();
        result
    })
}

async fn enrol_in(
    domains: &Domains,
    store: &mut Store,
    user: &str,
    token: NewToken,
) -> Result<Result<(String, TokenRecord), NewToken>, CliError> {
    let Some(route) = domains.route(user) else {
        return Ok(Err(token));
    };
    let domain = route.domain;
    let found = domain
        .find_user(route.user, crate::unix_now())
        .await
        .map_err(|e| CliError(format!("directory {}: {e}", domain.name)))?
        .ok_or_else(|| {
            CliError(format!(
                "no user `{}` in the directory {}",
                route.user, domain.name
            ))
        })?;
    if !domain.config.tokens_in_directory {
        if store.user(&found.qualified)?.is_none() {
            store.add_user(&found.qualified, None)?;
        }
        let record = store.add_token(&found.qualified, token)?;
        return Ok(Ok((found.qualified, record)));
    }
    token
        .params
        .validate()
        .map_err(|e| CliError(e.to_string()))?;
    let dir_token = DirToken {
        params: token.params,
        secret: token.secret.clone(),
        state: tollgate_engine::otp::TokenState {
            next_counter: token.counter,
            drift: 0,
        },
    };
    let value = domain.seal(&found, &dir_token);
    let current = domain
        .read_token_values(&found.dn)
        .await
        .map_err(|e| CliError(format!("directory {}: {e}", domain.name)))?;
    match domain.write_token(&found.dn, None, value, &current).await {
        Ok(SwapResult::Written) => {}
        Ok(SwapResult::AccessDenied) => {
            return Err(CliError(format!(
            "Error writing to LDAP, access denied: the service account {} may not write {} of {}",
            domain.config.bind_dn, domain.config.token_attribute, found.dn
        )))
        }
        Ok(SwapResult::Conflict) => {
            return Err(CliError("the token record is already there".into()))
        }
        Err(e) => return Err(CliError(format!("directory {}: {e}", domain.name))),
    }
    Ok(Ok((
        found.qualified,
        TokenRecord {
            id: 0,
            user_id: 0,
            params: dir_token.params,
            secret: dir_token.secret,
            state: dir_token.state,
            created_at: crate::unix_now() as i64,
        },
    )))
}
