//! `push-setup`: makes every user of a setup directory a push user with an enrolled phone.
//!
//! It needs the server running with its mobile API on a loopback address in plain HTTP, and
//! its configuration file, for the `tollgate` command line:
//!
//! 1. `tollgate user delivery-import delivery.csv` sets every user's delivery to `push` in
//!    one transaction (the running server applies it within a second);
//! 2. per user, `tollgate device enrol NAME --no-qr` makes a one-time enrolment code (a few
//!    processes at once, `--parallel`), and the harness makes an Ed25519 key, signs the
//!    code with it and enrols it with `POST /v1/devices`;
//! 3. the device ids and private keys go to `devices.json` (mode 0600).
//!
//! The API admits a bounded number of enrolment attempts per client address and minute
//! (20 by default); the enrolments leave from a fresh loopback address every
//! [`ENROLS_PER_ADDRESS`], from 127.100.0.1 up, so that a few thousand users take seconds,
//! not hours. A 429 is retried from another address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::app::{self, AppError};
use super::devices::{self, DeviceRecord, DevicesFile, DEVICES_VERSION};
use super::http::Conn;
use crate::state;

/// Enrolments sent from one loopback address before moving to the next.
pub const ENROLS_PER_ADDRESS: u32 = 16;
/// The first address enrolments leave from.
pub const ENROL_SOURCE_BASE: Ipv4Addr = Ipv4Addr::new(127, 100, 0, 1);
/// How long the running server may take to apply an admin change (it polls the store's
/// change log).
pub const SERVER_PICKUP: Duration = Duration::from_millis(1500);

/// What `push-setup` was asked to do.
#[derive(Debug, Clone)]
pub struct PushSetup {
    /// The directory of `setup`, where `devices.json` goes.
    pub dir: PathBuf,
    /// The server's configuration file (for the `tollgate` command line).
    pub config: PathBuf,
    /// The mobile API, a loopback address.
    pub api: SocketAddr,
    /// The `tollgate` binary.
    pub tollgate: PathBuf,
    /// `tollgate device enrol` processes at once.
    pub parallel: usize,
    /// Replace an existing `devices.json`.
    pub force: bool,
    /// Print progress on standard error.
    pub progress: bool,
}

/// What `push-setup` did.
#[derive(Debug, Clone)]
pub struct SetupDone {
    /// Devices enrolled.
    pub devices: usize,
    /// Where they were written.
    pub path: PathBuf,
    /// How long it took.
    pub elapsed: Duration,
}

/// The `tollgate` binary beside this executable, where cargo builds both.
pub fn tollgate_beside_me() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.join("tollgate");
    bin.is_file().then_some(bin)
}

