//! The queues under the client's batches (writes in [`super::batch`], reads in
//! [`super::read_batch`]): items for one target gather while that target's earlier batches are in
//! flight, and go out together as soon as a slot frees. A lone item waits for nothing.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// A queue nobody has used for this long ends its task (the next item starts a new one).
const IDLE: Duration = Duration::from_secs(30);

/// How big batches get and how many are in flight at once.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Batches in flight at once.
    pub in_flight: usize,
    /// Most items in one batch.
    pub items: usize,
    /// Most bytes in one batch (a single larger item still goes, alone).
    pub bytes: usize,
}

/// Queues by key, each drained by its own task.
pub(super) struct Queues<K, T> {
    map: Mutex<HashMap<K, mpsc::UnboundedSender<T>>>,
}

impl<K: Hash + Eq + Copy, T> Queues<K, T> {
    pub(super) fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Queues `item` under `key`; `start` starts the task that drains a new queue (on first use,
    /// and after a queue's task ended on idling). Gives the item back if no queue took it.
    pub(super) fn push(
        &self,
        key: K,
        item: T,
        start: impl Fn(mpsc::UnboundedReceiver<T>),
    ) -> Result<(), T> {
        let mut map = self.map.lock();
        let mut item = item;
        for _ in 0..2 {
            let queue = map.entry(key).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                start(rx);
                tx
            });
            match queue.send(item) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(back)) => {
                    // Its task ended on idling: start a new one.
                    map.remove(&key);
                    item = back;
                }
            }
        }
        Err(item)
    }
}

/// A queue's task: takes what is queued whenever one of `limits.in_flight` slots is free and
/// hands it to `send` as one batch (each batch runs as its own task). Waiting for a slot is
/// where items gather.
pub(super) async fn drive<T, F, Fut>(
    mut rx: mpsc::UnboundedReceiver<T>,
    limits: Limits,
    bytes_of: fn(&T) -> usize,
    send: F,
) where
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.in_flight));
    let mut carry: Option<T> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match tokio::time::timeout(IDLE, rx.recv()).await {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(_) => {
                    // Refuse new items, then send what is still queued and end.
                    rx.close();
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut bytes = bytes_of(&first);
        let mut batch = vec![first];
        while batch.len() < limits.items {
            match rx.try_recv() {
                Ok(p) if bytes + bytes_of(&p) > limits.bytes => {
                    carry = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += bytes_of(&p);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let sent = send(batch);
        tokio::spawn(async move {
            sent.await;
            drop(slot);
        });
    }
}
