//! How brokers meet the network: bounded accepting of connections ([`listen`]), mutual TLS
//! between brokers ([`tls`]) and the certificates for it ([`certs`]).

pub mod certs;
pub mod listen;
pub mod tls;
