//! A test-only TCP proxy that cuts connections at random moments. It sits
//! between clients and the server and copies bytes both ways; while chaos
//! is on it cuts (a) one live connection at random every 20–300 ms, and
//! (b) each connection once it has carried a random budget of 500–12,000
//! bytes towards the client, usually in the middle of a frame. The budgets
//! tie the cuts to progress, so even a fast run sees many. (Not towards the
//! server: a reconnecting client re-sends its whole outbox at once, so a
//! budget there would cut every connection before any answer came back.)
//! Both come from a seeded generator, so a failure names its seed.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Longer than any silence on a live chat connection (a PING every 20 s),
/// so it fires only if something is stuck.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(120);

/// SplitMix64: small, seedable, good enough to pick moments and victims.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// One proxied connection: both sockets, and whether it has ended.
struct Pair {
    client: TcpStream,
    server: TcpStream,
    closed: Arc<AtomicBool>,
}

/// What the proxy's threads share.
#[derive(Default)]
struct Shared {
    pairs: Mutex<Vec<Pair>>,
    chaos: AtomicBool,
    stop: AtomicBool,
    cuts: AtomicUsize,
}

impl Shared {
    fn pairs(&self) -> MutexGuard<'_, Vec<Pair>> {
        // A panicking test thread must not turn the proxy's drop into an abort.
        self.pairs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks a connection ended; counts it as a cut if it was live.
    fn count_cut(&self, closed: &AtomicBool) {
        if !closed.swap(true, Ordering::SeqCst) {
            self.cuts.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The proxy; stops and cuts everything when dropped.
pub struct ChaosProxy {
    /// Where clients connect, on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// Copies one direction until either side ends or, under chaos, until
/// `budget` bytes have passed; then shuts both sockets.
fn pump(mut from: TcpStream, mut to: TcpStream, budget: usize, closed: Arc<AtomicBool>, shared: Arc<Shared>) {
    let mut buf = [0u8; 16 * 1024];
    let mut left = budget;
    while let Ok(n @ 1..) = from.read(&mut buf) {
        if shared.chaos.load(Ordering::SeqCst) && n >= left {
            let _ = to.write_all(&buf[..left]);
            shared.count_cut(&closed);
            break;
        }
        left = left.saturating_sub(n);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    closed.store(true, Ordering::SeqCst);
}

fn accept_loop(listener: TcpListener, upstream: u16, mut rng: Rng, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
            continue;
        };
        for socket in [&client, &server] {
            let _ = socket.set_read_timeout(Some(SOCKET_TIMEOUT));
            let _ = socket.set_nodelay(true);
        }
        let clones = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
        let (Ok(client_in), Ok(server_out), Ok(client_out), Ok(server_in)) = clones else { continue };
        let closed = Arc::new(AtomicBool::new(false));
        let towards_client = rng.range(500, 12_000) as usize;
        for (from, to, budget) in [(client_in, server_out, usize::MAX), (server_in, client_out, towards_client)] {
            let (closed, shared) = (closed.clone(), shared.clone());
            thread::spawn(move || pump(from, to, budget, closed, shared));
        }
        let mut pairs = shared.pairs();
        pairs.retain(|pair| !pair.closed.load(Ordering::SeqCst));
        pairs.push(Pair { client, server, closed });
    }
}

fn cut_loop(mut rng: Rng, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(rng.range(20, 300)));
        if !shared.chaos.load(Ordering::SeqCst) {
            continue;
        }
        let pairs = shared.pairs();
        let live: Vec<&Pair> = pairs.iter().filter(|pair| !pair.closed.load(Ordering::SeqCst)).collect();
        if !live.is_empty() {
            let pair = live[rng.range(0, live.len() as u64) as usize];
            let _ = pair.client.shutdown(Shutdown::Both);
            let _ = pair.server.shutdown(Shutdown::Both);
            shared.count_cut(&pair.closed);
        }
    }
}

impl ChaosProxy {
    /// Starts a proxy to `127.0.0.1:upstream`, chaos off.
    pub fn start(upstream: u16, seed: u64) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let accept = {
            let (rng, shared) = (Rng(seed ^ 0x5EED), shared.clone());
            thread::spawn(move || accept_loop(listener, upstream, rng, shared))
        };
        let cutter = {
            let (rng, shared) = (Rng(seed), shared.clone());
            thread::spawn(move || cut_loop(rng, shared))
        };
        ChaosProxy { port, shared, threads: vec![accept, cutter] }
    }

    /// Starts or stops cutting connections.
    pub fn set_chaos(&self, on: bool) {
        self.shared.chaos.store(on, Ordering::SeqCst);
    }

    /// How many live connections have been cut so far.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the stop flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for pair in self.shared.pairs().iter() {
            let _ = pair.client.shutdown(Shutdown::Both);
            let _ = pair.server.shutdown(Shutdown::Both);
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
