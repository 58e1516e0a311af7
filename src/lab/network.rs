//! The lab's network: every connection between the lab's parties — clients → broker, broker →
//! broker, broker → ZooKeeper — runs through a [`LinkProxy`] the lab owns, one per directed
//! (from, to) pair, so any link can be cut, held or slowed (DESIGN §13). Brokers and clients find
//! each other through addresses advertised in ZooKeeper; the [`Dialer`]s made here send each
//! advertised address through the proxy of its link instead.
//!
//! Which links are cut or slow is decided by pure functions of the active faults
//! ([`link_state`]), so `partition`, `isolate`, `slow` and `heal` compose predictably.

use super::link::{LinkProxy, LinkState};
use crate::rpc::Dialer;
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A party of the lab's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    /// The lab's clients (shell, load, checks).
    Clients,
    /// A broker.
    Broker(u32),
    /// ZooKeeper: every server of the ensemble (one link per server, cut and slowed together).
    Zk,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Clients => f.write_str("clients"),
            Self::Broker(b) => write!(f, "{b}"),
            Self::Zk => f.write_str("zk"),
        }
    }
}

/// The link faults in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Cut pairs, each as (smaller, larger): nothing crosses in either direction.
    pub cuts: BTreeSet<(Node, Node)>,
    /// Slowed parties: every link touching one gets its delay and jitter.
    pub slow: BTreeMap<Node, (Duration, Duration)>,
}

fn pair(a: Node, b: Node) -> (Node, Node) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Faults {
    /// Cuts every link between members of different groups.
    pub fn partition(&mut self, groups: &[Vec<Node>]) {
        for (i, g) in groups.iter().enumerate() {
            for h in &groups[i + 1..] {
                for &a in g {
                    for &b in h {
                        if a != b {
                            self.cuts.insert(pair(a, b));
                        }
                    }
                }
            }
        }
    }

    /// Cuts broker `b`'s links to ZooKeeper, to the other brokers (of `brokers`) and from clients,
    /// as asked.
    pub fn isolate(&mut self, b: u32, brokers: &[u32], zk: bool, peers: bool, clients: bool) {
        let me = Node::Broker(b);
        if zk {
            self.cuts.insert(pair(me, Node::Zk));
        }
        if clients {
            self.cuts.insert(pair(Node::Clients, me));
        }
        if peers {
            for &o in brokers.iter().filter(|&&o| o != b) {
                self.cuts.insert(pair(me, Node::Broker(o)));
            }
        }
    }

    /// Whether anything is in force.
    pub fn is_empty(&self) -> bool {
        self.cuts.is_empty() && self.slow.is_empty()
    }

    /// One line per fault, for events and the console: `cut 1↔2`, `slow 3 +100ms ±20ms`.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .cuts
            .iter()
            .map(|(a, b)| format!("cut {a}↔{b}"))
            .collect();
        for (n, (d, j)) in &self.slow {
            let jitter = if j.is_zero() {
                String::new()
            } else {
                format!(" ±{}ms", j.as_millis())
            };
            out.push(format!("slow {n} +{}ms{jitter}", d.as_millis()));
        }
        out
    }

    /// The parties `n` cannot reach now.
    pub fn cut_from(&self, n: Node) -> Vec<Node> {
        self.cuts
            .iter()
            .filter_map(|&(a, b)| {
                if a == n {
                    Some(b)
                } else if b == n {
                    Some(a)
                } else {
                    None
                }
            })
            .collect()
    }
}

/// The state of the directed link `from → to` under `faults`.
pub fn link_state(faults: &Faults, from: Node, to: Node) -> LinkState {
    let slow = |n: Node| faults.slow.get(&n).copied().unwrap_or_default();
    let (d1, j1) = slow(from);
    let (d2, j2) = slow(to);
    LinkState {
        cut: faults.cuts.contains(&pair(from, to)),
        delay: d1 + d2,
        jitter: j1 + j2,
    }
}

/// Where each broker listens (its last addresses, and whether it is up).
#[derive(Default)]
struct Addresses {
    /// Guarded by a std mutex, never held across an `.await`.
    by_broker: Mutex<HashMap<u32, Listening>>,
}

#[derive(Clone, Copy)]
struct Listening {
    kv: SocketAddr,
    peer: SocketAddr,
    up: bool,
}

