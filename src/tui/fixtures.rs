//! Snapshots and a test terminal for the console's unit tests.

use crate::coord::ControllerInfo;
use crate::lab::snapshot::{BrokerSnapshot, ReplicaSnapshot, Role, SessionStatus};
use crate::lab::{BrokerState, BrokerView, LabInfo, LabSnapshot, PartitionView};
use crate::tui::app::App;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use std::sync::Arc;

pub fn replica(p: u32, role: Role, epoch: u32, leo: u64) -> ReplicaSnapshot {
    ReplicaSnapshot {
        partition: p,
        role,
        leader_epoch: epoch,
        last_epoch: Some(epoch),
        epochs: vec![(epoch, 0)],
        log_end_offset: leo,
        high_watermark: leo,
        log_start_offset: 0,
        isr: Vec::new(),
        follower_leos: Vec::new(),
        fenced: false,
        lease_held: true,
    }
}

pub fn broker(id: u32, replicas: Vec<ReplicaSnapshot>) -> BrokerView {
    BrokerView {
        id,
        state: BrokerState::Up,
        registered: true,
        faults: Vec::new(),
        resp_port: None,
        snapshot: Some(BrokerSnapshot {
            id,
            kv_addr: ([127, 0, 0, 1], 7000 + id as u16).into(),
            peer_addr: ([127, 0, 0, 1], 7100 + id as u16).into(),
            session: SessionStatus::Connected,
            controller_epoch: (id == 1).then_some(1),
            replicas,
        }),
    }
}

/// Three brokers, one partition led by broker 1 in epoch 0, everyone in sync.
pub fn healthy() -> LabSnapshot {
    let follower = || replica(0, Role::Follower { leader: 1 }, 0, 10);
    LabSnapshot {
        info: Arc::new(LabInfo {
            spec: crate::coord::ClusterSpec {
                brokers: 3,
                partitions: 1,
                replication_factor: 3,
                min_insync_replicas: 2,
                unclean_leader_election: false,
            },
            zk: "127.0.0.1:2181/simplekv".into(),
            data_dir: "/tmp/lab".into(),
            log_file: "/tmp/lab/lab.log".into(),
            ..LabInfo::default()
        }),
        brokers: vec![
            broker(1, vec![replica(0, Role::Leader, 0, 10)]),
            broker(2, vec![follower()]),
            broker(3, vec![follower()]),
        ],
        partitions: vec![PartitionView {
            partition: 0,
            leader: Some(1),
            leader_epoch: 0,
            isr: vec![1, 2, 3],
            eligible: Vec::new(),
            replicas: vec![1, 2, 3],
        }],
        controller: Some(ControllerInfo {
            broker_id: 1,
            controller_epoch: 1,
        }),
        ..LabSnapshot::default()
    }
}

pub fn render(app: &App, snap: &LabSnapshot, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    t.draw(|f| crate::tui::draw::draw(f, app, snap))
        .expect("draw");
    t.backend().buffer().clone()
}

pub fn text(buf: &ratatui::buffer::Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

/// The row containing `needle` and the column where it starts.
pub fn find(buf: &ratatui::buffer::Buffer, needle: &str) -> Option<(u16, u16)> {
    text(buf).iter().enumerate().find_map(|(y, line)| {
        line.find(needle)
            .map(|byte| (line[..byte].chars().count() as u16, y as u16))
    })
}
