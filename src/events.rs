//! Events a teacher wants to see: elections, ISR changes, truncations, sessions, kills. Every layer
//! that notices one sends it here; the lab's console shows them and `tracing` logs them.

use std::sync::Arc;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A broker won the controller election.
    ControllerElected,
    /// A partition got a new leader (or went offline).
    LeaderElected,
    /// A replica became leader or follower.
    RoleChange,
    /// A leader removed a lagging follower from the ISR.
    IsrShrink,
    /// A leader added a caught-up follower back.
    IsrExpand,
    /// A follower cut its log to match its leader.
    Truncation,
    /// ZooKeeper session changes (connected, disconnected, expired).
    Session,
    /// A broker was crashed by the lab.
    Kill,
    /// A broker was started again on its data.
    Restore,
    /// The lab injected a fault (a cut link, a pause, a power loss) or healed one.
    Fault,
    /// ZooKeeper itself: a server crashed or restarted, its ensemble elected a leader, lost or
    /// regained its quorum.
    Zk,
    /// Anything else worth a line.
    Info,
    /// Something went wrong.
    Warning,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Wall-clock time, Unix ms.
    pub at_ms: u64,
    /// The broker it concerns.
    pub broker: Option<u32>,
    /// The partition it concerns.
    pub partition: Option<u32>,
    /// Its kind.
    pub kind: EventKind,
    /// A sentence for people.
    pub message: String,
}

/// Where events go: logged through `tracing`, and delivered to a subscriber if one is attached.
#[derive(Clone, Default)]
pub struct EventSink {
    deliver: Option<Arc<dyn Fn(Event) + Send + Sync>>,
    broker: Option<u32>,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("broker", &self.broker)
            .finish()
    }
}

impl EventSink {
    /// A sink that only logs.
    pub fn log_only() -> Self {
        Self::default()
    }

    /// A sink that logs and hands every event to `deliver`.
    pub fn new(deliver: impl Fn(Event) + Send + Sync + 'static) -> Self {
        Self {
            deliver: Some(Arc::new(deliver)),
            broker: None,
        }
    }

    /// The same sink, stamping events with `broker`.
    pub fn for_broker(&self, broker: u32) -> Self {
        Self {
            deliver: self.deliver.clone(),
            broker: Some(broker),
        }
    }

    /// Records an event.
    pub fn emit(&self, kind: EventKind, partition: Option<u32>, message: impl Into<String>) {
        let message = message.into();
        match kind {
            EventKind::Warning => {
                tracing::warn!(broker = ?self.broker, partition = ?partition, "{message}")
            }
            _ => {
                tracing::info!(broker = ?self.broker, partition = ?partition, kind = ?kind, "{message}")
            }
        }
        if let Some(deliver) = &self.deliver {
            deliver(Event {
                at_ms: crate::storage::now_ms(),
                broker: self.broker,
                partition,
                kind,
                message,
            });
        }
    }
}