impl Addresses {
    fn kv(&self, b: u32) -> Option<SocketAddr> {
        self.lock().get(&b).filter(|a| a.up).map(|a| a.kv)
    }

    fn peer(&self, b: u32) -> Option<SocketAddr> {
        self.lock().get(&b).filter(|a| a.up).map(|a| a.peer)
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<u32, Listening>> {
        self.by_broker.lock()
    }

    /// The broker advertising (or last advertising) `addr` as its kv (`kv`) or peer address,
    /// and whether it is up.
    fn owner(&self, addr: &str, kv: bool) -> Option<(u32, bool)> {
        let addr: SocketAddr = addr.parse().ok()?;
        self.lock()
            .iter()
            .find(|(_, a)| if kv { a.kv == addr } else { a.peer == addr })
            .map(|(b, a)| (*b, a.up))
    }
}

/// What a dialer needs to pick between a link's proxy and the advertised address itself.
struct Routing {
    /// Proxy address per link (fixed at start).
    proxies: HashMap<(Node, Node), SocketAddr>,
    addresses: Arc<Addresses>,
    /// The faults in force (guarded by a std mutex, never held across an `.await`).
    faults: Mutex<Faults>,
}

impl Routing {
    fn lock_faults(&self) -> parking_lot::MutexGuard<'_, Faults> {
        self.faults.lock()
    }

    /// Where `from` dials `adv`: the link's proxy while its target is up, or while the link is
    /// cut (a dead broker behind a partition is a blackhole, not a refusal); else `adv` itself,
    /// so a connection to a dead broker is refused at once, as on a real network.
    fn dial(&self, from: Node, adv: &str, kv: bool) -> String {
        let Some((to, up)) = self.addresses.owner(adv, kv) else {
            return adv.to_string();
        };
        let to = Node::Broker(to);
        match self.proxies.get(&(from, to)) {
            Some(proxy) if up || self.lock_faults().cuts.contains(&pair(from, to)) => {
                proxy.to_string()
            }
            _ => adv.to_string(),
        }
    }
}

/// Every link of the lab and the faults in force.
pub struct Network {
    brokers: Vec<u32>,
    /// ZooKeeper's own addresses, one per server (dialed directly when links are not proxied).
    zk: Vec<SocketAddr>,
    /// Whether links run through proxies (the bench measures the brokers without them).
    proxied: bool,
    /// The proxies of each link: one, or one per ZooKeeper server for a broker's ZooKeeper link.
    links: BTreeMap<(Node, Node), Vec<LinkProxy>>,
    /// Each broker's proxies to ZooKeeper, in server order.
    zk_proxies: HashMap<u32, Vec<SocketAddr>>,
    /// Shared with the dialers.
    routing: Arc<Routing>,
    /// Links of a dead broker that were cut when it died: their connections close only when
    /// the cut heals (a FIN cannot cross a partition either). Guarded by a std mutex, never
    /// held across an `.await`.
    pending_resets: Mutex<BTreeSet<(Node, Node)>>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("links", &self.links.len())
            .finish()
    }
}

