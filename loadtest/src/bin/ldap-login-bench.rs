//! `ldap-login-bench`: the directory's side of a Tollgate LDAP login, driven directly.
//!
//! It does per login exactly the LDAP work Tollgate's `[[ldap]]` login does for a
//! password-only user of an OpenLDAP domain without group rules: a subtree search as the
//! service account for `(&(objectClass=inetOrgPerson)(uid=<user>))` asking for `uid`,
//! `mobile` and `mail`, then a simple bind as the DN found with the user's password, which
//! must answer rc 0. The connections are pooled as Tollgate pools them: `--search-connections`
//! bound as the service account and `--bind-connections` that only ever bind as users, one
//! operation at a time on each, every operation to the member with the fewest queued. So
//! a run against a slapd is the baseline that Tollgate, put in the path, is measured
//! against (`compare-ldap.sh`).
//!
//! Closed loop: `--concurrency` logins in flight for `--duration` seconds (after an
//! unmeasured `--warmup`), users `<prefix><number>` taken round-robin. It reports logins
//! per second, latency percentiles (HDR histogram, µs), failures and its own CPU time per
//! login, as text and with `--json` as a JSON report. It connects only to loopback
//! addresses, and every run is bounded in time.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use tollgate_loadtest::report::Percentiles;
use tollgate_loadtest::{guard, stats, sys};

/// The longest a run (warm-up included) may last.
const MAX_SECS: f64 = 3600.0;

/// Drives an LDAP directory on this machine with Tollgate's per-login work (search as the
/// service account, then bind as the user) and reports logins/s and latency.
#[derive(Debug, Parser)]
#[command(name = "ldap-login-bench", version, about)]
struct Args {
    /// The directory: ldaps://127.0.0.1:PORT, or ldap://… with --allow-plain. Loopback
    /// addresses only.
    #[arg(long)]
    url: String,
    /// PEM file of the CA that signed the server's certificate (required for ldaps://).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Allow ldap:// (no TLS): passwords cross loopback in clear text.
    #[arg(long)]
    allow_plain: bool,
    /// Where users are searched (subtree).
    #[arg(long, default_value = "dc=example,dc=com")]
    base_dn: String,
    /// The user filter; `{user}` is replaced by the escaped user name.
    #[arg(long, default_value = "(&(objectClass=inetOrgPerson)(uid={user}))")]
    filter: String,
    /// Attributes the search asks for (Tollgate's name, mobile and mail attributes).
    #[arg(long, value_delimiter = ',', default_value = "uid,mobile,mail")]
    attrs: Vec<String>,
    /// The service account that searches.
    #[arg(long, default_value = "cn=tollgate,ou=services,dc=example,dc=com")]
    bind_dn: String,
    /// The service account's password (the test fixture's by default).
    #[arg(long, default_value = "service-pass")]
    bind_password: String,
    /// User names are this prefix and a zero-padded number.
    #[arg(long, default_value = "load")]
    user_prefix: String,
    /// Digits of the user number.
    #[arg(long, default_value_t = 5)]
    user_digits: usize,
    /// Users `<prefix>0…` to `<prefix><users-1>`, taken round-robin.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Every user's password.
    #[arg(long, default_value = "load-pass")]
    user_password: String,
    /// Logins in flight (closed loop).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Connections bound as the service account, for searches (Tollgate's
    /// `search_connections`).
    #[arg(long, default_value_t = 2)]
    search_connections: usize,
    /// Connections for user binds (Tollgate's `bind_connections`).
    #[arg(long, default_value_t = 4)]
    bind_connections: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Milliseconds one search or bind may take (Tollgate's `operation_timeout_ms`).
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Tokio worker threads [default: the cores this process may run on, as Tollgate].
    #[arg(long)]
    threads: Option<usize>,
    /// Write the JSON report to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The settings a login needs, shared by every task.
struct Plan {
    url: String,
    settings: LdapConnSettings,
    bind_dn: String,
    bind_password: String,
    base_dn: String,
    filter: String,
    attrs: Vec<String>,
    prefix: String,
    digits: usize,
    users: usize,
    user_password: String,
    timeout: Duration,
}

/// One pooled connection: used by one operation at a time, reopened after a failure.
struct Member {
    ldap: tokio::sync::Mutex<Option<Ldap>>,
    load: AtomicUsize,
}

/// Connections of one role, like one of Tollgate's pools.
struct Pool {
    members: Vec<Member>,
    service: bool,
}

/// Takes an operation off its member's queue count when dropped.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How one login ended.
enum Outcome {
    Ok,
    /// The search found no entry (or several).
    NotFound,
    /// The bind answered a code other than success.
    BindRefused,
    /// A transport failure, timeout or unexpected answer.
    Error,
}

impl Plan {
    async fn connect(&self, service: bool) -> Result<Ldap> {
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings.clone(), &self.url)
            .await
            .with_context(|| format!("cannot connect to {}", self.url))?;
        tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        if service {
            let res = ldap
                .with_timeout(self.timeout)
                .simple_bind(&self.bind_dn, &self.bind_password)
                .await
                .context("service bind")?;
            if res.rc != 0 {
                bail!(
                    "the directory refused the service account {}: rc {} {}",
                    self.bind_dn,
                    res.rc,
                    res.text.trim()
                );
            }
        }
        Ok(ldap)
    }

    fn user(&self, i: usize) -> String {
        format!("{}{:0width$}", self.prefix, i, width = self.digits)
    }
}

impl Pool {
    async fn open(plan: &Plan, n: usize, service: bool) -> Result<Pool> {
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            members.push(Member {
                ldap: tokio::sync::Mutex::new(Some(plan.connect(service).await?)),
                load: AtomicUsize::new(0),
            });
        }
        Ok(Pool { members, service })
    }

