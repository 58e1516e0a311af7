//! Who may talk to a broker (DESIGN §6, "peers"): in a deployment with `tls:` in its config,
//! brokers speak mutual TLS on their peer ports. Every broker holds a certificate signed by the
//! cluster's CA that names it `broker-N` (see `simplekv-lab certs`); a peer port accepts only
//! such certificates, and a request that speaks for a broker (a follower's fetch) must come with
//! that broker's own. The client port may be TLS too (server-authenticated: clients need the CA).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// A broker's TLS files (`tls:` in its config). Relative paths are from the working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The cluster's CA certificate (PEM): peers must present a certificate it signed.
    pub ca: PathBuf,
    /// This broker's certificate (PEM), naming it `broker-N`.
    pub cert: PathBuf,
    /// This broker's private key (PEM).
    pub key: PathBuf,
    /// Serve the client port (gRPC) with TLS too; clients then need the CA (`cli --tls-ca`).
    #[serde(default)]
    pub client_port: bool,
}

/// A broker's TLS material, read from its files.
#[derive(Debug, Clone)]
pub struct Tls {
    ca: Certificate,
    identity: Identity,
    /// The client port is TLS too.
    pub client_port: bool,
}

/// The name a broker's certificate carries (a DNS name in its subject alternative names).
pub fn broker_name(id: u32) -> String {
    format!("broker-{id}")
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if !bytes.starts_with(b"-----BEGIN") {
        return Err(format!("{what} {} is not a PEM file", path.display()));
    }
    Ok(bytes)
}

impl Tls {
    /// Reads the files `cfg` names (errors are one line naming the file).
    pub fn load(cfg: &TlsConfig) -> Result<Self, String> {
        let ca = read("tls.ca", &cfg.ca)?;
        let cert = read("tls.cert", &cfg.cert)?;
        let key = read("tls.key", &cfg.key)?;
        Ok(Self {
            ca: Certificate::from_pem(ca),
            identity: Identity::from_pem(cert, key),
            client_port: cfg.client_port,
        })
    }

    /// The peer port's server side: only certificates the CA signed are let in.
    pub fn peer_server(&self, handshake: std::time::Duration) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .timeout(handshake)
    }

    /// The client port's server side: the broker proves who it is; clients need no certificate.
    pub fn client_server(&self, handshake: std::time::Duration) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .timeout(handshake)
    }

    /// Dialing broker `peer`'s peer port: this broker's certificate, and the peer must present
    /// one naming it.
    pub fn peer_client(&self, peer: u32) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(broker_name(peer))
    }

    /// Dialing client ports (a broker forwarding a RESP command): this broker's certificate.
    pub fn client(&self) -> ClientTls {
        ClientTls {
            ca: self.ca.clone(),
            identity: Some(self.identity.clone()),
        }
    }
}

/// What a client needs to dial brokers' TLS client ports.
#[derive(Debug, Clone)]
pub struct ClientTls {
    ca: Certificate,
    identity: Option<Identity>,
}

impl ClientTls {
    /// Trusting the CA in `ca` (a PEM file).
    pub fn from_ca_file(ca: &Path) -> Result<Self, String> {
        Ok(Self {
            ca: Certificate::from_pem(read("the CA", ca)?),
            identity: None,
        })
    }

    /// The channel's TLS settings for a broker whose certificate names `domain` (any name the
    /// certificate carries: its `broker-N`, or the host dialed).
    pub fn config(&self) -> ClientTlsConfig {
        let c = ClientTlsConfig::new().ca_certificate(self.ca.clone());
        match &self.identity {
            Some(id) => c.identity(id.clone()),
            None => c,
        }
    }
}

/// The broker a certificate (DER) names, if it names exactly one `broker-N`.
pub fn broker_of(der: &[u8]) -> Option<u32> {
    let der = rustls_pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    let mut ids = cert
        .valid_dns_names()
        .filter_map(|n| n.strip_prefix("broker-")?.parse::<u32>().ok());
    let id = ids.next()?;
    ids.next().is_none().then_some(id)
}

/// The broker a request's client certificate names: `Ok(None)` when the port has no TLS (the
/// lab: one process on loopback), an error when TLS is on and the peer is not a broker.
pub fn caller<T>(req: &tonic::Request<T>, tls: bool) -> Result<Option<u32>, tonic::Status> {
    if !tls {
        return Ok(None);
    }
    let certs = req.peer_certs();
    let leaf = certs.as_deref().and_then(|c| c.first());
    match leaf.and_then(|c| broker_of(c)) {
        Some(id) => Ok(Some(id)),
        None => Err(tonic::Status::permission_denied(
            "the peer's certificate names no broker (broker-N); only brokers use this port",
        )),
    }
}

/// Whether a request from `caller` may speak for replica `replica`: always without TLS, else
/// only a broker for itself.
pub fn may_act_as(caller: Option<u32>, replica: u32) -> Result<(), String> {
    match caller {
        Some(id) if id != replica => Err(format!(
            "broker {id}'s certificate cannot fetch as replica {replica}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_may_fetch_only_as_itself() {
        assert!(may_act_as(None, 2).is_ok(), "no TLS: the lab's loopback");
        assert!(may_act_as(Some(2), 2).is_ok());
        let e = may_act_as(Some(1), 2).unwrap_err();
        assert!(e.contains("broker 1") && e.contains("replica 2"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_pem_is_named() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "hello").expect("write");
        let e = ClientTls::from_ca_file(&ca).unwrap_err();
        assert!(e.contains("ca.pem") && e.contains("not a PEM file"), "{e}");
        let e = ClientTls::from_ca_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.contains("cannot read the CA"), "{e}");
    }
}
