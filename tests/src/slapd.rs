//! A real OpenLDAP `slapd` for end-to-end tests: its configuration, TLS material, schema
//! and directory tree in a temporary directory, the server process on two loopback ports
//! (plain LDAP with StartTLS, and LDAPS), and the `ldap-utils` commands that look at it
//! as the administrator.
//!
//! [`Slapd::start`] writes everything, loads the tree offline with `slapadd`, starts slapd
//! in the foreground and waits until it answers a bind. The system's own slapd (if the
//! package started one on port 389) is neither needed nor touched.
//!
//! # The tree
//! Under [`BASE_DN`]:
//! - `ou=people`: inetOrgPerson users `alice`, `bob`, `carol`, `dave` (password
//!   `<uid>-pass`, mail, mobile), and with [`Slapd::start_with_load_users`] `load00000`…
//!   (password [`LOAD_PASSWORD`]);
//! - `ou=ad-people`: Active-Directory-shaped users `erin`, `frank` (disabled), `grace`
//!   (expired), `heidi` (locked out): class `user` with the auxiliary `securityPrincipal`,
//!   `sAMAccountName`, `userPrincipalName` (`<name>@corp.example.com`),
//!   `userAccountControl`, `accountExpires`, `lockoutTime`, and `memberOf` written
//!   directly (no overlay keeps it in step with the groups; the harness writes both sides);
//! - `ou=groups`: groupOfNames [`VPN_GROUP_DN`] (everyone but bob) and
//!   [`PASSWORD_ONLY_GROUP_DN`] (carol);
//! - `ou=services`: the service account [`SERVICE_DN`] and a read-only account
//!   [`READONLY_DN`].
//!
//! # Access
//! `userPassword`: the entry itself may write it, anonymous may bind with it, nobody else
//! sees it. `telexNumber`: only the service account writes it, bound users read it.
//! Everything else: bound users read, anonymous may only bind (an anonymous search finds
//! nothing). [`ADMIN_DN`] is the rootdn and bypasses all of this.
//!
//! # Schema
//! core, cosine, inetorgperson, nis, and a copy of Debian's
//! `/etc/ldap/schema/msuser.schema` patched when written: that file defines no matching
//! rules at all, so as shipped `(sAMAccountName=erin)` or `(memberOf=<group>)` match
//! nothing, and no object class allows `sAMAccountName`. The copy adds the equality (and
//! where useful ordering and substring) rules Active Directory has for the attributes in
//! [`AD_MATCHING_RULES`], and AD's auxiliary class `securityPrincipal` (MUST
//! `sAMAccountName`). AD's bitwise filter `(userAccountControl:1.2.840.113556.1.4.803:=2)`
//! works (slapd's integerBitAndMatch has that OID).
//!
//! # `telexNumber`, as this slapd (2.5) checks it
//! The syntax check accepts one or more non-empty parts separated by `$`, each made of
//! PrintableString characters: letters of both cases, digits, space and `'()+,-./:=?`.
//! So `tollgate$1$<standard base64>` passes (`+`, `/`, `=` are PrintableString); `_`, `@`,
//! `!`, `*`, `&`, `#`, `%`, `;`, `\` and non-ASCII are refused (rc 21), as are an empty
//! part (`a$$b`, `a$1$`, `$a`). The number of parts is not checked (`abc` and `a$b$c$d`
//! pass) and there is no length limit (40,000 characters pass). The attribute has no
//! equality rule in core.schema, so only `replace` (and deleting the whole attribute)
//! works: adding a value to a present attribute, deleting one value, compare and equality
//! filters all fail with rc 18 (inappropriate matching); a presence filter works.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::{free_tcp_port, require};

