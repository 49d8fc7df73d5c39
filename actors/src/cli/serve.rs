//! `tollgate serve`: run the server until SIGTERM or SIGINT, then drain and stop.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Args;
use rand::RngCore;
use tollgate_config::{ClientAddress, Config, LogFormat, SharedSecret};
use tollgate_engine::login::LoginMode;
use tollgate_engine::otp::{self, base32, Algorithm, TokenKind, TokenParams};
use zeroize::Zeroizing;

use super::{terminal_qr, CliError, GlobalOpts};
use crate::server::Server;
use crate::store::{NewClient, NewToken, Store};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// RADIUS listening address (repeatable); overrides `radius.listen`.
    #[arg(long)]
    radius_listen: Vec<SocketAddr>,
    /// Create (or refresh) a demo user, TOTP token and loopback client, and print how to
    /// log in with them. Listens on 127.0.0.1:1812 unless --radius-listen says otherwise.
    #[arg(long)]
    demo: bool,
}

/// Sets up logging to standard error through a writer thread, so that no request waits on
/// a write to the terminal or journal. Lines beyond the buffer are dropped (and said so)
/// rather than slow a login. The returned guard flushes the buffer when dropped.
fn init_logging(config: &Config) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(65_536)
        .thread_name("tollgate-log")
        // Buffered: the writer thread drains every waiting line, then flushes once, so a
        // busy server writes its log in few large writes instead of one per line.
        .finish(Background::new(std::io::BufWriter::with_capacity(
            64 * 1024,
            crate::audit::LockedStderr,
        )));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    guard
}

/// Where the audit trail's log lines go: standard error, beside the log's other lines, in
/// the log's format; nowhere when the log's filter leaves out `tollgate::audit` at `info`.
fn audit_log(config: &Config) -> Option<crate::audit::LogOutput> {
    tracing::enabled!(target: "tollgate::audit", tracing::Level::INFO).then(|| {
        crate::audit::LogOutput {
            format: config.log.format,
            writer: Box::new(crate::audit::LockedStderr),
        }
    })
}

/// A writer that lowers its thread to background priority on first use: the log's writer
/// thread is started by the logging library, so this is the first code of ours it runs.
struct Background<W> {
    inner: W,
    lowered: bool,
}

impl<W> Background<W> {
    fn new(inner: W) -> Self {
        Background {
            inner,
            lowered: false,
        }
    }
}

impl<W: std::io::Write> std::io::Write for Background<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.lowered {
            self.lowered = true;
            crate::sched::background();
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn random_text(bytes: usize) -> Zeroizing<String> {
    let mut raw = Zeroizing::new(vec![0u8; bytes]);
    rand::rngs::OsRng.fill_bytes(&mut raw);
    Zeroizing::new(base32::encode(&raw).to_lowercase())
}

const DEMO_USER: &str = "demo";
const DEMO_CLIENT: &str = "demo-loopback";

/// What the demo prints once the server listens.
struct Demo {
    password: Zeroizing<String>,
    secret: String,
    uri: String,
}

/// Creates the demo user, token and client (or gives the user a fresh password).
fn setup_demo(config: &Config) -> Result<Demo, CliError> {
    let mut store = Store::open(&config.data_dir)?;
    store.set_hash_params(crate::store::HashParams::from_config(&config.passwords));
    let password = random_text(5);
    match store.user(DEMO_USER)? {
        Some(_) => store.set_password(DEMO_USER, password.as_bytes())?,
        None => {
            store.add_user(DEMO_USER, Some(password.as_bytes()))?;
        }
    }
    let user = store.user(DEMO_USER)?.expect("demo user was just written");
    let token = match store.tokens(Some(user.id))?.into_iter().next() {
        Some(t) => t,
        None => {
            let mut seed = Zeroizing::new(vec![0u8; 20]);
            rand::rngs::OsRng.fill_bytes(&mut seed);
            store.add_token(
                DEMO_USER,
                NewToken {
                    params: TokenParams {
                        kind: TokenKind::Totp { period: 30, t0: 0 },
                        algorithm: Algorithm::Sha1,
                        digits: 6,
                    },
                    secret: seed,
                    counter: 0,
                },
            )?
        }
    };
    let secret = match store.clients()?.into_iter().find(|c| c.name == DEMO_CLIENT) {
        Some(c) => c.secret,
        None => {
            let secret = SharedSecret::new(random_text(10).as_bytes().to_vec());
            store.add_client(NewClient {
                name: DEMO_CLIENT.to_owned(),
                address: "127.0.0.1".parse::<ClientAddress>().map_err(CliError)?,
                secret: secret.clone(),
                mode: LoginMode::Append,
                require_message_authenticator: true,
                rate_limit: 0,
            })?;
            secret
        }
    };
    let uri = otp::otpauth_uri(
        super::admin::ISSUER,
        DEMO_USER,
        &token.secret,
        &token.params,
        &token.state,
    );
    Ok(Demo {
        password,
        secret: String::from_utf8_lossy(secret.expose()).into_owned(),
        uri,
    })
}

/// Prints everything needed to log in as the demo user through `listen`.
fn print_demo(config: &Config, demo: &Demo, listen: SocketAddr) {
    let Demo {
        password,
        secret: secret_text,
        uri,
    } = demo;
    let dir = config.data_dir.display();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "tollgate".to_owned());
    println!("== Tollgate demo ==");
    println!("user:      {DEMO_USER}");
    println!("password:  {}", password.as_str());
    println!("client:    {DEMO_CLIENT} (127.0.0.1, append mode, secret {secret_text})");
    println!("token:     TOTP, scan this QR code or paste the URI into an authenticator app:");
    println!("{uri}");
    if let Some(qr) = terminal_qr(uri) {
        println!("{qr}");
    }
    println!("Log in with password + passcode in one field (the code comes from your app, or from");
    println!("`tollgate token code {DEMO_USER}`):");
    println!(
        "  echo \"User-Name = {DEMO_USER}, User-Password = {}$({exe} --data-dir {dir} token code {DEMO_USER}), Message-Authenticator = 0x00\" | radclient -x {listen} auth {secret_text}",
        password.as_str()
    );
    println!();
}

