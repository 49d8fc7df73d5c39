//! What the gateway tests share: test certificates made by `openssl` (a CA, a server
//! certificate for 127.0.0.1 signed by it, and a second CA that signed nothing).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl` in `dir` and returns its standard output; panics with its error.
#[allow(dead_code)]
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e} (install the Debian package openssl)"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CA, a P-256 server certificate for 127.0.0.1 signed by it, and another CA.
pub struct Pki {
    /// The directory holding them (`ca.pem`, `server.pem`, `server.key`, `other.pem`);
    /// kept for as long as the certificates are used.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
    /// The CA's certificate.
    pub ca: PathBuf,
    /// The server's certificate.
    #[allow(dead_code)]
    pub cert: PathBuf,
    /// The server's key.
    #[allow(dead_code)]
    pub key: PathBuf,
    /// A CA that signed nothing: trusting it alone must fail the handshake.
    pub other_ca: PathBuf,
}

impl Pki {
    /// Makes the certificates; `label` names the CAs' subjects.
    pub fn new(label: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for name in ["ca", "other"] {
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
            let subject = format!("/CN=Tollgate {label} test {name}");
            args.extend([
                "-keyout", &key, "-out", &pem, "-days", "30", "-subj", &subject,
            ]);
            args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(d, &args);
        }
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", "server.key", "-out", "server.csr"]);
        args.extend(["-subj", "/CN=127.0.0.1"]);
        openssl(d, &args);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName = IP:127.0.0.1\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "30",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        Pki {
            ca: d.join("ca.pem"),
            cert: d.join("server.pem"),
            key: d.join("server.key"),
            other_ca: d.join("other.pem"),
            dir,
        }
    }
}
