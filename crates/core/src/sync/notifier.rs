//! Per-user wake-ups for long-polling `/sync`.
//!
//! A waiter subscribes *before* it samples the watermark; a writer wakes after its commit. A
//! write that commits between the sample and the wait therefore still wakes the waiter.

use std::{collections::HashMap, sync::Mutex};

use tokio::sync::watch;

/// Per-user wake-ups. A `watch` channel per user with at least one waiter; a write bumps it.
pub struct Notifier {
    users: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Set at shutdown so long-polls return at once instead of holding the server open.
    closing: watch::Sender<bool>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self {
            users: Mutex::new(HashMap::new()),
            closing: watch::channel(false).0,
        }
    }
}

impl Notifier {
    /// Ends every long-poll (they answer with no changes) and every later one.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    pub fn subscribe(&self, user_id: &str) -> watch::Receiver<u64> {
        let Ok(mut users) = self.users.lock() else {
            // A poisoned map only loses wake-ups; the waiter still times out normally.
            return watch::channel(0).1;
        };
        users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes every waiter, for when changes may have been missed.
    pub fn wake_all(&self) {
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        users.retain(|_, sender| sender.receiver_count() > 0);
        for sender in users.values() {
            sender.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    pub(super) fn subscribe_closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn wake(&self, user_id: &str) {
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        if let Some(sender) = users.get(user_id) {
            if sender.receiver_count() == 0 {
                users.remove(user_id);
            } else {
                sender.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    /// Wakes each of these users' waiters, taking the map's lock once.
    pub fn wake_many(&self, user_ids: &[String]) {
        let Ok(users) = self.users.lock() else {
            return;
        };
        for user_id in user_ids {
            if let Some(sender) = users.get(user_id)
                && sender.receiver_count() > 0
            {
                sender.send_modify(|v| *v = v.wrapping_add(1));
            }
        }
    }

    pub(super) fn release(&self, user_id: &str) {
        if let Ok(mut users) = self.users.lock()
            && users.get(user_id).is_some_and(|s| s.receiver_count() == 0)
        {
            users.remove(user_id);
        }
    }
}