pub fn run(global: &GlobalOpts, args: ServeArgs) -> Result<ExitCode, CliError> {
    let mut config = global.config()?;
    if !args.radius_listen.is_empty() {
        config.radius.listen = args.radius_listen.clone();
    } else if args.demo && global.config.is_none() {
        config.radius.listen = vec!["127.0.0.1:1812".parse().expect("literal address")];
    }
    config.validate()?;
    crate::sched::configure(crate::sched::Policy::from_config(&config.scheduling));
    let _log_guard = init_logging(&config);
    let demo = if args.demo {
        // A server already on this directory would see the demo user's password change
        // under it: find out before touching anything (the server takes the lock for good
        // when it starts).
        if config.data_dir.is_dir() {
            drop(crate::store::serving::lock(&config.data_dir)?);
        }
        Some(setup_demo(&config)?)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tollgate")
        .on_thread_start(crate::sched::background)
        .build()?;
    runtime.block_on(async move {
        if let Some(addr) = config.metrics.listen {
            let installed = metrics_exporter_prometheus::PrometheusBuilder::new()
                .with_http_listener(addr)
                // Histogram samples wait in a queue until the next upkeep: draining them
                // often keeps each drain short (at 100,000 logins/s, every 5 s, the
                // default, is a 2 ms burst on a runtime thread).
                .upkeep_timeout(std::time::Duration::from_millis(100))
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("_seconds".to_owned()),
                    crate::metrics::LATENCY_BUCKETS,
                )
                .map_err(|e| CliError(format!("metrics: {e}")))?
                .install();
            installed.map_err(|e| CliError(format!("metrics listener on {addr}: {e}")))?;
            tracing::info!(address = %addr, "metrics listening");
            tokio::spawn(crate::process::run());
        }
        // The handlers are in place before anyone is told the server listens: a SIGTERM
        // sent the moment "listening on" appears stops it cleanly, never kills it.
        let stop = StopSignals::new()?;
        let server = Server::start(&config, audit_log(&config)).await?;
        if let Some(demo) = &demo {
            print_demo(&config, demo, server.radius_addrs()[0]);
        }
        for addr in server.radius_addrs() {
            // A line tests and scripts can wait for.
            println!("listening on {addr}");
        }
        let clients = server.client_names();
        if clients.is_empty() {
            tracing::warn!("no RADIUS clients yet: add one with `tollgate client add`");
        }
        stop.wait().await;
        tracing::info!("shutting down");
        let report = server.shutdown().await;
        tracing::info!(
            abandoned = report.abandoned,
            drained_ms = report.drained_in.as_millis() as u64,
            "stopped"
        );
        Ok::<_, CliError>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM and SIGINT, caught from the moment this is made.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn new() -> Result<StopSignals, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for either.
    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {},
            _ = self.int.recv() => {},
        }
    }
}
