//! `raftkv cert`: the certificates a TLS cluster needs, made with rcgen — a
//! cluster CA, member certificates (server and client authentication, a URI
//! subject alternative name [`member_uri`] per member the process hosts and a
//! DNS name or IP address per host it is dialled at) and client certificates
//! (client authentication only, naming no member).
//!
//! A CA is `DIR/ca.pem` and `DIR/ca-key.pem`; a certificate made with `--out
//! PREFIX` is `PREFIX.pem` and `PREFIX-key.pem`. Private keys are written
//! with mode 0600. Existing files are never replaced without `--force`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use raftkv_core::{GroupId, NodeId};
use raftkv_wire::net::member_uri;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Validity of a CA unless `--days` says otherwise.
const CA_DAYS: u32 = 3650;
/// Validity of a member or client certificate unless `--days` says otherwise.
const LEAF_DAYS: u32 = 825;

/// What `raftkv cert` makes.
#[derive(Debug, clap::Subcommand)]
pub enum CertCommand {
    /// A cluster CA: DIR/ca.pem and DIR/ca-key.pem (the key with mode 0600).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "raftkv cluster CA")]
        name: String,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = CA_DAYS)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// A member's certificate (server and client): PREFIX.pem and PREFIX-key.pem.
    Member {
        /// Directory of the CA (ca.pem, ca-key.pem).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// A member this process hosts, GROUP:NODE (group 0 is the
        /// controller, nodes count from 1); repeat for each.
        #[arg(long = "member", value_name = "GROUP:NODE", required = true, value_parser = parse_member)]
        members: Vec<(GroupId, NodeId)>,
        /// A DNS name or IP address the process is dialled at; repeat for each.
        #[arg(long = "host", value_name = "NAME_OR_IP", required = true)]
        hosts: Vec<String>,
        /// Path prefix of the files written.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = LEAF_DAYS)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// A client's certificate (client authentication only, no member): PREFIX.pem and PREFIX-key.pem.
    Client {
        /// Directory of the CA (ca.pem, ca-key.pem).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The client's common name.
        #[arg(long)]
        name: String,
        /// Path prefix of the files written.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = LEAF_DAYS)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file to write exists and `--force` was not given.
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    /// A file of the CA could not be read.
    #[error("--ca: cannot read {path}: {error} (a CA is made with `raftkv cert ca --out DIR`)")]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The CA files do not hold a usable CA.
    #[error("--ca: {path}: {reason}")]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// rcgen refused the parameters (a host that is no valid DNS name, say).
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

/// A certificate and its key, PEM-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
}

/// `--member` values: `GROUP:NODE`, both numbers, the node from 1.
pub fn parse_member(s: &str) -> Result<(GroupId, NodeId), String> {
    let bad = || format!("`{s}`: expected GROUP:NODE (numbers; group 0 is the controller, nodes count from 1)");
    let (g, n) = s.split_once(':').ok_or_else(bad)?;
    let (g, n): (u64, u64) = (g.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 {
        return Err(bad());
    }
    Ok((GroupId(g), NodeId(n)))
}

/// Validity from an hour ago (clocks disagree a little) to `days` from now.
fn validity(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let epoch = date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(Duration::from_secs(3600));
    params.not_after = epoch + now + Duration::from_secs(u64::from(days) * 86_400);
}

/// A new self-signed CA named `name`.
pub fn make_ca(name: &str, days: u32) -> Result<Pair, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// The CA in `dir` (ca.pem, ca-key.pem), ready to sign.
pub fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|error| CertError::ReadCa { path: path.to_path_buf(), error })
    };
    let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
    let bad = |path: &Path, reason: String| CertError::BadCa { path: path.to_path_buf(), reason };
    let key = KeyPair::from_pem(&key_pem).map_err(|e| bad(&key_path, format!("no usable private key: {e}")))?;
    let der = pem_der(&cert_pem).ok_or_else(|| bad(&cert_path, "no PEM certificate in it".into()))?;
    let (_, x509) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| bad(&cert_path, format!("not a certificate: {e}")))?;
    if !x509.is_ca() {
        return Err(bad(&cert_path, "not a CA certificate".into()));
    }
    if x509.public_key().subject_public_key.data.as_ref() != rcgen::PublicKeyData::der_bytes(&key) {
        return Err(bad(&key_path, format!("not the private key of {}", cert_path.display())));
    }
    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| bad(&cert_path, format!("not a usable CA: {e}")))
}

/// The DER bytes of the first certificate in `pem`.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    (block.label == "CERTIFICATE").then_some(block.contents)
}

