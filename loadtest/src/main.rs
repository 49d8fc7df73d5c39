//! `tollgate-loadtest`: the command line of Tollgate's RADIUS load harness.
//!
//! `setup` writes users, seeds and a shared secret for a server to import; `push-setup`
//! enrols a simulated phone per user with a running server's mobile API; `run` drives load
//! against a server on a loopback address and reports throughput, latency and every kind
//! of reply; `hiccups` measures the stalls of the machine itself. See the crate documentation of `tollgate_loadtest` for how it works.

use std::io::BufRead;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use tollgate_loadtest::mix::{Kind, Mix};
use tollgate_loadtest::push::approver::{Approvers, PushConfig, PushLink};
use tollgate_loadtest::push::{app, devices, http, setup as push_setup};
use tollgate_loadtest::report::{ConfigReport, PushReport, Report, WarmupReport};
use tollgate_loadtest::run::{run_phase, Load, Phase, Target};
use tollgate_loadtest::{guard, state, LoginMode};

/// The longest a run may last; a load test is a bounded experiment, not a service.
const MAX_DURATION_SECS: f64 = 3600.0;

/// RADIUS load harness for Tollgate (and any RADIUS server on this machine).
#[derive(Debug, Parser)]
#[command(name = "tollgate-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write users, HOTP seeds and a shared secret for a server to import.
    Setup(SetupArgs),
    /// Make the users of a setup directory push users, each with a simulated phone enrolled
    /// with a running server's mobile API (for `run --scenario push`).
    PushSetup(PushSetupArgs),
    /// Send load to a server on a loopback address and report what came back.
    Run(Box<RunArgs>),
    /// Measure this machine's own stalls: spin on one thread (pin it with taskset) and
    /// count how often and how long it is kept off its core. A tail latency below these
    /// stalls cannot be measured on this machine.
    Hiccups(HiccupsArgs),
    /// The open-loop latency of a perfect server and harness on this machine: plays
    /// requests at --rate, each needing --service-us of the server core, against the stalls
    /// that two `hiccups --json` runs measured at the same time on the harness's core and
    /// the server's. No server can show a lower tail with those stalls.
    Floor(FloorArgs),
}