    /// The member with the fewest operations queued, counted until the guard drops.
    fn pick(&self) -> (&Member, Queued<'_>) {
        let m = self
            .members
            .iter()
            .min_by_key(|m| m.load.load(Ordering::Relaxed))
            .expect("a pool has members");
        m.load.fetch_add(1, Ordering::Relaxed);
        (m, Queued(&m.load))
    }

    /// The member's connection, opened again if a failure dropped it; `None` when the
    /// directory cannot be reached.
    async fn live<'a>(&self, plan: &Plan, slot: &'a mut Option<Ldap>) -> Option<&'a mut Ldap> {
        if slot.as_mut().is_some_and(|l| l.is_closed()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = plan.connect(self.service).await.ok();
        }
        slot.as_mut()
    }
}

/// One login: the search on the search pool, then the bind on the bind pool.
async fn login(plan: &Plan, search: &Pool, bind: &Pool, i: usize) -> Outcome {
    let user = plan.user(i);
    let filter = plan.filter.replace("{user}", &ldap_escape(&user));
    let dn = {
        let (member, _queued) = search.pick();
        let mut slot = member.ldap.lock().await;
        let Some(ldap) = search.live(plan, &mut slot).await else {
            return Outcome::Error;
        };
        let found = ldap
            .with_timeout(plan.timeout)
            .search(&plan.base_dn, Scope::Subtree, &filter, &plan.attrs)
            .await;
        let (entries, result) = match found {
            Ok(r) => (r.0, r.1),
            Err(_) => {
                *slot = None;
                return Outcome::Error;
            }
        };
        if result.rc != 0 {
            return Outcome::Error;
        }
        // Parsed as Tollgate parses them.
        let mut entries: Vec<SearchEntry> =
            entries.into_iter().map(SearchEntry::construct).collect();
        if entries.len() != 1 {
            return Outcome::NotFound;
        }
        entries.pop().expect("one entry").dn
    };
    let (member, _queued) = bind.pick();
    let mut slot = member.ldap.lock().await;
    let Some(ldap) = bind.live(plan, &mut slot).await else {
        return Outcome::Error;
    };
    let bound = ldap
        .with_timeout(plan.timeout)
        .simple_bind(&dn, &plan.user_password)
        .await;
    match bound {
        Ok(r) if r.rc == 0 => Outcome::Ok,
        Ok(_) => Outcome::BindRefused,
        Err(_) => {
            *slot = None;
            Outcome::Error
        }
    }
}

