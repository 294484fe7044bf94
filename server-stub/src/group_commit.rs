//! Group commit: requests that arrive while a commit is under way wait and
//! are stored together in the next one, so a burst of uploads costs a few
//! transactions rather than one each, and the request threads are free to
//! decode and check the next uploads meanwhile.
//!
//! No thread of its own: the first request to find no commit under way
//! leads. A leader commits one batch (in arrival order, which is the order
//! the caller's `commit` sees and stores), answers each request of it, and
//! hands the lead to the oldest waiting request, so no request waits behind
//! more than one batch besides its own.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Mutex, MutexGuard};

enum Message<R> {
    /// This request's outcome.
    Done(R),
    /// Commit the waiting batch (this request's item is in it).
    Lead,
}

struct State<T, R> {
    waiting: Vec<(T, SyncSender<Message<R>>)>,
    /// A request is committing a batch now.
    leading: bool,
}

pub(crate) struct GroupCommit<T, R> {
    state: Mutex<State<T, R>>,
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                waiting: Vec::new(),
                leading: false,
            }),
        }
    }
}

impl<T, R> GroupCommit<T, R> {
    fn state(&self) -> MutexGuard<'_, State<T, R>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item` and returns its outcome. `commit` gets a batch in
    /// arrival order and returns one outcome per item, in the same order;
    /// `failed` is the outcome of an item whose commit panicked.
    pub(crate) fn submit(
        &self,
        item: T,
        commit: impl Fn(Vec<T>) -> Vec<R>,
        failed: impl Fn() -> R,
    ) -> R {
        let (tx, rx) = sync_channel(2);
        let lead = {
            let mut state = self.state();
            state.waiting.push((item, tx));
            !std::mem::replace(&mut state.leading, true)
        };
        if lead {
            self.commit_one_batch(&commit);
        }
        loop {
            match rx.recv() {
                Ok(Message::Done(outcome)) => return outcome,
                Ok(Message::Lead) => self.commit_one_batch(&commit),
                // The leader's commit panicked with this item in its batch.
                Err(_) => return failed(),
            }
        }
    }

    /// Commits what is waiting, answers it, passes the lead on.
    fn commit_one_batch(&self, commit: &impl Fn(Vec<T>) -> Vec<R>) {
        // Should `commit` panic, the guard still passes the lead on; the
        // batch's senders are dropped, so its requests see `failed`.
        let _pass_on = PassLead(self);
        let batch = std::mem::take(&mut self.state().waiting);
        let (items, senders): (Vec<T>, Vec<_>) = batch.into_iter().unzip();
        let outcomes = commit(items);
        debug_assert_eq!(outcomes.len(), senders.len());
        for (tx, outcome) in senders.into_iter().zip(outcomes) {
            // The request is blocked on its receiver: it cannot be gone.
            let _ = tx.send(Message::Done(outcome));
        }
    }
}

/// On drop, the lead goes to the oldest waiting request, or is released.
struct PassLead<'a, T, R>(&'a GroupCommit<T, R>);

impl<T, R> Drop for PassLead<'_, T, R> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        match state.waiting.first() {
            Some((_, next)) => {
                // Room for two messages: Lead now, Done later.
                let _ = next.send(Message::Lead);
            }
            None => state.leading = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[test]
    fn each_request_gets_its_own_outcome_and_bursts_share_commits() {
        let group = Arc::new(GroupCommit::<u32, u32>::default());
        let commits = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..16u32)
            .map(|i| {
                let (group, commits, order) = (group.clone(), commits.clone(), order.clone());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for k in 0..50u32 {
                        let item = i * 1000 + k;
                        let got = group.submit(
                            item,
                            |batch| {
                                commits.fetch_add(1, Ordering::SeqCst);
                                // A slow store, so a burst piles up behind it.
                                std::thread::sleep(Duration::from_micros(200));
                                order.lock().unwrap().extend(batch.iter().copied());
                                batch.iter().map(|v| v * 2).collect()
                            },
                            || u32::MAX,
                        );
                        assert_eq!(got, item * 2);
                        mine.push(item);
                    }
                    mine
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let order = order.lock().unwrap();
        assert_eq!(order.len(), 16 * 50, "every item committed once");
        // Each thread's items were committed in the order it sent them.
        for i in 0..16u32 {
            let of: Vec<_> = order.iter().filter(|v| *v / 1000 == i).collect();
            assert!(of.windows(2).all(|w| w[0] < w[1]));
        }
        let commits = commits.load(Ordering::SeqCst);
        assert!(
            commits < 16 * 50,
            "{commits} commits for 800 items: none shared"
        );
    }

    #[test]
    fn a_panicking_commit_fails_its_batch_and_the_next_request_still_commits() {
        let group = GroupCommit::<u32, Result<u32, ()>>::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.submit(1, |_| panic!("storage bug"), || Err(()))
        }));
        assert!(caught.is_err());
        let got = group.submit(2, |batch| batch.into_iter().map(Ok).collect(), || Err(()));
        assert_eq!(got, Ok(2), "the lead was released");
    }
}
