//! Who may change the cluster. With `tls:` configured, only brokers use the peer port, and each
//! only for itself: the forged fetch this guards against (an outsider sending `Fetch(replica_id =
//! F, offset = LEO)` for every follower while they were down) made the leader acknowledge an
//! acks=all write no follower held. With ZooKeeper credentials, only brokers change the
//! cluster's znodes.

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
            let got = first_streamed(&mut peer, forged(id, be)).await;
            assert!(
                got.is_err(),
                "{how}: a forged streamed fetch was answered: {got:?}"
            );
        }
    }
    // A real broker's certificate may fetch only as that broker.
    let mut impostor = outsider(&addr, Some((&ours, Some((&ours, other)))), leader).await;
    let be = broker_epochs[0].1;
    let refused = impostor
        .fetch(forged(f, be))
        .await
        .expect_err("broker `other` fetching as `f`");
    let streamed = first_streamed(&mut impostor, forged(f, be))
        .await
        .expect_err("broker `other` fetching as `f` on a stream");
    for refused in [&refused, &streamed] {
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        assert!(
            refused.message().contains(&format!(
                "broker {other}'s certificate cannot fetch as replica {f}"
            )),
            "{refused:?}"
        );
    }

    // Nobody held the write but the leader: it is not acknowledged.
    let outcome = pending.await.expect("task");
    assert!(
        outcome.is_err(),
        "acknowledged with both followers down: {outcome:?}"
    );
    c.cluster.shutdown().await;
}

/// A raw ZooKeeper session on the cluster's chroot, with `credentials` if given.
async fn zk_session(connect: &str, credentials: Option<&str>) -> zookeeper_client::Client {
    let (servers, chroot) = simplekv::coord::split_connect(connect);
    let mut connector = zookeeper_client::Client::connector();
    if let Some(c) = credentials {
        connector = connector.with_auth("digest", c.as_bytes());
    }
    let client = connector.connect(servers).await.expect("zk");
    client.chroot(chroot.to_string()).expect("chroot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_credentials_only_brokers_change_the_cluster_in_zookeeper() {
    use simplekv::coord::layout::{BROKER_IDS, CLUSTER, CONTROLLER, state_path};
    use zookeeper_client::{Acls, CreateMode, Error};
    // A client without credentials came first and made the cluster's chroot, open to all.
    let connect = simplekv::testkit::zk_connect("zk-acl");
    drop(
        simplekv::coord::Coord::connect(&connect, Duration::from_secs(5))
            .await
            .expect("an anonymous session"),
    );
    let c = start_with(|d| {
        let mut o = options("zk-acl", spec(3, 1, 3, 2), d);
        o.zk = simplekv::lab::ZkChoice::External(connect.clone());
        o.zk_credentials = Some("simplekv:s3cret".into());
        o
    })
    .await;
    wait_for_isr(&c, 3).await;

    for (who, creds) in [
        ("anonymous", None),
        ("a wrong password", Some("simplekv:guess")),
    ] {
        let zk = zk_session(c.zk_connect(), creds).await;
        let (data, stat) = zk.get_data(CLUSTER).await.expect("anyone reads");
        assert!(!data.is_empty());
        let refused = [
            zk.set_data(CLUSTER, b"{}", Some(stat.version)).await.err(),
            zk.set_data(&state_path(0), b"{}", None).await.err(),
            zk.delete(CONTROLLER, None).await.err(),
            // Not even a new znode at the top, such as a /controller while there is none.
            zk.create(
                "/intruder",
                b"",
                &CreateMode::Persistent.with_acls(Acls::anyone_all()),
            )
            .await
            .err(),
            zk.create(
                &format!("{BROKER_IDS}/99"),
                b"{}",
                &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
            )
            .await
            .err(),
        ];
        for r in refused {
            assert_eq!(r, Some(Error::NoAuth), "{who}");
        }
    }

    // A chroot nested under one the brokers made (closed): a session without credentials still
    // connects to it, as the cli and a node's RESP client do.
    let nested = format!("{connect}/deeper/still");
    simplekv::coord::Coord::connect_as(&nested, Duration::from_secs(5), Some("simplekv:s3cret"))
        .await
        .expect("a broker's session makes the nested chroot");
    simplekv::coord::Coord::connect(&nested, Duration::from_secs(5))
        .await
        .expect("an anonymous session on a nested chroot the brokers made");

    // The brokers change each other's znodes: a new leader is elected and takes writes.
    let leader = leader_of(&c, 0).expect("leader");
    c.kill(leader).await.expect("kill");
    wait_for("another leader", Duration::from_secs(30), || async {
        leader_of(&c, 0).is_some_and(|l| l != leader)
    })
    .await;
    client(&c)
        .await
        .set(b"after", b"1", None, Acks::All)
        .await
        .expect("a write under the new leader");
    c.cluster.shutdown().await;
}
