//! The `tollgate` command line: `serve`, `init`, `check-config`, and the admin commands for
//! users, tokens and clients, plus `radius-test`.
//!
//! Admin commands open the same data directory as the server and write through the store;
//! a running server picks their changes up within a second, with no restart. Only `serve`
//! and `init` create a store: an admin command pointed at a directory without one refuses,
//! naming the path, rather than answer from an empty store of its own making.

mod admin;
mod directory;
pub(crate) mod import;
mod radius_test;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tollgate_config::Config;

/// Two-factor authentication for VPN concentrators and gateways that speak RADIUS: a
/// directory password and a one-time passcode (soft or hardware token, a code sent by
/// e-mail or SMS, or a push approval).
///
/// `serve` runs the server; `init` creates a data directory's store; every other command
/// works on the store of an existing data directory, and a running server picks its changes
/// up within a second.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalOpts {
    /// Configuration file (TOML). Without it, the built-in defaults apply.
    #[arg(long, global = true, env = "TOLLGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (store and master key); overrides `data_dir` of the configuration.
    #[arg(long, global = true, env = "TOLLGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (creating the data directory's store on the first start).
    Serve(serve::ServeArgs),
    /// Create the data directory and its store (master key and database), or check the
    /// ones it holds.
    Init,
    /// Validate a configuration file and report errors with their key path.
    CheckConfig,
    /// Manage users of the embedded directory.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Manage soft and hardware tokens.
    #[command(subcommand)]
    Token(admin::TokenCmd),
    /// Phones enrolled for push approval.
    #[command(subcommand)]
    Device(admin::DeviceCmd),
    /// The outbox of delivered codes: waiting messages and dead letters.
    #[command(subcommand)]
    Outbox(admin::OutboxCmd),
    /// Check the LDAP / Active Directory domains.
    #[command(subcommand)]
    Directory(directory::DirectoryCmd),
    /// Manage RADIUS clients.
    #[command(subcommand)]
    Client(admin::ClientCmd),
    /// Send one Access-Request to a RADIUS server and tell whether it answers correctly.
    RadiusTest(radius_test::RadiusTestArgs),
}

/// A command's failure, shown to the operator as one line.
#[derive(Debug)]
pub struct CliError(pub String);

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError(e.to_string())
    }
}

impl GlobalOpts {
    /// Loads the configuration and applies the command-line overrides.
    fn config(&self) -> Result<Config, CliError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(CliError(message)) => {
            eprintln!("tollgate: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::CheckConfig => {
            let config = cli.global.config()?;
            for c in &config.clients {
                c.resolve_secret()?;
            }
            for d in &config.ldap {
                d.resolve_bind_password()?;
                crate::ldap::conn::tls_config(d)?;
            }
            match &cli.global.config {
                Some(p) => println!("{}: OK ({} clients)", p.display(), config.clients.len()),
                None => println!("built-in defaults: OK"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Init => {
            let config = cli.global.config()?;
            let existed = config.data_dir.join(crate::store::DB_FILE).is_file();
            crate::store::Store::open(&config.data_dir)?;
            let what = if existed {
                "holds a store"
            } else {
                "now holds a new store"
            };
            println!("{}: {what}", config.data_dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => admin::user(&cli.global, cmd),
        Command::Token(cmd) => admin::token(&cli.global, cmd),
        Command::Client(cmd) => admin::client(&cli.global, cmd),
        Command::Directory(cmd) => directory::directory(&cli.global, cmd),
        Command::Outbox(cmd) => admin::outbox(&cli.global, cmd),
        Command::Device(cmd) => admin::device(&cli.global, cmd),
        Command::RadiusTest(args) => radius_test::run(args),
    }
}

/// Reads one line from standard input (a password or a secret), without its line end.
fn read_stdin_line(what: &str) -> Result<zeroize::Zeroizing<String>, CliError> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError(format!("cannot read the {what} from standard input: {e}")))?;
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err(CliError(format!(
            "the {what} read from standard input is empty"
        )));
    }
    Ok(line)
}

/// Renders text as a QR code for a terminal (two rows of modules per line).
fn terminal_qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}