/// The suffix of the test directory.
pub const BASE_DN: &str = "dc=example,dc=com";
/// Where the inetOrgPerson users live.
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=com";
/// Where the Active-Directory-shaped users live.
pub const AD_PEOPLE_DN: &str = "ou=ad-people,dc=example,dc=com";
/// Where the groups live.
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=com";
/// The service account Tollgate binds as; the only one that may write `telexNumber`.
pub const SERVICE_DN: &str = "cn=tollgate,ou=services,dc=example,dc=com";
/// The service account's password.
pub const SERVICE_PASSWORD: &str = "service-pass";
/// An account that may read the tree but write nothing.
pub const READONLY_DN: &str = "cn=readonly,ou=services,dc=example,dc=com";
/// The read-only account's password.
pub const READONLY_PASSWORD: &str = "readonly-pass";
/// The rootdn: bypasses every access rule.
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
/// The rootdn's password.
pub const ADMIN_PASSWORD: &str = "admin-pass";
/// Members: alice, carol, dave, erin, frank, grace, heidi, and the load users.
pub const VPN_GROUP_DN: &str = "cn=vpn-users,ou=groups,dc=example,dc=com";
/// Members: carol.
pub const PASSWORD_ONLY_GROUP_DN: &str = "cn=password-only,ou=groups,dc=example,dc=com";
/// The password of every load user.
pub const LOAD_PASSWORD: &str = "load-pass";
/// The domain of the AD users' `userPrincipalName`.
pub const UPN_DOMAIN: &str = "corp.example.com";

/// `userAccountControl` of a normal account (NORMAL_ACCOUNT).
pub const UAC_NORMAL: u32 = 512;
/// `userAccountControl` of a disabled account (NORMAL_ACCOUNT | ACCOUNTDISABLE).
pub const UAC_DISABLED: u32 = 514;
/// grace's `accountExpires`: a FILETIME in 2012, long past.
pub const EXPIRED_FILETIME: &str = "130000000000000000";
/// heidi's `lockoutTime`: non-zero, so the account is locked out.
pub const LOCKOUT_FILETIME: &str = "133000000000000000";
/// `accountExpires` of an account that never expires (erin, heidi; AD writes this or 0).
pub const NEVER_FILETIME: &str = "9223372036854775807";

/// The attributes of `msuser.schema` given matching rules in the harness's copy, with the
/// rules (as Active Directory matches them).
pub const AD_MATCHING_RULES: &[(&str, &str)] = &[
    (
        "sAMAccountName",
        "EQUALITY caseIgnoreMatch\n\tSUBSTR caseIgnoreSubstringsMatch",
    ),
    (
        "userPrincipalName",
        "EQUALITY caseIgnoreMatch\n\tSUBSTR caseIgnoreSubstringsMatch",
    ),
    ("userAccountControl", "EQUALITY integerMatch"),
    (
        "accountExpires",
        "EQUALITY integerMatch\n\tORDERING integerOrderingMatch",
    ),
    (
        "lockoutTime",
        "EQUALITY integerMatch\n\tORDERING integerOrderingMatch",
    ),
    ("memberOf", "EQUALITY distinguishedNameMatch"),
    ("objectCategory", "EQUALITY distinguishedNameMatch"),
];

/// How long slapd may take to answer after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The DN of an inetOrgPerson user (`uid=<uid>,ou=people,…`).
pub fn user_dn(uid: &str) -> String {
    format!("uid={uid},{PEOPLE_DN}")
}

/// The DN of an Active-Directory-shaped user (`cn=<name>,ou=ad-people,…`).
pub fn ad_user_dn(name: &str) -> String {
    format!("cn={name},{AD_PEOPLE_DN}")
}

/// The uid of load user `i` (`load00000`, `load00001`, …).
pub fn load_uid(i: usize) -> String {
    format!("load{i:05}")
}

/// One inetOrgPerson user of the default tree.
struct Person {
    uid: &'static str,
    cn: &'static str,
    sn: &'static str,
    mobile: &'static str,
}

const PEOPLE: &[Person] = &[
    Person {
        uid: "alice",
        cn: "Alice Archer",
        sn: "Archer",
        mobile: "+44 7700 900123",
    },
    Person {
        uid: "bob",
        cn: "Bob Baker",
        sn: "Baker",
        mobile: "+44 7700 900124",
    },
    Person {
        uid: "carol",
        cn: "Carol Clark",
        sn: "Clark",
        mobile: "+44 7700 900125",
    },
    Person {
        uid: "dave",
        cn: "Dave Dunn",
        sn: "Dunn",
        mobile: "+44 7700 900126",
    },
];