#[derive(Debug, clap::Args)]
struct FloorArgs {
    /// Requests per second, as in an open-loop run.
    #[arg(long)]
    rate: f64,
    /// Server core time per request, in microseconds (1e6 / the closed-loop maximum is the
    /// least it takes).
    #[arg(long)]
    service_us: f64,
    /// `hiccups --json` of the harness's core.
    #[arg(long)]
    harness: PathBuf,
    /// `hiccups --json` of the server's core, taken at the same time.
    #[arg(long)]
    server: PathBuf,
    /// Write the result as JSON to this file too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct HiccupsArgs {
    /// Seconds to spin.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Write the counts as JSON to this file too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct SetupArgs {
    /// How many users to create (use ~1000 with --passwords: the server hashes each
    /// password with Argon2id on import).
    #[arg(long)]
    users: usize,
    /// Directory for seeds.csv, users.csv, state.json and secret.
    #[arg(long)]
    dir: PathBuf,
    /// Give every user a random password too (needed by append, challenge and pap).
    #[arg(long)]
    passwords: bool,
    /// User names are this prefix and a number.
    #[arg(long, default_value = "lt")]
    prefix: String,
    /// Replace an existing state.json (its users' counters are lost).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, clap::Args)]
struct PushSetupArgs {
    /// The directory written by `setup --passwords` (its users imported into the server);
    /// devices.json goes there.
    #[arg(long)]
    dir: PathBuf,
    /// The running server's configuration file, for the `tollgate` command line.
    #[arg(long)]
    config: PathBuf,
    /// The server's mobile API: a loopback address in plain HTTP (`[mobile_api] listen`,
    /// with `allow_plain = true`).
    #[arg(long)]
    api: String,
    /// The `tollgate` binary [default: the one beside this program].
    #[arg(long)]
    tollgate: Option<PathBuf>,
    /// `tollgate device enrol` processes run at once.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Replace an existing devices.json (enrols new devices; the old ones stay on the
    /// server until removed).
    #[arg(long)]
    force: bool,
}

/// What a run sends.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Password followed by the code; expects Access-Accept.
    Append,
    /// Password, Access-Challenge, then the code with the State; expects Access-Accept.
    Challenge,
    /// The code alone (passcode-only clients); expects Access-Accept.
    Passcode,
    /// The password alone (plain PAP, e.g. against FreeRADIUS); expects Access-Accept.
    Pap,
    /// A wrong code (wrong password under PAP); expects Access-Reject.
    Reject,
    /// The kinds and proportions of --mix.
    Mix,
    /// The password alone; a simulated phone approves over the mobile API after a random
    /// delay; expects Access-Accept (needs `push-setup`).
    Push,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Append => "append",
            Scenario::Challenge => "challenge",
            Scenario::Passcode => "passcode",
            Scenario::Pap => "pap",
            Scenario::Reject => "reject",
            Scenario::Mix => "mix",
            Scenario::Push => "push",
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("load").required(true).args(["concurrency", "rate"])))]
struct RunArgs {
    /// The server, a loopback address: 127.0.0.1:1812, [::1]:1812 or localhost:1812.
    #[arg(long)]
    server: String,
    /// Read the shared secret from the first line of standard input (required: a secret
    /// on the command line would show in the process list).
    #[arg(long)]
    secret_stdin: bool,
    /// The directory written by `setup`.
    #[arg(long)]
    dir: PathBuf,
    /// What to send.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// How good logins look in the reject and mix scenarios (default: append when the
    /// users have passwords, passcode otherwise); must match the client's mode. In the push
    /// scenario: append (the request is held until the phone approves; the default) or
    /// challenge (number matching: the phone picks the number the prompt shows).
    #[arg(long, value_enum)]
    login: Option<LoginArg>,
    /// Kinds and weights of the mix scenario.
    #[arg(long, default_value = Mix::DEFAULT_SPEC)]
    mix: String,
    /// Closed loop: keep this many logins in flight.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Open loop: start this many logins per second (`5000` or `5000/s`), latency measured
    /// from each one's intended send time.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// Open loop: between sends, poll the sockets without sleeping. The harness's core is
    /// then always busy (its CPU figure says nothing), but it saves the timer and the
    /// sleep and wake-up of every send, which at high rates is what makes a sleeping loop
    /// fall behind its timetable.
    #[arg(long, requires = "rate")]
    spin: bool,
    /// Seconds to send for (at most 3600); what is in flight then is still finished.
    #[arg(long, value_parser = parse_secs)]
    duration: f64,
    /// Stop after starting this many logins (and probes), even before --duration.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Simulated NAS: this many source addresses, counting up from --source-base
    /// [default: 4; 1 for an IPv6 server, since ::1 is the only IPv6 loopback address].
    #[arg(long)]
    sources: Option<usize>,
    /// The first source address [default: 127.0.0.2, which with the following addresses
    /// works on Linux loopback with no set-up; ::1 for an IPv6 server].
    #[arg(long)]
    source_base: Option<IpAddr>,
    /// Sockets per source address; each carries at most 256 requests in flight.
    #[arg(long, default_value_t = 2)]
    sockets_per_source: usize,
    /// How long to wait for a reply, in milliseconds; probes the server must drop are
    /// counted as dropped after this long [default: 1000; 35000 for push, longer than the
    /// server's push timeout of 30 s, so that the server's answer comes first].
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Push: the mobile API [default: the address in devices.json].
    #[arg(long)]
    api: Option<String>,
    /// Push: the shortest delay from a login's send to the phone's approval.
    #[arg(long)]
    approve_min_ms: Option<u64>,
    /// Push: the longest delay (delays are uniform between the two).
    #[arg(long)]
    approve_max_ms: Option<u64>,
    /// Push: approver threads, each with one keep-alive HTTP connection to the API (an
    /// approver waits for each round trip: raise it when the report shows approvals late).
    #[arg(long, default_value_t = 8)]
    approvers: usize,
    /// Log every user in once before measuring, so that the server's first-login password
    /// hashing (Argon2) is not measured.
    #[arg(long)]
    warmup: bool,
    /// Logins in flight during the warm-up.
    #[arg(long, default_value_t = 4)]
    warmup_concurrency: usize,
    /// Write the JSON report to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Worker threads (each runs its own event loop over its share of the sockets).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Mix scenario: send failure kinds only to users with fewer failed logins than this
    /// since their last good one, so that the server's lockout (5 by default) never
    /// triggers; 0 turns the care off.
    #[arg(long, default_value_t = 3)]
    lockout_guard: u32,
    /// Percent of the logins whose every datagram is sent twice at once, as a NAS
    /// retransmits: the server must answer the copy as the original (RFC 5080) or not at
    /// all; a reply to the copy with another code is a failure.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    duplicates: u8,
    /// The server's HOTP look-ahead (`otp.hotp_lookahead`), so that wrong codes and
    /// replays are never valid by chance.
    #[arg(long, default_value_t = 10)]
    hotp_lookahead: u64,
    /// Whether replies must carry a Message-Authenticator. Keep `required` for Tollgate;
    /// `optional` is for servers from before the BlastRADIUS fixes (FreeRADIUS before
    /// 3.2.5, as in Debian 12), whose replies have none.
    #[arg(long, value_enum, default_value = "required")]
    reply_message_authenticator: Requirement,
    /// Exit with status 1 unless every transaction ended as expected.
    #[arg(long)]
    strict: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Requirement {
    Required,
    Optional,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LoginArg {
    Append,
    Challenge,
    Passcode,
    Pap,
}

impl From<LoginArg> for LoginMode {
    fn from(l: LoginArg) -> Self {
        match l {
            LoginArg::Append => LoginMode::Append,
            LoginArg::Challenge => LoginMode::Challenge,
            LoginArg::Passcode => LoginMode::Passcode,
            LoginArg::Pap => LoginMode::Pap,
        }
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix("/s").unwrap_or(s);
    match n.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 10_000_000.0 => Ok(r),
        _ => Err(format!(
            "`{s}` is not a rate between 0 and 10000000 per second"
        )),
    }
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix('s').unwrap_or(s);
    match n.trim().parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 && d <= MAX_DURATION_SECS => Ok(d),
        _ => Err(format!(
            "`{s}` is not a number of seconds between 0 and {MAX_DURATION_SECS}"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup(&args).map(|()| ExitCode::SUCCESS),
        Command::PushSetup(args) => run_push_setup(&args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => run(&args),
        Command::Hiccups(args) => hiccups(&args).map(|()| ExitCode::SUCCESS),
        Command::Floor(args) => floor(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tollgate-loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn hiccups(args: &HiccupsArgs) -> Result<()> {
    if !(args.duration > 0.0 && args.duration <= MAX_DURATION_SECS) {
        bail!("--duration must be above 0 and at most {MAX_DURATION_SECS} seconds");
    }
    let h = tollgate_loadtest::hiccups::measure(Duration::from_secs_f64(args.duration));
    println!("{}", h.summary());
    for c in &h.classes {
        println!(
            "  >= {:>6} µs: {:>6} ({:.1} ms)",
            c.from_us,
            c.count,
            c.total_us as f64 / 1e3
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&h).context("encoding the counts")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn floor(args: &FloorArgs) -> Result<()> {
    if !(args.service_us.is_finite() && args.service_us > 0.0 && args.service_us <= 1e6) {
        bail!("--service-us must be above 0 and at most one second");
    }
    let read = |path: &PathBuf| -> Result<tollgate_loadtest::hiccups::Hiccups> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not the JSON of `hiccups --json`", path.display()))
    };
    let f = tollgate_loadtest::floor::from_measurements(
        args.rate,
        (args.service_us * 1e3).round() as u64,
        &read(&args.harness)?,
        &read(&args.server)?,
    )?;
    println!("{}", f.summary());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&f).context("encoding the result")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn setup(args: &SetupArgs) -> Result<()> {
    let files = state::setup(
        &args.dir,
        args.users,
        args.passwords,
        &args.prefix,
        args.force,
    )?;
    let dir = args.dir.display();
    println!("wrote {} users to {dir}:", args.users);
    println!(
        "  {}  HOTP seeds (tollgate token import)",
        files.seeds.display()
    );
    if let Some(users) = &files.users {
        println!("  {}  passwords (tollgate user import)", users.display());
    }
    println!("  {}  counters kept between runs", files.state.display());
    println!(
        "  {}  a random shared secret for the RADIUS client",
        files.secret.display()
    );
    println!();
    println!("load them into a Tollgate data directory (server running or not):");
    println!("  tollgate --config tollgate.toml init");
    let import_flag = if let Some(users) = &files.users {
        println!(
            "  tollgate --config tollgate.toml user import {}",
            users.display()
        );
        ""
    } else {
        " --create-users"
    };
    println!(
        "  tollgate --config tollgate.toml token import {}{import_flag}",
        files.seeds.display()
    );
    let mode = if files.users.is_some() {
        "append"
    } else {
        "passcode-only"
    };
    println!(
        "  tollgate --config tollgate.toml client add loadtest --address 127.0.0.0/8 --secret-stdin --mode {mode} < {}",
        files.secret.display()
    );
    println!();
    println!("then, with `tollgate --config tollgate.toml serve` listening on 127.0.0.1:1812:");
    let scenario = if files.users.is_some() {
        "append"
    } else {
        "passcode"
    };
    println!(
        "  tollgate-loadtest run --server 127.0.0.1:1812 --secret-stdin --dir {dir} --scenario {scenario} --concurrency 32 --duration 10 --warmup < {}",
        files.secret.display()
    );
    if files.users.is_some() {
        println!();
        println!(
            "or, for push approval (server with [mobile_api] listen = \"127.0.0.1:8443\", allow_plain = true):"
        );
        println!(
            "  tollgate-loadtest push-setup --dir {dir} --config tollgate.toml --api 127.0.0.1:8443"
        );
        println!(
            "  tollgate-loadtest run --server 127.0.0.1:1812 --secret-stdin --dir {dir} --scenario push --concurrency 100 --duration 10 --warmup < {}",
            files.secret.display()
        );
    }
    Ok(())
}

/// Default delays of the simulated phone: a person reaching for it.
const DEFAULT_APPROVE_MIN_MS: u64 = 500;
const DEFAULT_APPROVE_MAX_MS: u64 = 2000;
/// The default reply timeout of push logins: past the server's default push timeout.
const DEFAULT_PUSH_TIMEOUT_MS: u64 = 35_000;
/// The server's defaults for signed requests (`[mobile_api] max_nonces_per_device` and
/// `max_nonces`): nonces remembered per device and in all, each for 300 seconds (600 when a
/// clock runs ahead).
const SERVER_NONCES_PER_DEVICE: f64 = 1_000.0;
const SERVER_NONCES: f64 = 200_000.0;
const NONCE_WINDOW_SECS: f64 = 300.0;

fn run_push_setup(args: &PushSetupArgs) -> Result<()> {
    let api = guard::parse_target(&args.api)?;
    let tollgate = match &args.tollgate {
        Some(path) => path.clone(),
        None => push_setup::tollgate_beside_me()
            .context("no `tollgate` binary beside this program: pass --tollgate PATH")?,
    };
    if !tollgate.is_file() {
        bail!("{} is not the tollgate binary", tollgate.display());
    }
    let done = push_setup::push_setup(&push_setup::PushSetup {
        dir: args.dir.clone(),
        config: args.config.clone(),
        api,
        tollgate,
        parallel: args.parallel,
        force: args.force,
        progress: true,
    })?;
    println!(
        "enrolled {} devices in {:.1} s; wrote {} (private keys, mode 0600)",
        done.devices,
        done.elapsed.as_secs_f64(),
        done.path.display()
    );
    println!();
    println!("then, with a RADIUS client in append mode for 127.0.0.0/8:");
    println!(
        "  tollgate-loadtest run --server 127.0.0.1:1812 --secret-stdin --dir {} --scenario push --concurrency 100 --duration 10 --approve-min-ms {DEFAULT_APPROVE_MIN_MS} --approve-max-ms {DEFAULT_APPROVE_MAX_MS} --warmup < {}",
        args.dir.display(),
        args.dir.join("secret").display()
    );
    Ok(())
}

/// Warns when a push run would make the server refuse signed requests for nonces: each
/// login costs a device two (a poll and an approval).
fn warn_about_nonces(load: Load, users: usize, duration: f64, min_ms: u64, max_ms: u64) {
    let mean_secs = ((min_ms + max_ms) as f64 / 2.0 / 1000.0).max(0.01);
    let rate = match load {
        Load::Closed { concurrency } => concurrency.min(users) as f64 / mean_secs,
        Load::Open { rate, .. } => rate,
    };
    let window = duration.min(NONCE_WINDOW_SECS);
    let total = 2.0 * rate * window;
    let per_device = total / users.max(1) as f64;
    if per_device > SERVER_NONCES_PER_DEVICE * 0.8 || total > SERVER_NONCES * 0.8 {
        eprintln!(
            "warning: about {rate:.0} push logins/s make some {per_device:.0} signed requests per \
             device and {total:.0} in all within {window:.0} s; the server remembers at most \
             {SERVER_NONCES_PER_DEVICE:.0} nonces per device and {SERVER_NONCES:.0} in all for \
             {NONCE_WINDOW_SECS:.0} s by default and answers 429 or 503 beyond: use more \
             users, longer delays or a shorter run, or raise the server's [mobile_api] \
             max_nonces_per_device and max_nonces"
        );
    }
}

fn read_secret() -> Result<Vec<u8>> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the shared secret from standard input")?;
    let secret = line.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        bail!("the shared secret on standard input is empty");
    }
    Ok(secret.as_bytes().to_vec())
}

fn run(args: &RunArgs) -> Result<ExitCode> {
    let server = guard::parse_target(&args.server)?;
    let (default_base, default_sources) = match server.ip() {
        IpAddr::V4(_) => (IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)), 4),
        IpAddr::V6(_) => (IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 1),
    };
    let source_base = args.source_base.unwrap_or(default_base);
    let source_count = args.sources.unwrap_or(default_sources);
    let sources = guard::source_addresses(server, source_base, source_count)?;
    if !args.secret_stdin {
        bail!("pass --secret-stdin and the shared secret on standard input");
    }
    if args.sockets_per_source == 0 || args.sockets_per_source > 256 {
        bail!("--sockets-per-source must be between 1 and 256");
    }
    let push_run = args.scenario == Scenario::Push;
    if !push_run
        && (args.api.is_some() || args.approve_min_ms.is_some() || args.approve_max_ms.is_some())
    {
        bail!("--api, --approve-min-ms and --approve-max-ms belong to --scenario push");
    }
    let timeout_ms = args.timeout_ms.unwrap_or(if push_run {
        DEFAULT_PUSH_TIMEOUT_MS
    } else {
        1000
    });
    if timeout_ms == 0 || timeout_ms > 60_000 {
        bail!("--timeout-ms must be between 1 and 60000");
    }
    if args.concurrency == Some(0) {
        bail!("--concurrency must be at least 1");
    }
    if args.threads == 0 || args.threads > 64 {
        bail!("--threads must be between 1 and 64");
    }
    let secret: Arc<[u8]> = read_secret()?.into();
    let mut saved = state::load(&args.dir)?;
    let users = saved.to_users()?;
    let has_passwords = saved.has_passwords();
    let default_login = if has_passwords {
        LoginMode::Append
    } else {
        LoginMode::Passcode
    };
    let (mode, mix) = match args.scenario {
        Scenario::Append => (LoginMode::Append, Mix::only(Kind::Good)),
        Scenario::Challenge => (LoginMode::Challenge, Mix::only(Kind::Good)),
        Scenario::Passcode => (LoginMode::Passcode, Mix::only(Kind::Good)),
        Scenario::Pap => (LoginMode::Pap, Mix::only(Kind::Good)),
        Scenario::Reject => (
            args.login.map_or(default_login, LoginMode::from),
            Mix::only(Kind::WrongCode),
        ),
        Scenario::Mix => (
            args.login.map_or(default_login, LoginMode::from),
            Mix::parse(&args.mix).map_err(|e| anyhow::anyhow!("--mix: {e}"))?,
        ),
        Scenario::Push => (
            match args.login {
                None | Some(LoginArg::Append) => LoginMode::PushAppend,
                Some(LoginArg::Challenge) => LoginMode::PushChallenge,
                Some(_) => bail!(
                    "push logins go through a client in append mode (--login append) or \
                     challenge mode (--login challenge)"
                ),
            },
            Mix::only(Kind::Good),
        ),
    };
    if mode.needs_password() && !has_passwords {
        bail!(
            "{} logins need passwords, but the users in {} have none: run `setup --passwords`",
            mode.name(),
            args.dir.display()
        );
    }
    if mode == LoginMode::Pap && mix.has(Kind::Replay) {
        bail!("plain PAP has no one-time code to replay: drop `replay` from --mix");
    }
    if args.scenario == Scenario::Reject {
        eprintln!(
            "note: every login of the reject scenario fails; unless the server runs with \
             `[lockout] threshold = 0` the users lock out after a few and stay locked for \
             `lockout.duration_secs`, which also fails later accept runs with these users"
        );
    }
    let load = match (args.concurrency, args.rate) {
        (Some(concurrency), None) => Load::Closed { concurrency },
        (None, Some(rate)) => Load::Open {
            rate,
            spin: args.spin,
        },
        _ => bail!("give either --concurrency (closed loop) or --rate (open loop)"),
    };
    // Only mixes with good logins can keep users away from lockout; a pure reject run
    // fails every login by design.
    let lockout_guard =
        (args.lockout_guard > 0 && mix.has(Kind::Good)).then_some(args.lockout_guard);
    let (push, approvers) = if push_run {
        let (link, approvers) = start_push(args, &users, load, timeout_ms)?;
        (Some(link), Some(approvers))
    } else {
        (None, None)
    };
    let target = Target {
        server,
        secret,
        sources,
        sockets_per_source: args.sockets_per_source,
        params: state::token_params(),
        lookahead: args.hotp_lookahead,
        require_reply_ma: args.reply_message_authenticator == Requirement::Required,
        push: push.clone(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the Ctrl-C handler")?;
    }
    let timeout = Duration::from_millis(timeout_ms);
    let progress = !args.quiet;

    let mut users = users;
    let mut warmup_report = None;
    if args.warmup {
        let n = users.len();
        let warmup = Phase {
            label: "warm-up",
            mode,
            mix: Mix::only(Kind::Good),
            load: Load::Closed {
                concurrency: args.warmup_concurrency.max(1),
            },
            duration: Duration::from_secs_f64(MAX_DURATION_SECS),
            max_transactions: Some(n as u64),
            // The first login of a user waits for Argon2 behind the server's queue of
            // password checks, which can take far longer than a cached login.
            timeout: timeout.max(Duration::from_secs(10)),
            threads: 1,
            lockout_guard: None,
            duplicate_percent: 0,
            // The warm-up is about the server's first password checks: its phones
            // approve at once.
            approve_delay: (Duration::ZERO, Duration::ZERO),
            progress,
        };
        if progress {
            eprintln!("warm-up: logging each of {n} users in once");
        }
        let (outcome, back) = run_phase(&target, &warmup, users, &stop)?;
        users = back;
        // The warm-up spent a counter of every user: keep that even if the run dies.
        saved.update_from(&users);
        state::save(&args.dir, &saved)?;
        let report = WarmupReport::of(&outcome);
        let c = &report.counts;
        eprintln!(
            "warm-up: {} users in {:.1} s: {} ok, {} failures, {} timeouts (login p50 {}, max {})",
            report.users,
            report.elapsed_secs,
            c.ok,
            c.failures,
            c.timeouts,
            tollgate_loadtest::report::format_us(report.latency_us.p50),
            tollgate_loadtest::report::format_us(report.latency_us.max),
        );
        if c.ok < report.users {
            eprintln!(
                "warning: not every user logged in during the warm-up; check that the client's \
                 mode matches the scenario and that the users were imported"
            );
        }
        if let Some(link) = &push {
            let app = link.take_stats();
            if app.error_count() > 0 || app.counts.not_found > 0 {
                eprintln!(
                    "warning: during the warm-up the apps had {} failed requests and {} logins \
                     they never saw pending (first: {})",
                    app.error_count(),
                    app.counts.not_found,
                    app.first_error.as_deref().unwrap_or("none")
                );
            }
        }
        warmup_report = Some(report);
        if outcome.interrupted {
            bail!("interrupted during the warm-up");
        }
    }

    let phase = Phase {
        label: "run",
        mode,
        mix,
        load,
        duration: Duration::from_secs_f64(args.duration),
        max_transactions: args.max_requests,
        timeout,
        threads: args.threads,
        lockout_guard,
        duplicate_percent: args.duplicates,
        approve_delay: push
            .as_ref()
            .map_or((Duration::ZERO, Duration::ZERO), |link| {
                (link.config().approve_min, link.config().approve_max)
            }),
        progress,
    };
    let (outcome, users) = run_phase(&target, &phase, users, &stop)?;
    saved.update_from(&users);
    state::save(&args.dir, &saved)?;
    let app_stats = push.as_ref().map(|link| link.take_stats());
    drop(approvers);

    let config = ConfigReport {
        server: server.to_string(),
        scenario: args.scenario.name().to_owned(),
        login: mode.name().to_owned(),
        mix: mix.spec(),
        load: load.into(),
        duration_secs: args.duration,
        max_requests: args.max_requests,
        sources: source_count,
        source_base: source_base.to_string(),
        sockets_per_source: args.sockets_per_source,
        timeout_ms,
        threads: outcome.threads,
        warmup: args.warmup,
        duplicates_percent: args.duplicates,
        users: users.len(),
        lockout_guard,
        hotp_lookahead: args.hotp_lookahead,
        reply_message_authenticator_required: args.reply_message_authenticator
            == Requirement::Required,
    };
    let mut report = Report::build(config, warmup_report, &outcome);
    if let (Some(link), Some(app)) = (&push, &app_stats) {
        report = report.with_push(PushReport::build(link.config(), &outcome, app));
    }
    println!("{}", report.summary());
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(if args.strict && !report.passed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reads the devices, checks the mobile API and starts the approvers of a push run.
fn start_push(
    args: &RunArgs,
    users: &[tollgate_loadtest::users::User],
    load: Load,
    timeout_ms: u64,
) -> Result<(Arc<PushLink>, Approvers)> {
    let file = devices::load(&args.dir)?;
    let list = file.for_users(users)?;
    let api = guard::parse_target(args.api.as_deref().unwrap_or(&file.api))?;
    let min = args.approve_min_ms.unwrap_or(DEFAULT_APPROVE_MIN_MS);
    let max = args
        .approve_max_ms
        .unwrap_or_else(|| DEFAULT_APPROVE_MAX_MS.max(min));
    if min > max {
        bail!("--approve-min-ms must not be above --approve-max-ms");
    }
    if max >= timeout_ms {
        bail!(
            "--approve-max-ms {max} must be below the reply timeout (--timeout-ms {timeout_ms}): \
             the harness would give up before the phone approves"
        );
    }
    if args.approvers == 0 || args.approvers > 256 {
        bail!("--approvers must be between 1 and 256");
    }
    app::health(&mut http::Conn::new(api, Duration::from_secs(5))).with_context(|| {
        format!(
            "the mobile API does not answer on {api} (`[mobile_api] listen`, with \
             allow_plain = true)"
        )
    })?;
    warn_about_nonces(load, users.len(), args.duration, min, max);
    let link = PushLink::new(
        PushConfig {
            api,
            approve_min: Duration::from_millis(min),
            approve_max: Duration::from_millis(max),
            approvers: args.approvers,
            http_timeout: Duration::from_secs(10),
        },
        list,
    );
    let approvers = Approvers::start(&link).context("cannot start the approver threads")?;
    Ok((link, approvers))
}

fn write_json(path: &Path, report: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
