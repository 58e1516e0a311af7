//! Who may talk to a broker's peer port: with `tls:` configured, only brokers, and each only for
//! itself. The forged fetch this guards against: an outsider sending `Fetch(replica_id = F,
//! offset = LEO)` for every follower while they are down made the leader acknowledge an acks=all
//! write no follower held.

use crate::support::*;
use simplekv::net::certs;
use simplekv::replica::Acks;
use simplekv::rpc::{self, replication_client::ReplicationClient};
use std::path::Path;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// A replication client of `addr` speaking as `identity` (a broker's files in `dir`, if any),
/// trusting the CA in `ca_dir`; `None` for plaintext.
async fn outsider(
    addr: &str,
    tls: Option<(&Path, Option<(&Path, u32)>)>,
    leader: u32,
) -> ReplicationClient<Channel> {
    let read = |p: std::path::PathBuf| std::fs::read(&p).expect("pem");
    let channel = match tls {
        None => Channel::from_shared(format!("http://{addr}")).expect("uri"),
        Some((ca_dir, identity)) => {
            let mut c = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(ca_dir.join(certs::CA_CERT))))
                .domain_name(format!("broker-{leader}"));
            if let Some((dir, id)) = identity {
                c = c.identity(Identity::from_pem(
                    read(dir.join(certs::cert_file(id))),
                    read(dir.join(certs::key_file(id))),
                ));
            }
            Channel::from_shared(format!("https://{addr}"))
                .expect("uri")
                .tls_config(c)
                .expect("tls")
        }
    };
    ReplicationClient::new(
        channel
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_brokers_use_the_peer_port_and_each_only_for_itself() {
    let dir = tempfile::tempdir().expect("dir");
    let ours = dir.path().join("certs");
    let rogue = dir.path().join("rogue");
    certs::make(&ours, 3, &[]).expect("certs");
    certs::make(&rogue, 3, &[]).expect("a CA of someone else's");
    let c = start_with(|d| {
        let mut o = options("peer-tls", spec(3, 1, 3, 2), d);
        o.peer_tls = Some(ours.clone());
        o
    })
    .await;
    // Brokers replicate to each other over mutual TLS.
    wait_for_isr(&c, 3).await;
    let client = client(&c).await;
    client
        .set(b"before", b"1", None, Acks::All)
        .await
        .expect("an acks=all write over mutual TLS");

    let leader = leader_of(&c, 0).expect("leader");
    let followers: Vec<u32> = c.ids().into_iter().filter(|&id| id != leader).collect();
    let coord = simplekv::coord::Coord::connect(c.zk_connect(), Duration::from_secs(5))
        .await
        .expect("zk");
    let mut broker_epochs = Vec::new();
    for &f in &followers {
        let info = coord.broker(f).await.expect("zk").expect("registered");
        broker_epochs.push((f, info.epoch));
    }
    let epoch = epoch_of(&c, 0).expect("epoch");
    let b = c.broker(leader).expect("up");
    let replica = b.replica(0).expect("replica");
    let addr = b.peer_addr().to_string();

    // Both followers stop; an acks=all write is appended and waits for them.
    for &f in &followers {
        c.kill(f).await.expect("kill");
    }
    let leo = replica.snapshot().log_end_offset;
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.set(b"pending", b"1", None, Acks::All).await })
    };
    wait_for("the write to be appended", Duration::from_secs(10), || {
        let r = replica.clone();
        async move { r.snapshot().log_end_offset > leo }
    })
    .await;
    let leo = replica.snapshot().log_end_offset;

    // Every forged fetch claims a follower has the whole log.
    let forged = |f: u32, broker_epoch: i64| rpc::FetchRequest {
        partition: 0,
        replica_id: f,
        fetch_offset: leo,
        leader_epoch: epoch,
        max_bytes: 1024,
        max_wait_ms: 0,
        broker_epoch,
        ..Default::default()
    };
    let (f, other) = (followers[0], followers[1]);
    let attempts = [
        ("plaintext", outsider(&addr, None, leader).await),
        (
            "TLS without a certificate",
            outsider(&addr, Some((&ours, None)), leader).await,
        ),
        (
            "a certificate another CA signed",
            outsider(&addr, Some((&ours, Some((&rogue, f)))), leader).await,
        ),
    ];
    for (how, mut peer) in attempts {
        for &(id, be) in &broker_epochs {
            let got = peer.fetch(forged(id, be)).await;
            assert!(got.is_err(), "{how}: a forged fetch was answered: {got:?}");
        }
    }
    // A real broker's certificate may fetch only as that broker.
    let mut impostor = outsider(&addr, Some((&ours, Some((&ours, other)))), leader).await;
    let be = broker_epochs[0].1;
    let refused = impostor
        .fetch(forged(f, be))
        .await
        .expect_err("broker `other` fetching as `f`");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains(&format!(
            "broker {other}'s certificate cannot fetch as replica {f}"
        )),
        "{refused:?}"
    );

    // Nobody held the write but the leader: it is not acknowledged.
    let outcome = pending.await.expect("task");
    assert!(
        outcome.is_err(),
        "acknowledged with both followers down: {outcome:?}"
    );
    c.cluster.shutdown().await;
}