impl Network {
    /// Starts a proxy for every link between `brokers`, the clients and the ZooKeeper servers at
    /// `zk` (none when `proxied` is false: every party then dials every other directly, and no
    /// link fault can be injected).
    pub async fn start(brokers: &[u32], zk: &[SocketAddr], proxied: bool) -> std::io::Result<Self> {
        let addresses = Arc::new(Addresses::default());
        let mut links = BTreeMap::new();
        for &b in brokers.iter().filter(|_| proxied) {
            let mut wanted = vec![
                (Node::Broker(b), Node::Zk),
                (Node::Clients, Node::Broker(b)),
            ];
            wanted.extend(
                brokers
                    .iter()
                    .filter(|&&o| o != b)
                    .map(|&o| (Node::Broker(b), Node::Broker(o))),
            );
            for (from, to) in wanted {
                let a = Arc::clone(&addresses);
                let proxies = match to {
                    Node::Zk => {
                        let mut proxies = Vec::new();
                        for (i, &server) in zk.iter().enumerate() {
                            let name = format!("{from}→zk:{}", i + 1);
                            proxies.push(
                                LinkProxy::start(name, Arc::new(move || Some(server))).await?,
                            );
                        }
                        proxies
                    }
                    Node::Broker(t) => {
                        let upstream: Arc<dyn Fn() -> Option<SocketAddr> + Send + Sync> =
                            if from == Node::Clients {
                                Arc::new(move || a.kv(t))
                            } else {
                                Arc::new(move || a.peer(t))
                            };
                        vec![LinkProxy::start(format!("{from}→{to}"), upstream).await?]
                    }
                    Node::Clients => continue,
                };
                links.insert((from, to), proxies);
            }
        }
        let zk_proxies = links
            .iter()
            .filter_map(|(k, p)| match k {
                (Node::Broker(b), Node::Zk) => Some((*b, p.iter().map(LinkProxy::addr).collect())),
                _ => None,
            })
            .collect();
        let routing = Arc::new(Routing {
            proxies: links
                .iter()
                .filter(|(k, _)| k.1 != Node::Zk)
                .filter_map(|(k, p)| Some((*k, p.first()?.addr())))
                .collect(),
            addresses,
            faults: Mutex::new(Faults::default()),
        });
        Ok(Self {
            brokers: brokers.to_vec(),
            zk: zk.to_vec(),
            proxied,
            links,
            zk_proxies,
            routing,
            pending_resets: Mutex::new(BTreeSet::new()),
        })
    }