/// What one task counted.
struct TaskStats {
    latency: Histogram<u64>,
    ok: u64,
    not_found: u64,
    bind_refused: u64,
    errors: u64,
}

/// Runs the closed loop until `until`; what is in flight then is finished.
async fn phase(
    plan: &Arc<Plan>,
    pools: &Arc<(Pool, Pool)>,
    next: &Arc<AtomicU64>,
    concurrency: usize,
    until: Instant,
) -> TaskStats {
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (plan, pools, next) = (Arc::clone(plan), Arc::clone(pools), Arc::clone(next));
        tasks.push(tokio::spawn(async move {
            let mut s = TaskStats {
                latency: stats::new_histogram(),
                ok: 0,
                not_found: 0,
                bind_refused: 0,
                errors: 0,
            };
            while Instant::now() < until {
                let i = (next.fetch_add(1, Ordering::Relaxed) % plan.users as u64) as usize;
                let started = Instant::now();
                let outcome = login(&plan, &pools.0, &pools.1, i).await;
                match outcome {
                    Outcome::Ok => {
                        stats::record(&mut s.latency, started.elapsed());
                        s.ok += 1;
                    }
                    Outcome::NotFound => s.not_found += 1,
                    Outcome::BindRefused => s.bind_refused += 1,
                    Outcome::Error => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut total = TaskStats {
        latency: stats::new_histogram(),
        ok: 0,
        not_found: 0,
        bind_refused: 0,
        errors: 0,
    };
    for t in tasks {
        let s = t.await.expect("a login task panicked");
        total
            .latency
            .add(&s.latency)
            .expect("same histogram bounds");
        total.ok += s.ok;
        total.not_found += s.not_found;
        total.bind_refused += s.bind_refused;
        total.errors += s.errors;
    }
    total
}

/// The JSON report.
#[derive(Serialize)]
struct Report {
    url: String,
    concurrency: usize,
    search_connections: usize,
    bind_connections: usize,
    users: usize,
    duration_secs: f64,
    warmup_secs: f64,
    threads: usize,
    elapsed_secs: f64,
    counts: Counts,
    logins_per_sec: f64,
    /// Latency of successful logins, µs.
    latency_us: Percentiles,
    cpu: Cpu,
}

#[derive(Serialize)]
struct Counts {
    ok: u64,
    not_found: u64,
    bind_refused: u64,
    errors: u64,
}

#[derive(Serialize)]
struct Cpu {
    user_secs: f64,
    system_secs: f64,
    us_per_login: f64,
    cores_used: f64,
}

/// Refuses every URL that is not ldap(s)://<loopback IP or localhost>[:port].
fn check_url(url: &str, allow_plain: bool, has_ca: bool) -> Result<()> {
    let (rest, port) = if let Some(rest) = url.strip_prefix("ldaps://") {
        if !has_ca {
            bail!("ldaps:// needs --ca-file (the CA that signed the server's certificate)");
        }
        (rest, 636)
    } else if let Some(rest) = url.strip_prefix("ldap://") {
        if !allow_plain {
            bail!("ldap:// sends passwords in clear text: pass --allow-plain, or use ldaps://");
        }
        (rest, 389)
    } else {
        bail!("--url `{url}` must start with ldap:// or ldaps://");
    };
    let host = rest.trim_end_matches('/');
    let with_port = if host.ends_with(']') || !host.contains(':') {
        format!("{host}:{port}")
    } else {
        host.to_owned()
    };
    guard::parse_target(&with_port).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    Ok(())
}

/// TLS settings that trust the CA file alone (rustls with ring, as Tollgate builds them).
fn tls(ca_file: &PathBuf) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("cannot read {}", ca_file.display()))?;
    for cert in certs {
        roots.add(cert.with_context(|| format!("{}", ca_file.display()))?)?;
    }
    if roots.is_empty() {
        bail!("{} holds no certificate", ca_file.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ldap-login-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    check_url(&args.url, args.allow_plain, args.ca_file.is_some())?;
    let secs_ok = |s: f64| s.is_finite() && (0.0..=MAX_SECS).contains(&s);
    if !secs_ok(args.duration) || args.duration == 0.0 || !secs_ok(args.warmup) {
        bail!("--duration must be in (0, {MAX_SECS}] and --warmup in [0, {MAX_SECS}]");
    }
    if !(1..=10_000).contains(&args.concurrency) {
        bail!("--concurrency must be between 1 and 10000");
    }
    for (flag, n) in [
        ("--search-connections", args.search_connections),
        ("--bind-connections", args.bind_connections),
    ] {
        if !(1..=64).contains(&n) {
            bail!("{flag} must be between 1 and 64");
        }
    }
    if args.users == 0 || !args.filter.contains("{user}") {
        bail!("--users must be at least 1 and --filter must contain {{user}}");
    }
    if !(100..=60_000).contains(&args.timeout_ms) {
        bail!("--timeout-ms must be between 100 and 60000");
    }
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut settings = LdapConnSettings::new().set_conn_timeout(timeout);
    if let Some(ca) = &args.ca_file {
        settings = settings.set_config(tls(ca)?);
    }
    let plan = Arc::new(Plan {
        url: args.url.trim_end_matches('/').to_owned(),
        settings,
        bind_dn: args.bind_dn.clone(),
        bind_password: args.bind_password.clone(),
        base_dn: args.base_dn.clone(),
        filter: args.filter.clone(),
        attrs: args.attrs.clone(),
        prefix: args.user_prefix.clone(),
        digits: args.user_digits,
        users: args.users,
        user_password: args.user_password.clone(),
        timeout,
    });
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.clamp(1, 64))
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let pools = Arc::new((
            Pool::open(&plan, args.search_connections, true).await?,
            Pool::open(&plan, args.bind_connections, false).await?,
        ));
        let next = Arc::new(AtomicU64::new(0));
        if args.warmup > 0.0 {
            let until = Instant::now() + Duration::from_secs_f64(args.warmup);
            phase(&plan, &pools, &next, args.concurrency, until).await;
        }
        let cpu_before = sys::cpu_times();
        let started = Instant::now();
        let until = started + Duration::from_secs_f64(args.duration);
        let s = phase(&plan, &pools, &next, args.concurrency, until).await;
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = sys::cpu_times().since(&cpu_before);
        anyhow::Ok(Report {
            url: plan.url.clone(),
            concurrency: args.concurrency,
            search_connections: args.search_connections,
            bind_connections: args.bind_connections,
            users: args.users,
            duration_secs: args.duration,
            warmup_secs: args.warmup,
            threads,
            elapsed_secs: elapsed,
            counts: Counts {
                ok: s.ok,
                not_found: s.not_found,
                bind_refused: s.bind_refused,
                errors: s.errors,
            },
            logins_per_sec: s.ok as f64 / elapsed,
            latency_us: Percentiles::of(&s.latency),
            cpu: Cpu {
                user_secs: cpu.user.as_secs_f64(),
                system_secs: cpu.system.as_secs_f64(),
                us_per_login: if s.ok > 0 {
                    cpu.total().as_secs_f64() * 1e6 / s.ok as f64
                } else {
                    0.0
                },
                cores_used: cpu.total().as_secs_f64() / elapsed,
            },
        })
    })?;
    let l = &report.latency_us;
    println!(
        "{} logins in {:.2} s: {:.0} logins/s; latency p50 {} µs, p90 {} µs, p99 {} µs, max {} µs; \
         {} not found, {} binds refused, {} errors; client CPU {:.1} µs/login",
        report.counts.ok,
        report.elapsed_secs,
        report.logins_per_sec,
        l.p50,
        l.p90,
        l.p99,
        l.max,
        report.counts.not_found,
        report.counts.bind_refused,
        report.counts.errors,
        report.cpu.us_per_login,
    );
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let c = &report.counts;
    Ok(
        if c.not_found + c.bind_refused + c.errors == 0 && c.ok > 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}
