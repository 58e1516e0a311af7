//! The `status` command's text: brokers, partitions as ZooKeeper says, and replicas as each broker
//! believes — the same facts the console draws.

use super::snapshot::{BrokerState, LabSnapshot};
use crate::replica::Role;
use std::fmt::Write as _;

fn ids(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Short state name of a broker.
pub fn broker_state(state: BrokerState) -> &'static str {
    match state {
        BrokerState::Up => "up",
        BrokerState::Paused => "PAUSED (frozen)",
        BrokerState::DownSessionLingering => "down (session lingering)",
        BrokerState::Down => "down",
    }
}

/// Renders the status tables.
pub fn render(s: &LabSnapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "brokers");
    let _ = writeln!(
        out,
        "  {:<3} {:<25} {:<24} {:<10}",
        "id", "state", "session", "controller"
    );
    for b in &s.brokers {
        let ctrl = match (
            b.snapshot.as_ref().and_then(|x| x.controller_epoch),
            s.controller,
        ) {
            (Some(e), _) => format!("yes (epoch {e})"),
            (None, Some(c)) if c.broker_id == b.id => {
                format!("per ZooKeeper (epoch {})", c.controller_epoch)
            }
            _ => String::new(),
        };
        let session = b.session().map_or("-", |x| x.name());
        let _ = writeln!(
            out,
            "  {:<3} {:<25} {:<24} {ctrl}",
            b.id,
            broker_state(b.state),
            session
        );
    }
    let _ = writeln!(
        out,
        "{}",
        if s.info.peer_tls {
            "peers: mutual TLS (each broker proves it is broker-N)"
        } else {
            "peers: plaintext on loopback (one process; `node` deployments use mutual TLS, see README)"
        }
    );
    if let Some(q) = s.zk_quorum() {
        let modes: Vec<String> = s
            .zk_servers
            .iter()
            .enumerate()
            .map(|(i, m)| format!("zk:{} {}", i + 1, m.name()))
            .collect();
        let quorum = if q.stands {
            format!("quorum stands ({} of {} serve)", q.serving, q.servers)
        } else {
            format!(
                "NO QUORUM ({} of {} serve, {} needed): elections and ISR changes wait",
                q.serving, q.servers, q.needed
            )
        };
        let _ = writeln!(out, "zookeeper: {}; {quorum}", modes.join(", "));
    }
    let _ = writeln!(out, "partitions (ZooKeeper)");
    let _ = writeln!(
        out,
        "  {:<3} {:<8} {:<6} {:<10} {:<10} eligible",
        "p", "leader", "epoch", "ISR", "replicas"
    );
    for p in &s.partitions {
        let leader = p.leader.map_or("offline".to_string(), |l| l.to_string());
        let _ = writeln!(
            out,
            "  {:<3} {:<8} {:<6} {:<10} {:<10} {}",
            p.partition,
            leader,
            p.leader_epoch,
            ids(&p.isr),
            ids(&p.replicas),
            ids(&p.eligible)
        );
    }
    let _ = writeln!(out, "replicas (as each broker believes)");
    let _ = writeln!(
        out,
        "  {:<3} {:<7} {:<9} {:<6} {:<8} {:<8} {:<6} {:<4} note",
        "p", "broker", "role", "epoch", "LEO", "HW", "lag", "ISR"
    );
    for p in &s.partitions {
        let leader_leo = s.leader_leo(p.partition);
        for b in &s.brokers {
            let Some(r) = b.replica(p.partition) else {
                if p.replicas.contains(&b.id) {
                    let _ = writeln!(
                        out,
                        "  {:<3} {:<7} {}",
                        p.partition,
                        b.id,
                        broker_state(b.state)
                    );
                }
                continue;
            };
            let role = match r.role {
                Role::Leader if !r.lease_held => "leader, no lease".to_string(),
                Role::Leader => "leader".to_string(),
                Role::Follower { leader } => format!("follow {leader}"),
                Role::Offline if r.fenced => "fenced".into(),
                Role::Offline => "offline".into(),
            };
            let lag = leader_leo.map_or("-".into(), |l| {
                l.saturating_sub(r.log_end_offset).to_string()
            });
            let in_isr = if p.isr.contains(&b.id) { "yes" } else { "no" };
            let note = s.disagreement(b.id, p.partition).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<3} {:<7} {:<9} {:<6} {:<8} {:<8} {:<6} {:<4} {note}",
                p.partition,
                b.id,
                role,
                r.leader_epoch,
                r.log_end_offset,
                r.high_watermark,
                lag,
                in_isr
            );
        }
    }
    out.trim_end().to_string()
}

/// The commit-path section of `status`, to follow [`render`]'s text: for each partition leader
/// that has committed an acks=all write, where its writes spent their time
/// (`replica::timing`), or nothing when none has.
pub fn render_commit_paths(leaders: &[(u32, u32, crate::replica::CommitPath)]) -> String {
    let mut out = String::new();
    for (p, broker, path) in leaders {
        if let Some(line) = path.describe() {
            if out.is_empty() {
                out.push_str("\ncommit path on each leader (since its broker started)");
            }
            let _ = write!(out, "\n  p{p} on broker {broker}: {line}");
        }
    }
    out
}
