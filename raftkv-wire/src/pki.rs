//! Test certificates made at run time with rcgen (feature `testkit`): a
//! cluster CA, the node, client and member certificates it signs, and a
//! rogue certificate signed by an unrelated CA — everything the TLS and
//! mTLS conformance tests need.

use crate::net::{member_uri, Identity};
use crate::testkit::transport::TestPki;
use raftkv_core::{GroupId, NodeId};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

/// Names every test certificate is valid for.
const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

fn make_ca(name: &str) -> Result<(String, Issuer<'static, KeyPair>), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// A certificate for `localhost` and `127.0.0.1` naming `members`.
fn leaf(name: &str, members: &[(u64, u64)], issuer: &Issuer<'_, KeyPair>) -> Result<Identity, rcgen::Error> {
    let mut params = CertificateParams::new(NAMES.iter().map(|s| (*s).to_string()).collect::<Vec<_>>())?;
    for &(g, n) in members {
        params.subject_alt_names.push(SanType::URI(member_uri(GroupId(g), NodeId(n)).try_into()?));
    }
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, issuer)?;
    Ok(Identity { cert_pem: cert.pem().into_bytes(), key_pem: key.serialize_pem().into_bytes() })
}

/// A fresh cluster CA with the certificates of [`TestPki`], and a rogue
/// certificate from another CA; all valid for `localhost` and `127.0.0.1`.
pub fn generate() -> Result<TestPki, rcgen::Error> {
    let (ca_pem, ca) = make_ca("raftkv test cluster CA")?;
    let (rogue_ca_pem, rogue_ca) = make_ca("someone else's CA")?;
    let node_members: Vec<(u64, u64)> = [0, 1, 7].iter().flat_map(|&g| (1..=3).map(move |n| (g, n))).collect();
    Ok(TestPki {
        ca_pem: ca_pem.into_bytes(),
        node: leaf("raftkv node", &node_members, &ca)?,
        client: leaf("raftkv client", &[], &ca)?,
        member_3: leaf("raftkv member 3 of group 1", &[(1, 3)], &ca)?,
        rogue_ca_pem: rogue_ca_pem.into_bytes(),
        rogue: leaf("rogue node", &node_members, &rogue_ca)?,
    })
}