/// One Active-Directory-shaped user of the default tree.
struct AdPerson {
    name: &'static str,
    sn: &'static str,
    uac: u32,
    account_expires: Option<&'static str>,
    lockout_time: Option<&'static str>,
    mobile: &'static str,
}

const AD_PEOPLE: &[AdPerson] = &[
    AdPerson {
        name: "erin",
        sn: "Evans",
        uac: UAC_NORMAL,
        account_expires: Some(NEVER_FILETIME),
        lockout_time: Some("0"),
        mobile: "+44 7700 900131",
    },
    AdPerson {
        name: "frank",
        sn: "Fisher",
        uac: UAC_DISABLED,
        account_expires: None,
        lockout_time: None,
        mobile: "+44 7700 900132",
    },
    AdPerson {
        name: "grace",
        sn: "Green",
        uac: UAC_NORMAL,
        account_expires: Some(EXPIRED_FILETIME),
        lockout_time: None,
        mobile: "+44 7700 900133",
    },
    AdPerson {
        name: "heidi",
        sn: "Hughes",
        uac: UAC_NORMAL,
        account_expires: Some("0"),
        lockout_time: Some(LOCKOUT_FILETIME),
        mobile: "+44 7700 900134",
    },
];

/// A running (or killed) slapd with its own temporary directory and database.
pub struct Slapd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    ldap_port: u16,
    ldaps_port: u16,
    /// `ldap://127.0.0.1:<port>`: plain LDAP; StartTLS works here too.
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:<port>`: LDAP over TLS from the first byte.
    pub ldaps_url: String,
    /// PEM of the test CA that signed the server certificate (SAN IP 127.0.0.1 and DNS
    /// localhost).
    pub ca_file: PathBuf,
}

impl Slapd {
    /// Starts slapd with the default tree and no load users.
    pub fn start() -> Slapd {
        Slapd::start_with_load_users(0)
    }

    /// Starts slapd with the default tree plus `n` load users `load00000`… in
    /// `ou=people`, password [`LOAD_PASSWORD`], members of [`VPN_GROUP_DN`].
    pub fn start_with_load_users(n: usize) -> Slapd {
        require("slapd", "slapd");
        require("slapadd", "slapd");
        require("ldapsearch", "ldap-utils");
        require("ldapwhoami", "ldap-utils");
        require("ldapmodify", "ldap-utils");
        require("openssl", "openssl");

        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = write_tls(dir.path());
        write_schema(dir.path());
        write_config(dir.path());
        std::fs::create_dir(dir.path().join("db")).expect("database directory");
        std::fs::write(dir.path().join("data.ldif"), tree_ldif(n)).expect("write data.ldif");
        slapadd(dir.path());

        let mut slapd = Slapd {
            dir,
            child: None,
            ldap_port: 0,
            ldaps_port: 0,
            ldap_url: String::new(),
            ldaps_url: String::new(),
            ca_file,
        };
        // A port picked free can be taken by someone else before slapd binds it: pick
        // again then.
        for attempt in 1.. {
            let (ldap, ldaps) = two_free_ports();
            slapd.set_ports(ldap, ldaps);
            match slapd.spawn_and_wait() {
                Ok(()) => break,
                Err(log) if attempt < 5 && log.contains("errno=98") => continue,
                Err(log) => panic!("slapd did not start; its log:\n{log}"),
            }
        }
        slapd
    }

    fn set_ports(&mut self, ldap: u16, ldaps: u16) {
        self.ldap_port = ldap;
        self.ldaps_port = ldaps;
        self.ldap_url = format!("ldap://127.0.0.1:{ldap}");
        self.ldaps_url = format!("ldaps://127.0.0.1:{ldaps}");
    }

    /// Kills slapd with SIGKILL and waits for it (a crash, not a shutdown). The ports and
    /// the database stay for [`Slapd::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts slapd again on the same ports and database (killing it first if it runs),
    /// and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(log) = self.spawn_and_wait() {
            panic!(
                "slapd did not restart on ports {} and {}; its log:\n{log}",
                self.ldap_port, self.ldaps_port
            );
        }
    }

    /// The process id of the running slapd.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("slapd is not running").id()
    }

    /// The temporary directory (configuration, TLS files, database, log).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What slapd wrote to its standard error so far (errors only, unless
    /// `TOLLGATE_SLAPD_DEBUG` names another `slapd -d` level, e.g. `stats`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Runs an `ldap-utils` program with the test CA as its trust anchor
    /// (`LDAPTLS_CACERT`) and returns its output; the exit status is the LDAP result code.
    pub fn tool(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Output {
        run_tool(program, args, stdin, &self.ca_file)
    }

    /// `ldapwhoami -x` as `dn` over `url` (StartTLS required when `starttls`).
    pub fn whoami(&self, url: &str, dn: &str, password: &str, starttls: bool) -> Output {
        let mut args = vec![
            "-x",
            "-o",
            "nettimeout=5",
            "-H",
            url,
            "-D",
            dn,
            "-w",
            password,
        ];
        if starttls {
            args.push("-ZZ");
        }
        self.tool("ldapwhoami", &args, None)
    }

    /// `ldapsearch -x -LLL` as the administrator over [`Slapd::ldap_url`] below
    /// [`BASE_DN`]; returns the LDIF (unwrapped). Panics if the search fails.
    pub fn search(&self, filter: &str, attrs: &[&str]) -> String {
        let mut args = vec![
            "-x",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-H",
            &self.ldap_url,
            "-D",
            ADMIN_DN,
            "-w",
            ADMIN_PASSWORD,
            "-b",
            BASE_DN,
            filter,
        ];
        args.extend_from_slice(attrs);
        let out = self.tool("ldapsearch", &args, None);
        assert!(
            out.status.success(),
            "ldapsearch {filter:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// How many entries the administrator finds with `filter` below [`BASE_DN`].
    pub fn count(&self, filter: &str) -> usize {
        self.search(filter, &["1.1"])
            .lines()
            .filter(|l| l.starts_with("dn:"))
            .count()
    }

    /// Applies LDIF with `ldapmodify -x` as the administrator; panics with ldapmodify's
    /// error output if it fails.
    pub fn modify(&self, ldif: &str) {
        let out = self.tool(
            "ldapmodify",
            &[
                "-x",
                "-H",
                &self.ldap_url,
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ],
            Some(ldif),
        );
        assert!(
            out.status.success(),
            "ldapmodify failed ({}): {}\nLDIF:\n{ldif}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the slapd process and waits until it answers a bind; on failure returns
    /// its log (the process is reaped).
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let dir = self.dir.path();
        let log = File::create(dir.join("slapd.log")).expect("slapd log file");
        let level = std::env::var("TOLLGATE_SLAPD_DEBUG").unwrap_or_else(|_| "none".into());
        let child = Command::new("slapd")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("{}/ {}/", self.ldap_url, self.ldaps_url))
            .arg("-d")
            .arg(level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("run slapd");
        self.child = Some(child);

        let addr = SocketAddr::from(([127, 0, 0, 1], self.ldap_port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("wait for slapd") {
                self.child = None;
                return Err(format!("(slapd exited: {status})\n{}", self.log()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && self
                    .whoami(&self.ldap_url, ADMIN_DN, ADMIN_PASSWORD, false)
                    .status
                    .success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "(no answer within {START_TIMEOUT:?} on {})\n{}",
                    self.ldap_url,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs an `ldap-utils` program trusting `ca_file`.
fn run_tool(program: &str, args: &[&str], stdin: Option<&str>, ca_file: &Path) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env("LDAPTLS_CACERT", ca_file)
        .env("LDAPTLS_REQCERT", "demand")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {program}: {e}"))
}

/// Two distinct loopback ports that were free a moment ago.
fn two_free_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_tcp_port(), free_tcp_port());
        if a != b {
            return (a, b);
        }
    }
}

/// Runs a command that must succeed; panics with its output otherwise.
fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a test CA and a server certificate it signed (P-256; SAN IP 127.0.0.1 and DNS
/// localhost) into `dir/tls`; returns the CA's PEM file.
fn write_tls(dir: &Path) -> PathBuf {
    let tls = dir.join("tls");
    std::fs::create_dir(&tls).expect("tls directory");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    run_ok(
        Command::new("openssl")
            .current_dir(&tls)
            .args(["req", "-x509"])
            .args(ec)
            .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "3650"])
            .args(["-subj", "/CN=Tollgate test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        "openssl: test CA",
    );
    run_ok(
        Command::new("openssl")
            .current_dir(&tls)
            .arg("req")
            .args(ec)
            .args(["-keyout", "server.key", "-out", "server.csr"])
            .args(["-subj", "/CN=localhost"]),
        "openssl: server key",
    );
    std::fs::write(
        tls.join("server.ext"),
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n",
    )
    .expect("write server.ext");
    let serial = format!("0x{:016x}", rand::random::<u64>() >> 1);
    run_ok(
        Command::new("openssl")
            .current_dir(&tls)
            .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem"])
            .args(["-CAkey", "ca.key", "-set_serial", &serial, "-days", "3650"])
            .args(["-extfile", "server.ext", "-out", "server.pem"]),
        "openssl: server certificate",
    );
    tls.join("ca.pem")
}

/// Writes the patched copy of Debian's `msuser.schema` (see the module documentation).
fn write_schema(dir: &Path) {
    let source = "/etc/ldap/schema/msuser.schema";
    let mut text = std::fs::read_to_string(source)
        .unwrap_or_else(|e| panic!("{source}: {e} (install the Debian package slapd)"));
    for (name, rules) in AD_MATCHING_RULES {
        let line = format!("\tNAME '{name}'\n");
        assert_eq!(
            text.matches(&line).count(),
            1,
            "{source} no longer defines {name} as the harness expects"
        );
        text = text.replace(&line, &format!("{line}\t{rules}\n"));
    }
    text.push_str(
        "\n# Added by the Tollgate test harness: AD's auxiliary class that carries\n\
         # sAMAccountName (1.2.840.113556.1.5.6).\n\
         objectclass ( MSADoc5:6 NAME 'securityPrincipal' SUP top AUXILIARY\n \
         MUST ( sAMAccountName ) MAY ( objectSid ) )\n",
    );
    std::fs::write(dir.join("msuser.schema"), text).expect("write msuser.schema");
}

/// Writes `slapd.conf`: schemas, TLS, one mdb database and its access rules; every path
/// is inside `dir`.
fn write_config(dir: &Path) {
    let d = dir.display();
    let conf = format!(
        r#"# Written by the Tollgate test harness.
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include {d}/msuser.schema

pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb

TLSCACertificateFile {d}/tls/ca.pem
TLSCertificateFile {d}/tls/server.pem
TLSCertificateKeyFile {d}/tls/server.key

sizelimit 50000

database mdb
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {admin}
directory {d}/db
maxsize 268435456
dbnosync
index objectClass,uid,cn,mail,member,memberOf,sAMAccountName,userPrincipalName eq
limits dn.exact="{SERVICE_DN}" size=unlimited time=unlimited
limits dn.exact="{READONLY_DN}" size=unlimited time=unlimited

access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to attrs=telexNumber
    by dn.exact="{SERVICE_DN}" write
    by users read
    by * none
access to *
    by users read
    by anonymous auth
    by * none
"#,
        admin = ssha(ADMIN_PASSWORD),
    );
    std::fs::write(dir.join("slapd.conf"), conf).expect("write slapd.conf");
}

/// Loads `dir/data.ldif` into the database offline.
fn slapadd(dir: &Path) {
    run_ok(
        Command::new("slapadd")
            .arg("-q")
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(dir.join("data.ldif")),
        "slapadd",
    );
}

/// The LDIF of the whole tree, with `load_users` load users.
fn tree_ldif(load_users: usize) -> String {
    let mut hashes = HashMap::new();
    let mut ssha_of = |password: String| -> String {
        hashes
            .entry(password)
            .or_insert_with_key(|p| ssha(p))
            .clone()
    };
    let mut l = String::new();
    let _ = write!(
        l,
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    );
    for ou in ["people", "ad-people", "groups", "services"] {
        let _ = write!(
            l,
            "dn: ou={ou},{BASE_DN}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
        );
    }
    for p in PEOPLE {
        let _ = write!(
            l,
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {sn}\n\
             mail: {uid}@example.com\nmobile: {mobile}\nuserPassword: {pw}\n\n",
            dn = user_dn(p.uid),
            uid = p.uid,
            cn = p.cn,
            sn = p.sn,
            mobile = p.mobile,
            pw = ssha_of(format!("{}-pass", p.uid)),
        );
    }
    for p in AD_PEOPLE {
        let name = p.name;
        let _ = write!(
            l,
            "dn: {dn}\nobjectClass: user\nobjectClass: securityPrincipal\ncn: {name}\n\
             sn: {sn}\ninstanceType: 4\nnTSecurityDescriptor:: AQAEgBQAAAAwAAAAAAAAAEwAAAA=\n\
             objectCategory: CN=Person,CN=Schema,CN=Configuration,DC=corp,DC=example,DC=com\n\
             sAMAccountName: {name}\nuserPrincipalName: {name}@{UPN_DOMAIN}\n\
             userAccountControl: {uac}\nmemberOf: {VPN_GROUP_DN}\n\
             mail: {name}@{UPN_DOMAIN}\nmobile: {mobile}\nuserPassword: {pw}\n",
            dn = ad_user_dn(name),
            sn = p.sn,
            uac = p.uac,
            mobile = p.mobile,
            pw = ssha_of(format!("{name}-pass")),
        );
        if let Some(v) = p.account_expires {
            let _ = writeln!(l, "accountExpires: {v}");
        }
        if let Some(v) = p.lockout_time {
            let _ = writeln!(l, "lockoutTime: {v}");
        }
        l.push('\n');
    }
    let load_hash = ssha_of(LOAD_PASSWORD.to_owned());
    for i in 0..load_users {
        let uid = load_uid(i);
        let _ = write!(
            l,
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: Load User {i}\nsn: User{i}\n\
             mail: {uid}@example.com\nmobile: +44 7700 9{m:05}\nuserPassword: {load_hash}\n\n",
            dn = user_dn(&uid),
            m = i % 100_000,
        );
    }
    let _ = write!(
        l,
        "dn: {VPN_GROUP_DN}\nobjectClass: groupOfNames\ncn: vpn-users\n"
    );
    for uid in ["alice", "carol", "dave"] {
        let _ = writeln!(l, "member: {}", user_dn(uid));
    }
    for p in AD_PEOPLE {
        let _ = writeln!(l, "member: {}", ad_user_dn(p.name));
    }
    for i in 0..load_users {
        let _ = writeln!(l, "member: {}", user_dn(&load_uid(i)));
    }
    let _ = write!(
        l,
        "\ndn: {PASSWORD_ONLY_GROUP_DN}\nobjectClass: groupOfNames\ncn: password-only\n\
         member: {}\n\n",
        user_dn("carol")
    );
    for (dn, cn, password) in [
        (SERVICE_DN, "tollgate", SERVICE_PASSWORD),
        (READONLY_DN, "readonly", READONLY_PASSWORD),
    ] {
        let _ = write!(
            l,
            "dn: {dn}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
             cn: {cn}\nuserPassword: {pw}\n\n",
            pw = ssha_of(password.to_owned()),
        );
    }
    l
}

/// `{SSHA}` of a password: base64 of SHA-1(password ‖ salt) ‖ salt, with an 8-byte
/// random salt (the scheme `slappasswd` uses by default).
pub fn ssha(password: &str) -> String {
    let salt: [u8; 8] = rand::random();
    let mut hasher = Sha1::new();
    hasher.update(password.as_bytes());
    hasher.update(salt);
    let mut bytes = hasher.finalize().to_vec();
    bytes.extend_from_slice(&salt);
    format!("{{SSHA}}{}", base64(&bytes))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
