//! The `floor` scenario: the measured floor under the latency targets.
//! It has the shape of a `latency` run (N receivers with a thread each,
//! one publisher sending a frame every 10 ms), but its "server" speaks no
//! protocol: a second process whose one reader thread hands each frame to
//! as many writer threads as the real server's pool has, which write it to
//! their share of the receivers. What it measures is what the kernel's
//! wake-ups, context switches and socket calls cost on this machine, a
//! latency that no server with those hops can beat here.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, MutexGuard};

use super::*;

/// The hidden first argument that makes the load generator the floor's
/// server: `loadgen --floor-server N`.
pub const FLOOR_SERVER: &str = "--floor-server";

/// A MSG frame of the latency run as its receivers see it: the seal
/// (length, sequence, kind, tag), then id and time (8 + 8), `from` "p0"
/// and an empty `to` (each with a 2-byte length), and the text. 169 bytes,
/// as measured once in the latency run's receivers.
const FRAME: usize = SEAL_OVERHEAD + 8 + 8 + (2 + 2) + 2 + (2 + TEXT_SIZE);
/// The latency run's pace.
const PERIOD: Duration = Duration::from_millis(10);

/// The publisher's frames so far, and whether it has closed, shared by
/// the reader and the writers.
#[derive(Default)]
struct Frames {
    bytes: Mutex<(Vec<u8>, bool)>,
    ready: Condvar,
}

/// The floor's server (`args`: the receiver count): prints its port,
/// accepts the publisher and then the receivers, and relays every frame
/// until the publisher closes. An error ends the process, threads and all.
pub fn serve(args: &[String]) -> Res<()> {
    let receivers: usize = args.first().and_then(|n| n.parse().ok()).ok_or("expected a receiver count")?;
    // Dies with the load generator however it ends: its end of our stdin
    // closes then.
    let orphaned = || {
        let _ = io::stdin().read(&mut [0]);
        std::process::exit(1);
    };
    thread::Builder::new().name("stdin".into()).spawn(orphaned).map_err(|err| format!("thread: {err}"))?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|err| format!("bind: {err}"))?;
    println!("{}", listener.local_addr().map_err(|err| format!("bind: {err}"))?.port());
    io::stdout().flush().map_err(|err| format!("stdout: {err}"))?;
    let accept = || -> Res<TcpStream> {
        let (stream, _) = listener.accept().map_err(|err| format!("accept: {err}"))?;
        stream.set_nodelay(true).map_err(|err| format!("socket: {err}"))?;
        Ok(stream)
    };
    let mut publisher = accept()?;
    // As many as the real server's writer pool (`delivery::start_pool`).
    let writers = thread::available_parallelism().map_or(2, |n| n.get()).max(2);
    let mut shares: Vec<Vec<TcpStream>> = (0..writers).map(|_| Vec::new()).collect();
    for index in 0..receivers {
        shares[index % writers].push(accept()?);
    }
    let frames = Arc::new(Frames::default());
    let mut handles = Vec::new();
    for (index, share) in shares.into_iter().enumerate() {
        let frames = frames.clone();
        let writer = thread::Builder::new().name(format!("writer-{index}"));
        handles.push(writer.spawn(move || write_share(&frames, share)).map_err(|err| format!("thread: {err}"))?);
    }
    let mut frame = [0; FRAME];
    let read = loop {
        match publisher.read_exact(&mut frame) {
            Ok(()) => lock(&frames).0.extend_from_slice(&frame),
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => break Ok(()),
            Err(err) => break Err(format!("read: {err}")),
        }
        frames.ready.notify_all();
    };
    lock(&frames).1 = true;
    frames.ready.notify_all();
    for handle in handles {
        handle.join().map_err(|_| "a writer panicked".to_string())??;
    }
    read
}

fn lock(frames: &Frames) -> MutexGuard<'_, (Vec<u8>, bool)> {
    // Bytes and a flag, each change finished before unlocking.
    frames.bytes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One writer thread: waits for new frames, copies them out, and writes
/// them to each of its sockets with one call, until the publisher closes.
fn write_share(frames: &Frames, mut share: Vec<TcpStream>) -> Res<()> {
    let mut written = 0;
    loop {
        let waited = frames.ready.wait_while(lock(frames), |(bytes, closed)| bytes.len() == written && !*closed);
        let batch = waited.unwrap_or_else(|poisoned| poisoned.into_inner()).0[written..].to_vec();
        if batch.is_empty() {
            return Ok(());
        }
        written += batch.len();
        for socket in &mut share {
            socket.write_all(&batch).map_err(|err| format!("write: {err}"))?;
        }
    }
}