    /// Where broker `b` reaches each ZooKeeper server, as a connect string's servers
    /// (`host:port,host:port`).
    pub fn zk_servers(&self, b: u32) -> Option<String> {
        let addrs = if self.proxied {
            self.zk_proxies.get(&b)?
        } else {
            &self.zk
        };
        Some(
            addrs
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
    }

    /// How broker `from` dials the peer addresses other brokers advertise.
    pub fn broker_dialer(&self, from: u32) -> Dialer {
        if !self.proxied {
            return Dialer::default();
        }
        let routing = Arc::clone(&self.routing);
        Dialer::new(move |adv| routing.dial(Node::Broker(from), adv, false))
    }

    /// How the lab's clients dial the kv addresses brokers advertise.
    pub fn client_dialer(&self) -> Dialer {
        if !self.proxied {
            return Dialer::default();
        }
        let routing = Arc::clone(&self.routing);
        Dialer::new(move |adv| routing.dial(Node::Clients, adv, true))
    }

    /// Broker `b` listens on `kv` and `peer` now.
    pub fn broker_up(&self, b: u32, kv: SocketAddr, peer: SocketAddr) {
        self.routing
            .addresses
            .lock()
            .insert(b, Listening { kv, peer, up: true });
    }

    /// Broker `b` died: every connection it had closes (as its process's sockets would) — at
    /// once where its link is whole, when the cut heals where it is not — and new connections
    /// to it are refused (or, across a cut, held).
    pub fn broker_down(&self, b: u32) {
        if let Some(a) = self.routing.addresses.lock().get_mut(&b) {
            a.up = false;
        }
        let me = Node::Broker(b);
        let faults = self.routing.lock_faults();
        let mut pending = self.pending_resets.lock();
        for ((from, to), proxies) in &self.links {
            if *from == me || *to == me {
                if link_state(&faults, *from, *to).cut {
                    pending.insert((*from, *to));
                } else {
                    proxies.iter().for_each(LinkProxy::reset);
                }
            }
        }
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.routing.lock_faults().clone()
    }

    /// Changes the faults and applies them to every link.
    pub fn change(&self, f: impl FnOnce(&mut Faults, &[u32])) -> Result<Faults, String> {
        if !self.proxied {
            return Err("this cluster's links are not proxied (a bench cluster): no link fault can act on them".into());
        }
        let mut faults = self.routing.lock_faults();
        f(&mut faults, &self.brokers);
        let mut pending = self.pending_resets.lock();
        for ((from, to), proxies) in &self.links {
            let state = link_state(&faults, *from, *to);
            let reset = !state.cut && pending.remove(&(*from, *to));
            for proxy in proxies {
                if reset {
                    proxy.reset();
                }
                proxy.set(state);
            }
        }
        Ok(faults.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_cuts_across_groups_both_ways_and_nothing_else() {
        let mut f = Faults::default();
        f.partition(&[
            vec![Node::Broker(1)],
            vec![Node::Broker(2), Node::Broker(3), Node::Zk],
        ]);
        for (a, b) in [(1, 2), (2, 1), (1, 3)] {
            assert!(
                link_state(&f, Node::Broker(a), Node::Broker(b)).cut,
                "{a}-{b}"
            );
        }
        assert!(link_state(&f, Node::Broker(1), Node::Zk).cut);
        assert!(!link_state(&f, Node::Broker(2), Node::Broker(3)).cut);
        assert!(!link_state(&f, Node::Broker(2), Node::Zk).cut);
        assert!(
            !link_state(&f, Node::Clients, Node::Broker(1)).cut,
            "unnamed: connected"
        );
        assert_eq!(f.cut_from(Node::Broker(1)).len(), 3);
    }

    #[tokio::test]
    async fn without_proxies_everyone_dials_directly_and_link_faults_are_refused() {
        let zk: SocketAddr = ([127, 0, 0, 1], 2181).into();
        let zk2: SocketAddr = ([127, 0, 0, 1], 2182).into();
        let net = Network::start(&[1, 2], &[zk, zk2], false)
            .await
            .expect("network");
        assert_eq!(
            net.zk_servers(1).as_deref(),
            Some("127.0.0.1:2181,127.0.0.1:2182")
        );
        assert_eq!(net.broker_dialer(1).dial("127.0.0.1:9"), "127.0.0.1:9");
        assert!(net.change(|f, _| f.cuts.clear()).is_err());
        let proxied = Network::start(&[1, 2], &[zk, zk2], true)
            .await
            .expect("network");
        let via = proxied.zk_servers(1).expect("a ZooKeeper link");
        assert_eq!(via.split(',').count(), 2, "one proxy per ZooKeeper server");
        assert!(!via.contains(":2181") && !via.contains(":2182"), "{via}");
        proxied.broker_up(
            2,
            ([127, 0, 0, 1], 7002).into(),
            ([127, 0, 0, 1], 7102).into(),
        );
        let via = proxied.broker_dialer(1).dial("127.0.0.1:7102");
        assert_ne!(
            via, "127.0.0.1:7102",
            "a live peer is dialed through its link's proxy"
        );
        proxied.broker_down(2);
        assert_eq!(
            proxied.broker_dialer(1).dial("127.0.0.1:7102"),
            "127.0.0.1:7102",
            "a dead peer is dialed directly, so the connection is refused"
        );
        proxied
            .change(|f, all| f.isolate(2, all, false, true, false))
            .expect("proxied");
        assert_eq!(
            proxied.broker_dialer(1).dial("127.0.0.1:7102"),
            via,
            "behind a cut a dead peer is a blackhole, not a refusal"
        );
    }

    #[test]
    fn isolation_picks_sides_and_slowness_adds_up_along_a_link() {
        let mut f = Faults::default();
        f.isolate(2, &[1, 2, 3], true, false, false);
        assert!(link_state(&f, Node::Broker(2), Node::Zk).cut);
        assert!(!link_state(&f, Node::Broker(2), Node::Broker(1)).cut);
        f.isolate(2, &[1, 2, 3], false, true, true);
        assert!(link_state(&f, Node::Broker(1), Node::Broker(2)).cut);
        assert!(link_state(&f, Node::Clients, Node::Broker(2)).cut);
        f.slow.insert(
            Node::Broker(1),
            (Duration::from_millis(100), Duration::ZERO),
        );
        f.slow.insert(
            Node::Broker(3),
            (Duration::from_millis(20), Duration::from_millis(5)),
        );
        let s = link_state(&f, Node::Broker(1), Node::Broker(3));
        assert_eq!(
            (s.delay, s.jitter),
            (Duration::from_millis(120), Duration::from_millis(5))
        );
        assert_eq!(
            link_state(&f, Node::Clients, Node::Broker(3)).delay,
            Duration::from_millis(20)
        );
        assert_eq!(
            f.describe(),
            vec![
                "cut clients↔2",
                "cut 1↔2",
                "cut 2↔3",
                "cut 2↔zk",
                "slow 1 +100ms",
                "slow 3 +20ms ±5ms"
            ]
        );
    }
}
