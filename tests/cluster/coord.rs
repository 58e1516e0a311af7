//! The coordination layer against a real ZooKeeper.

use simplekv::coord::{CasOutcome, ClusterSpec, Coord, CoordError, PartitionState};
use simplekv::testkit::zk_connect;
use std::time::Duration;

const SESSION: Duration = Duration::from_millis(2000);

#[tokio::test]
async fn controller_election_bumps_the_epoch_and_fences_a_zombie() {
    let connect = zk_connect("fence");
    let a = Coord::connect(&connect, SESSION).await.expect("connect a");
    let b = Coord::connect(&connect, SESSION).await.expect("connect b");
    a.ensure_layout().await.expect("layout");
    a.ensure_cluster(&ClusterSpec::default())
        .await
        .expect("cluster");

    let lease_a = a
        .try_elect_controller(1)
        .await
        .expect("elect")
        .expect("a wins");
    assert_eq!(lease_a.epoch, 1);
    assert!(
        b.try_elect_controller(2).await.expect("elect").is_none(),
        "one controller at a time"
    );

    let state = PartitionState {
        leader: 1,
        leader_epoch: 0,
        isr: vec![1, 2],
        controller_epoch: 1,
        eligible: Vec::new(),
        broker_epochs: Default::default(),
    };
    let v = a
        .write_state_fenced(0, &state, None, lease_a)
        .await
        .expect("create state");

    // A loses the controller znode (as when its session expires); B takes over with epoch 2.
    a.resign_controller().await.expect("resign");
    let lease_b = b
        .try_elect_controller(2)
        .await
        .expect("elect")
        .expect("b wins");
    assert_eq!(lease_b.epoch, 2);
    assert_eq!(
        b.controller().await.expect("read").map(|c| c.broker_id),
        Some(2)
    );

    // A, still believing it controls, is fenced; B's write goes through.
    let zombie = PartitionState {
        leader: 2,
        leader_epoch: 1,
        ..state.clone()
    };
    let err = a
        .write_state_fenced(0, &zombie, Some(v), lease_a)
        .await
        .expect_err("fenced");
    assert!(matches!(err, CoordError::Fenced), "{err}");
    let v2 = b
        .write_state_fenced(0, &zombie, Some(v), lease_b)
        .await
        .expect("b writes");
    assert!(v2 > v);
    assert_eq!(
        a.partition_state(0)
            .await
            .expect("read")
            .map(|(s, _)| s.leader),
        Some(2)
    );
}

#[tokio::test]
async fn a_controller_whose_win_was_not_acknowledged_finds_itself_on_retry() {
    // Issue 9 case 6: the /controller create commits but its answer is lost (a timeout); the
    // retry gets NodeExists. It must see that the znode is its own, not wait for "the other".
    let connect = zk_connect("ctl-retry");
    let a = Coord::connect(&connect, SESSION).await.expect("connect a");
    let b = Coord::connect(&connect, SESSION).await.expect("connect b");
    a.ensure_layout().await.expect("layout");
    let won = a
        .try_elect_controller(1)
        .await
        .expect("elect")
        .expect("a wins");
    let again = a.try_elect_controller(1).await.expect("retry");
    assert_eq!(again, Some(won), "the retry recognises its own win");
    assert_eq!(b.try_elect_controller(2).await.expect("elect"), None);
}

#[tokio::test]
async fn each_registration_of_a_broker_has_a_larger_broker_epoch() {
    let connect = zk_connect("broker-epoch");
    let info = simplekv::coord::BrokerInfo {
        host: "127.0.0.1".into(),
        kv_port: 1,
        peer_port: 2,
        epoch: 0,
    };
    let first = {
        let a = Coord::connect(&connect, SESSION).await.expect("connect");
        a.ensure_layout().await.expect("layout");
        let e = a.register_broker(1, &info).await.expect("register");
        assert_eq!(a.own_registration(1).await.expect("stat"), Some(e));
        assert_eq!(a.brokers().await.expect("list")[&1].epoch, e);
        e
    };
    // Dropping the only handle closed the first session; its ephemeral goes with it.
    let b = Coord::connect(&connect, SESSION).await.expect("connect");
    assert!(
        b.wait_absent("/brokers/ids/1", SESSION * 3)
            .await
            .expect("wait")
    );
    let second = b.register_broker(1, &info).await.expect("register again");
    assert!(second > first, "{second} > {first}");
    assert_eq!(
        b.broker(1).await.expect("read").map(|i| i.epoch),
        Some(second)
    );
}

#[tokio::test]
async fn isr_compare_and_set_fails_on_a_stale_version() {
    let connect = zk_connect("cas");
    let c = Coord::connect(&connect, SESSION).await.expect("connect");
    c.ensure_layout().await.expect("layout");
    let lease = c
        .try_elect_controller(1)
        .await
        .expect("elect")
        .expect("wins");
    let state = PartitionState {
        leader: 1,
        leader_epoch: 0,
        isr: vec![1, 2, 3],
        controller_epoch: 1,
        eligible: Vec::new(),
        broker_epochs: Default::default(),
    };
    let v = c
        .write_state_fenced(0, &state, None, lease)
        .await
        .expect("create");
    let shrunk = PartitionState {
        isr: vec![1, 2],
        ..state.clone()
    };
    let v2 = c.write_state_cas(0, &shrunk, v).await.expect("cas");
    let err = c.write_state_cas(0, &state, v).await.expect_err("stale");
    assert!(matches!(err, CoordError::BadVersion(_)), "{err}");
    assert_eq!(
        c.partition_state(0).await.expect("read"),
        Some((shrunk.clone(), v2))
    );

    // A write whose answer was lost is settled by sending it again: whether the first send took
    // effect (the resend is refused, and the read after it sees the write) ...
    assert_eq!(
        c.settle_state_cas(0, &shrunk, v).await.expect("settle"),
        CasOutcome::Taken(v2)
    );
    // ... or never reached ZooKeeper (the resend makes it).
    let grown = PartitionState {
        isr: vec![1, 2, 3],
        ..shrunk.clone()
    };
    let v3 = match c.settle_state_cas(0, &grown, v2).await.expect("settle") {
        CasOutcome::Taken(v3) => v3,
        other => panic!("the resend takes effect: {other:?}"),
    };
    assert_eq!(v3, v2 + 1);
    // Another state written meanwhile supersedes it.
    assert_eq!(
        c.settle_state_cas(0, &shrunk, v2).await.expect("settle"),
        CasOutcome::Superseded(grown, v3)
    );
}

#[tokio::test]
async fn an_unreachable_zookeeper_is_one_clear_error() {
    let port = simplekv::coord::server::free_port().expect("port");
    let err = Coord::connect(&format!("127.0.0.1:{port}"), SESSION)
        .await
        .expect_err("nothing listens");
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("cannot reach ZooKeeper at 127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}