/// A member certificate signed by `ca`: server and client authentication,
/// one URI SAN per member in `members` and a DNS or IP SAN per host.
pub fn make_member(
    ca: &Issuer<'_, KeyPair>,
    members: &[(GroupId, NodeId)],
    hosts: &[String],
    days: u32,
) -> Result<Pair, CertError> {
    let mut params = CertificateParams::new(hosts.to_vec())?;
    for &(g, n) in members {
        params.subject_alt_names.push(SanType::URI(member_uri(g, n).try_into()?));
    }
    let names: Vec<String> = members.iter().map(|(g, n)| format!("{}:{}", g.0, n.0)).collect();
    params.distinguished_name.push(DnType::CommonName, format!("raftkv member {}", names.join(" ")));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// A client certificate signed by `ca`: client authentication only, named
/// `name`, naming no member.
pub fn make_client(ca: &Issuer<'_, KeyPair>, name: &str, days: u32) -> Result<Pair, CertError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    Ok(Pair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// `prefix` with `suffix` appended to its file name (`certs/n1` → `certs/n1-key.pem`).
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(suffix);
    prefix.with_file_name(name)
}

/// Write `pair` to `cert` and `key` (mode 0600), refusing to replace
/// either unless `force`; nothing is written if either exists.
fn write_pair(pair: &Pair, cert: &Path, key: &Path, force: bool) -> Result<(), CertError> {
    if !force {
        if let Some(existing) = [cert, key].into_iter().find(|p| p.exists()) {
            return Err(CertError::Exists(existing.to_path_buf()));
        }
    }
    write_file(cert, pair.cert_pem.as_bytes(), 0o644)?;
    write_file(key, pair.key_pem.as_bytes(), 0o600)
}

/// Write `bytes` to `path` with `mode`, through a temporary file renamed
/// into place (so the file never exists with other permissions or half-written).
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    use std::io::Write;
    let failed = |error| CertError::Write { path: path.to_path_buf(), error };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let tmp = with_suffix(path, &format!(".tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed.map_err(failed)
}

/// Carry out `command`; what was written, one line per file.
pub fn run(command: &CertCommand) -> Result<String, CertError> {
    let mut out = String::new();
    match command {
        CertCommand::Ca { out: dir, name, days, force } => {
            let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
            write_pair(&make_ca(name, *days)?, &cert, &key, *force)?;
            let _ = writeln!(
                out,
                "wrote {} (the cluster CA certificate: give it to every node and client)",
                cert.display()
            );
            let _ = write!(out, "wrote {} (the CA's private key, mode 0600: keep it off the nodes)", key.display());
        }
        CertCommand::Member { ca, members, hosts, out: prefix, days, force } => {
            let issuer = load_ca(ca)?;
            let (cert, key) = (with_suffix(prefix, ".pem"), with_suffix(prefix, "-key.pem"));
            write_pair(&make_member(&issuer, members, hosts, *days)?, &cert, &key, *force)?;
            let uris: Vec<String> = members.iter().map(|&(g, n)| member_uri(g, n)).collect();
            let _ = writeln!(
                out,
                "wrote {} (member certificate for {}; hosts {})",
                cert.display(),
                uris.join(", "),
                hosts.join(", ")
            );
            let _ = write!(out, "wrote {} (its private key, mode 0600)", key.display());
        }
        CertCommand::Client { ca, name, out: prefix, days, force } => {
            let issuer = load_ca(ca)?;
            let (cert, key) = (with_suffix(prefix, ".pem"), with_suffix(prefix, "-key.pem"));
            write_pair(&make_client(&issuer, name, *days)?, &cert, &key, *force)?;
            let _ = writeln!(out, "wrote {} (client certificate `{name}`, no member)", cert.display());
            let _ = write!(out, "wrote {} (its private key, mode 0600)", key.display());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use x509_parser::extensions::{GeneralName, ParsedExtension};

    use super::*;

    /// The URI, DNS and IP subject alternative names and the extended key
    /// usages (server, client) of the certificate in `pem`.
    fn names(pem: &str) -> (BTreeSet<String>, BTreeSet<String>, (bool, bool)) {
        let der = pem_der(pem).expect("a PEM certificate");
        let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("a certificate");
        let (mut uris, mut hosts) = (BTreeSet::new(), BTreeSet::new());
        if let Some(san) = cert.subject_alternative_name().expect("a readable SAN") {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => {
                        uris.insert((*u).to_string());
                    }
                    GeneralName::DNSName(d) => {
                        hosts.insert((*d).to_string());
                    }
                    GeneralName::IPAddress(ip) => {
                        hosts.insert(format!("{ip:?}"));
                    }
                    _ => {}
                }
            }
        }
        let mut usage = (false, false);
        for ext in cert.extensions() {
            if let ParsedExtension::ExtendedKeyUsage(eku) = ext.parsed_extension() {
                usage = (eku.server_auth, eku.client_auth);
            }
        }
        (uris, hosts, usage)
    }

    #[test]
    fn a_member_certificate_names_exactly_the_members_asked_for_and_every_host() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = make_ca("test CA", 1).expect("a CA");
        write_pair(&ca, &dir.path().join("ca.pem"), &dir.path().join("ca-key.pem"), false).expect("CA written");
        let issuer = load_ca(dir.path()).expect("the CA loads back");
        let members = [(GroupId(0), NodeId(1)), (GroupId(0), NodeId(2)), (GroupId(2), NodeId(3))];
        let hosts = ["127.0.0.1".to_string(), "node-a.example".to_string()];
        let pair = make_member(&issuer, &members, &hosts, 1).expect("a member certificate");
        let (uris, names_, usage) = names(&pair.cert_pem);
        let expected: BTreeSet<String> =
            ["urn:raftkv:member:0:1", "urn:raftkv:member:0:2", "urn:raftkv:member:2:3"].map(String::from).into();
        assert_eq!(uris, expected);
        assert!(names_.contains("node-a.example") && names_.iter().any(|h| h.contains("127")), "{names_:?}");
        assert_eq!(usage, (true, true), "a member serves and dials");
        // Servers read the members back from the URIs.
        let seen: BTreeSet<_> = uris.iter().filter_map(|u| raftkv_wire::net::parse_member_uri(u)).collect();
        assert_eq!(seen, members.into_iter().collect());
    }

    #[test]
    fn a_client_certificate_names_no_member_and_only_authenticates_clients() {
        let ca = make_ca("test CA", 1).expect("a CA");
        let key = KeyPair::from_pem(&ca.key_pem).expect("key");
        let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, key).expect("issuer");
        let pair = make_client(&issuer, "ops laptop", 1).expect("a client certificate");
        let (uris, _, usage) = names(&pair.cert_pem);
        assert!(uris.is_empty(), "{uris:?}");
        assert_eq!(usage, (false, true));
    }

    #[test]
    fn files_are_not_replaced_without_force_and_keys_are_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_dir = dir.path().join("ca");
        let make = |force| run(&CertCommand::Ca { out: ca_dir.clone(), name: "CA".into(), days: 1, force });
        let printed = make(false).expect("a CA in a new directory");
        assert!(printed.contains("ca.pem") && printed.contains("ca-key.pem"), "{printed}");
        let before = std::fs::read(ca_dir.join("ca.pem")).expect("ca.pem");
        let e = make(false).expect_err("refused");
        assert!(e.to_string().contains("ca.pem exists; pass --force"), "{e}");
        assert_eq!(std::fs::read(ca_dir.join("ca.pem")).expect("ca.pem"), before, "untouched");
        make(true).expect("replaced with --force");
        assert_ne!(std::fs::read(ca_dir.join("ca.pem")).expect("ca.pem"), before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(ca_dir.join("ca-key.pem")).expect("key").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let client = CertCommand::Client {
            ca: ca_dir.clone(),
            name: "c".into(),
            out: dir.path().join("out/client"),
            days: 1,
            force: false,
        };
        let printed = run(&client).expect("a client certificate");
        assert!(dir.path().join("out/client.pem").exists() && dir.path().join("out/client-key.pem").exists());
        assert!(printed.contains("client-key.pem"), "{printed}");
        assert!(run(&client).is_err(), "not replaced");
    }

    #[test]
    fn a_missing_or_mismatched_ca_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = load_ca(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("--ca: cannot read") && e.contains("ca.pem"), "{e}");
        let (a, b) = (make_ca("A", 1).expect("CA"), make_ca("B", 1).expect("CA"));
        std::fs::write(dir.path().join("ca.pem"), &a.cert_pem).expect("written");
        std::fs::write(dir.path().join("ca-key.pem"), &b.key_pem).expect("written");
        let e = load_ca(dir.path()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("ca-key.pem") && e.contains("not the private key"), "{e}");
    }

    #[test]
    fn member_arguments_are_group_and_node_numbers() {
        assert_eq!(parse_member("0:1"), Ok((GroupId(0), NodeId(1))));
        assert_eq!(parse_member("12:3"), Ok((GroupId(12), NodeId(3))));
        for bad in ["1", "1:0", "a:1", "1:b", "1:2:3", ""] {
            assert!(parse_member(bad).is_err(), "{bad}");
        }
    }
}
