//! `simplekv-lab certs`: a small CA for one cluster and a certificate per broker, for mutual TLS
//! between brokers (see [`super::tls`]). Each broker's certificate names it `broker-N` and the
//! hosts it is reached at, and serves both as its server and its client certificate.

use super::tls::broker_name;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The CA's files in a certificate directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key: keep it off the brokers.
pub const CA_KEY: &str = "ca.key";

/// A broker's certificate file name.
pub fn cert_file(id: u32) -> String {
    format!("{}.pem", broker_name(id))
}

/// A broker's key file name.
pub fn key_file(id: u32) -> String {
    format!("{}.key", broker_name(id))
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The CA in `dir`: the one already there (so certificates for a broker added later join the
/// same cluster), else a new one. Returns it and whether it is new.
fn ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, bool), String> {
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    if cert.exists() || key.exists() {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let pair = KeyPair::from_pem(&read(&key)?)
            .map_err(|e| format!("{} is not a private key: {e}", key.display()))?;
        let issuer = Issuer::from_ca_cert_pem(&read(&cert)?, pair)
            .map_err(|e| format!("{} is not a CA certificate: {e}", cert.display()))?;
        return Ok((issuer, false));
    }
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.distinguished_name
        .push(DnType::CommonName, "SimpleKV lab cluster CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(|e| format!("cannot make the CA's key: {e}"))?;
    let ca = p
        .self_signed(&key)
        .map_err(|e| format!("cannot sign the CA: {e}"))?;
    write(&cert, &ca.pem(), false)?;
    write(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    Ok((Issuer::new(p, key), true))
}

/// Makes (or extends) the certificates of a cluster of `brokers` brokers in `dir`: the CA, and
/// for each broker a certificate naming `broker-N`, `localhost`, 127.0.0.1 and `hosts`. Returns
/// the files written, for the caller to list.
pub fn make(dir: &Path, brokers: u32, hosts: &[String]) -> Result<Vec<PathBuf>, String> {
    if brokers == 0 {
        return Err("a cluster needs at least one broker".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (issuer, new_ca) = ca(dir)?;
    let mut written = Vec::new();
    if new_ca {
        written.extend([dir.join(CA_CERT), dir.join(CA_KEY)]);
    }
    for id in 1..=brokers {
        let mut names = vec![broker_name(id), "localhost".into(), "127.0.0.1".into()];
        for h in hosts {
            if !names.contains(h) {
                names.push(h.clone());
            }
        }
        let mut p = CertificateParams::new(names).map_err(|e| format!("bad host name: {e}"))?;
        p.distinguished_name
            .push(DnType::CommonName, broker_name(id));
        p.is_ca = IsCa::ExplicitNoCa;
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
        let cert = p
            .signed_by(&key, &issuer)
            .map_err(|e| format!("cannot sign broker {id}'s certificate: {e}"))?;
        let (c, k) = (dir.join(cert_file(id)), dir.join(key_file(id)));
        write(&c, &cert.pem(), false)?;
        write(&k, &key.serialize_pem(), true)?;
        written.extend([c, k]);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_certificate_names_its_broker_and_a_second_run_keeps_the_ca() {
        let dir = tempfile::tempdir().expect("dir");
        let files = make(dir.path(), 2, &["kv.example".into()]).expect("certs");
        assert_eq!(files.len(), 6, "{files:?}");
        for id in 1..=2 {
            let pem = std::fs::read(dir.path().join(cert_file(id))).expect("cert");
            let der = rustls_pki_types::pem::PemObject::from_pem_slice(&pem)
                .map(|c: rustls_pki_types::CertificateDer<'static>| c)
                .expect("a certificate");
            assert_eq!(super::super::tls::broker_of(&der), Some(id));
        }
        let ca = std::fs::read(dir.path().join(CA_CERT)).expect("ca");
        let again = make(dir.path(), 3, &[]).expect("certs");
        assert_eq!(again.len(), 6, "three brokers, the CA kept: {again:?}");
        assert_eq!(std::fs::read(dir.path().join(CA_CERT)).expect("ca"), ca);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(key_file(1)))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "keys are private");
        }
        assert!(make(dir.path(), 0, &[]).is_err());
    }
}