/// The floor's server process, killed when dropped (like [`Server`]).
struct FloorServer(Child);

impl Drop for FloorServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the floor with `receivers` and `messages` frames. On an error the
/// floor's server is killed, which ends the receivers' reads.
pub fn floor(receivers: usize, messages: u64) -> Res<FanoutRun> {
    let exe = std::env::current_exe().map_err(|err| format!("floor: cannot find the loadgen binary: {err}"))?;
    let mut command = Command::new(&exe);
    command.args([FLOOR_SERVER, &receivers.to_string()]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut server = FloorServer(command.spawn().map_err(|err| format!("{}: {err}", exe.display()))?);
    let mut port = String::new();
    if let Some(stdout) = &mut server.0.stdout {
        BufReader::new(stdout).read_line(&mut port).map_err(|err| format!("floor server: {err}"))?;
    }
    let port: u16 = port.trim().parse().map_err(|_| format!("floor server: no port, got {port:?}"))?;
    let connect = || -> Res<TcpStream> {
        let socket_error = |err: io::Error| format!("floor: socket: {err}");
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(socket_error)?;
        stream.set_nodelay(true).map_err(socket_error)?;
        stream.set_read_timeout(Some(RUN_LIMIT)).map_err(socket_error)?;
        stream.set_write_timeout(Some(RUN_LIMIT)).map_err(socket_error)?;
        Ok(stream)
    };
    let mut publisher = connect()?;
    let sockets = (0..receivers).map(|_| connect()).collect::<Res<Vec<_>>>()?;
    let cpu_s = || cpu_seconds(&format!("/proc/{}/stat", server.0.id()));
    let (cpu_before, own_before, started) = (cpu_s(), own_cpu_s(), Instant::now());
    let mut handles = Vec::new();
    for (index, socket) in sockets.into_iter().enumerate() {
        let receiver = thread::Builder::new().name(format!("floor-{index}")).stack_size(CLIENT_STACK);
        handles.push(receiver.spawn(move || receive(socket, messages)).map_err(|e| format!("thread: {e}"))?);
    }
    publish(&mut publisher, messages)?;
    let mut run = FanoutRun { subs: receivers, pubs: 1, messages, recipients: receivers, ..FanoutRun::default() };
    let mut finished = started;
    for handle in handles {
        let tally = handle.join().map_err(|_| "floor: a receiver panicked".to_string())??;
        run.latency.merge(&tally.latency);
        run.deliveries += tally.distinct;
        run.out_of_order += tally.out_of_order;
        finished = finished.max(tally.last_new.unwrap_or(started));
    }
    (run.server_cpu_s, run.loadgen_cpu_s) = (cpu_s() - cpu_before, own_cpu_s() - own_before);
    run.lost = messages * receivers as u64 - run.deliveries;
    run.seconds = finished.duration_since(started).as_secs_f64().max(1e-6);
    Ok(run)
}

/// Sends `messages` frames, one every [`PERIOD`], each starting with its
/// send time and sequence number.
fn publish(publisher: &mut TcpStream, messages: u64) -> Res<()> {
    let began = Instant::now();
    let mut frame = [b'.'; FRAME];
    for seq in 0..messages {
        thread::sleep((began + PERIOD * seq as u32).saturating_duration_since(Instant::now()));
        frame[..8].copy_from_slice(&now_us().to_be_bytes());
        frame[8..16].copy_from_slice(&seq.to_be_bytes());
        publisher.write_all(&frame).map_err(|err| format!("floor: publish: {err}"))?;
    }
    Ok(())
}

/// Reads frames until it has `messages` of them, or the floor's server
/// closes or stalls: what is missing is counted as lost.
fn receive(mut socket: TcpStream, messages: u64) -> Res<Tally> {
    let mut tally = Tally::new(1, 0);
    let mut frame = [0; FRAME];
    while tally.distinct < messages {
        match socket.read_exact(&mut frame) {
            Ok(()) => {}
            Err(err)
                if matches!(err.kind(), ErrorKind::UnexpectedEof | ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                break;
            }
            Err(err) => return Err(format!("floor: receive: {err}")),
        }
        let now = now_us();
        let field = |at: usize| frame[at..].first_chunk().map_or(0, |bytes| u64::from_be_bytes(*bytes));
        tally.latency.record(now.saturating_sub(field(0)));
        tally.out_of_order += u64::from(field(8) != tally.distinct);
        tally.distinct += 1;
        tally.last_new = Some(Instant::now());
    }
    Ok(tally)
}