/// Runs `tollgate --config CONFIG ARGS…` and returns its standard output.
fn tollgate(setup: &PushSetup, args: &[&str]) -> Result<String> {
    let out = Command::new(&setup.tollgate)
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", setup.tollgate.display()))?;
    if !out.status.success() {
        bail!(
            "`tollgate {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The code in the first line of `tollgate device enrol`'s output
/// (`enrolment code for NAME (valid N s, once): CODE`).
pub fn enrolment_code(output: &str) -> Option<&str> {
    let code = output.lines().next()?.rsplit(' ').next()?.trim();
    (!code.is_empty() && code.len() <= 128 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(code)
}

/// The local address of enrolment attempt `n`: always in 127.0.0.0/8.
fn enrol_source(n: u32) -> IpAddr {
    let offset = (u32::from(ENROL_SOURCE_BASE) & 0x00ff_ffff).wrapping_add(n / ENROLS_PER_ADDRESS);
    IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | (offset & 0x00ff_ffff)))
}

/// Runs `push-setup`.
pub fn push_setup(setup: &PushSetup) -> Result<SetupDone> {
    let started = Instant::now();
    let saved = state::load(&setup.dir)?;
    if !saved.has_passwords() {
        bail!(
            "push logins need passwords, but the users in {} have none: run `setup --passwords` \
             and `tollgate user import` first",
            setup.dir.display()
        );
    }
    let path = devices::devices_path(&setup.dir);
    if path.exists() && !setup.force {
        bail!(
            "{} exists: its devices may still be enrolled; pass --force to enrol new ones",
            path.display()
        );
    }
    let mut conn = Conn::new(setup.api, Duration::from_secs(5));
    app::health(&mut conn).with_context(|| {
        format!(
            "the mobile API does not answer on {api}: run `tollgate serve` with \
             [mobile_api] listen = \"{api}\" and allow_plain = true",
            api = setup.api
        )
    })?;

    // 1. Delivery by push for everyone, in one transaction.
    let csv = setup.dir.join("delivery.csv");
    let mut text = String::from("name,delivery\n");
    for u in &saved.users {
        text.push_str(&u.name);
        text.push_str(",push\n");
    }
    state::write_private(&csv, text.as_bytes(), true)?;
    let csv_arg = csv.display().to_string();
    tollgate(setup, &["user", "delivery-import", &csv_arg])?;
    let imported = Instant::now();
    if setup.progress {
        eprintln!(
            "push-setup: delivery set to push for {} users",
            saved.users.len()
        );
    }

    // 2. An enrolment code and a device per user, a few at once.
    let n = saved.users.len();
    let next = AtomicUsize::new(0);
    let attempts = AtomicU32::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let records: Mutex<Vec<Option<DeviceRecord>>> = Mutex::new(vec![None; n]);
    let done = AtomicUsize::new(0);
    let threads = setup.parallel.clamp(1, 64).min(n.max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(user) = saved.users.get(i) else {
                        return;
                    };
                    match enrol_one(setup, &user.name, &attempts) {
                        Ok(record) => {
                            if let Some(slot) = records
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .get_mut(i)
                            {
                                *slot = Some(record);
                            }
                            let k = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if setup.progress && (k % 500 == 0 || k == n) {
                                eprintln!("push-setup: {k}/{n} devices enrolled");
                            }
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            let mut first = first_error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            if first.is_none() {
                                *first = Some(e.context(format!("user {}", user.name)));
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e.context("enrolment failed; the devices enrolled so far are not saved"));
    }
    let devices: Vec<DeviceRecord> = records
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .flatten()
        .collect();
    if devices.len() != n {
        bail!("only {} of {n} devices were enrolled", devices.len());
    }
    devices::save(
        &setup.dir,
        &DevicesFile {
            version: DEVICES_VERSION,
            api: setup.api.to_string(),
            created_at: crate::sys::rfc3339(std::time::SystemTime::now()),
            devices,
        },
    )?;
    // The server learns of the delivery change through its change log.
    let since = imported.elapsed();
    if since < SERVER_PICKUP {
        std::thread::sleep(SERVER_PICKUP - since);
    }
    Ok(SetupDone {
        devices: n,
        path,
        elapsed: started.elapsed(),
    })
}

/// Makes a code for `name` and enrols a new key with it.
fn enrol_one(setup: &PushSetup, name: &str, attempts: &AtomicU32) -> Result<DeviceRecord> {
    let out = tollgate(setup, &["device", "enrol", name, "--no-qr"])?;
    let code = enrolment_code(&out).with_context(|| {
        format!(
            "no enrolment code in the output of `tollgate device enrol`: {:?}",
            out.lines().next().unwrap_or_default()
        )
    })?;
    let mut tries = 0;
    loop {
        tries += 1;
        let source = enrol_source(attempts.fetch_add(1, Ordering::Relaxed));
        let mut conn = Conn::with_local(setup.api, source, Duration::from_secs(10));
        match app::enrol(&mut conn, code, app::new_key(), "tollgate-loadtest") {
            Ok(device) => {
                return Ok(DeviceRecord {
                    user: name.to_owned(),
                    key: device.key_b64(),
                    device_id: device.id,
                })
            }
            // Throttled (the code is left unused): again from another address.
            Err(AppError::Status { status: 429, .. }) if tries < 4 => {}
            Err(e) => return Err(anyhow::Error::new(e).context("POST /v1/devices")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_read_off_the_first_line() {
        let out = "enrolment code for lt000001 (valid 600 s, once): ABCDEF234567\n\
                   tollgate://enrol?url=https://x&code=ABCDEF234567\n";
        assert_eq!(enrolment_code(out), Some("ABCDEF234567"));
        assert_eq!(enrolment_code(""), None);
        assert_eq!(enrolment_code("no code here: \n"), None);
        assert_eq!(enrolment_code("code: a b\"c"), None);
    }

    #[test]
    fn enrolments_move_to_a_new_loopback_address_every_few() {
        assert_eq!(enrol_source(0), IpAddr::V4(ENROL_SOURCE_BASE));
        assert_eq!(enrol_source(ENROLS_PER_ADDRESS - 1), enrol_source(0));
        assert_eq!(
            enrol_source(ENROLS_PER_ADDRESS),
            IpAddr::V4(Ipv4Addr::new(127, 100, 0, 2))
        );
        assert!(crate::guard::is_loopback(enrol_source(u32::MAX)));
    }
}
