//! A fixed pool of worker threads and the queue that feeds them: the Rust
//! Book's `ThreadPool` (chapter 21), with one difference that matters for
//! speed. A burst of work is queued with one lock and one wake-up per
//! sleeping thread ([`Pool::schedule_all`]), because publishing one message
//! makes work for every recipient at once, and a wake-up costs more than
//! the work it hands over.
//!
//! The pool knows nothing of chat: delivery queues connections on it.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

/// Threads that each take the next queued item and run the pool's job on it.
pub struct Pool<T> {
    queue: Mutex<Queue<T>>,
    ready: Condvar,
}

struct Queue<T> {
    items: VecDeque<T>,
    /// Threads asleep on `ready`: only then is a wake-up needed.
    sleeping: usize,
}

impl<T: Send + 'static> Pool<T> {
    /// Starts `threads` threads named `name-0`, `name-1`, ..., each running
    /// `job` on one queued item after another, forever.
    pub fn start(
        name: &str,
        threads: usize,
        stack_size: usize,
        job: impl Fn(T) + Send + Sync + 'static,
    ) -> io::Result<Arc<Pool<T>>> {
        let pool =
            Arc::new(Pool { queue: Mutex::new(Queue { items: VecDeque::new(), sleeping: 0 }), ready: Condvar::new() });
        let job = Arc::new(job);
        for index in 0..threads {
            let (pool, job) = (pool.clone(), job.clone());
            thread::Builder::new().name(format!("{name}-{index}")).stack_size(stack_size).spawn(move || {
                loop {
                    job(pool.next());
                }
            })?;
        }
        Ok(pool)
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // The queue is plain data: a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues every item, then wakes at most one sleeping thread per item,
    /// after unlocking, so that no one wakes up only to wait for our lock.
    pub fn schedule_all(&self, items: impl IntoIterator<Item = T>) {
        let mut queue = self.lock();
        let before = queue.items.len();
        queue.items.extend(items);
        let wake = queue.sleeping.min(queue.items.len() - before);
        drop(queue);
        for _ in 0..wake {
            self.ready.notify_one();
        }
    }

    /// The next item, waiting for one if the queue is empty.
    fn next(&self) -> T {
        let mut queue = self.lock();
        loop {
            if let Some(item) = queue.items.pop_front() {
                return item;
            }
            queue.sleeping += 1;
            queue = self.ready.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.sleeping -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn every_item_is_run_once() {
        let (done, results) = mpsc::channel();
        let done = Mutex::new(done);
        let pool = Pool::start("test", 2, 64 * 1024, move |n: u32| done.lock().unwrap().send(n).unwrap()).unwrap();
        pool.schedule_all(0..100);
        pool.schedule_all([100]);
        let mut got: Vec<u32> = (0..101).map(|_| results.recv_timeout(Duration::from_secs(10)).unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..=100).collect::<Vec<_>>());
        assert!(results.recv_timeout(Duration::from_millis(50)).is_err(), "nothing runs twice");
    }
}
