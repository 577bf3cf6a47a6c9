//! The scenarios: fanout, latency (a paced fanout), idle, backlog, and
//! registered (what a stored message costs with many users registered).

use super::*;

/// How a publisher sends: as fast as SENTs come back (a window), or at a
/// steady rate.
#[derive(Clone, Copy)]
pub enum Pace {
    Window(usize),
    Every(Duration),
}

#[derive(Default)]
pub struct FanoutRun {
    pub subs: usize,
    pub pubs: usize,
    pub messages: u64,
    pub recipients: usize,
    pub deliveries: u64,
    pub seconds: f64,
    pub latency: Histogram,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub unexpected: u64,
    pub server_cpu_s: f64,
    pub loadgen_cpu_s: f64,
}

/// `subs` subscribers and `pubs` publishers in the public chat; each
/// publisher sends `per_pub` messages; everyone (publishers too: they get
/// the echo) must receive every message exactly once.
pub fn fanout(server: &Server, subs: usize, pubs: usize, per_pub: u64, pace: Pace) -> Res<FanoutRun> {
    let total = pubs as u64 * per_pub;
    let clients = Mutex::new(Vec::new());
    connect_many(server, "s", subs, BIG_INBOX, &|_, client| {
        clients.lock().unwrap_or_else(|p| p.into_inner()).push(client)
    })?;
    let subscribers = clients.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut publishers = Vec::new();
    for index in 0..pubs {
        publishers.push(Client::connect(server, &format!("p{index}"), None, BIG_INBOX)?);
    }
    let deadline = Instant::now() + RUN_LIMIT;
    // Publishers start together when the write lock is released.
    let gate = RwLock::new(());
    let results = Mutex::new(Vec::new());
    let failure = Mutex::new(None::<String>);
    let keep = |result: Res<Tally>| match result {
        Ok(tally) => results.lock().unwrap_or_else(|p| p.into_inner()).push(tally),
        Err(err) => *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(err),
    };
    let (cpu_before, own_before, started) = thread::scope(|scope| -> Res<(f64, f64, Instant)> {
        let closed = gate.write().unwrap_or_else(|p| p.into_inner());
        let builder = |name: String| thread::Builder::new().name(name).stack_size(CLIENT_STACK);
        let cannot = |err: io::Error| format!("cannot start a thread: {err}");
        for (index, mut client) in subscribers.into_iter().enumerate() {
            let keep = &keep;
            let body = move || keep(subscribe(&mut client, pubs, per_pub, deadline));
            builder(format!("sub-{index}")).spawn_scoped(scope, body).map_err(cannot)?;
        }
        for (index, mut client) in publishers.into_iter().enumerate() {
            let (keep, gate) = (&keep, &gate);
            let body = move || {
                drop(gate.read().unwrap_or_else(|p| p.into_inner()));
                keep(publish(&mut client, index, pubs, per_pub, pace, deadline))
            };
            builder(format!("pub-{index}")).spawn_scoped(scope, body).map_err(cannot)?;
        }
        let (cpu, own) = (server.cpu_s(), own_cpu_s());
        drop(closed);
        Ok((cpu, own, Instant::now()))
    })?;
    let (server_cpu_s, loadgen_cpu_s) = (server.cpu_s() - cpu_before, own_cpu_s() - own_before);
    if let Some(err) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(err);
    }
    let tallies = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut latency = Histogram::new();
    let mut run = FanoutRun {
        subs,
        pubs,
        messages: total,
        recipients: subs + pubs,
        deliveries: 0,
        seconds: 0.0,
        latency: Histogram::new(),
        lost: 0,
        duplicates: 0,
        out_of_order: 0,
        unexpected: 0,
        server_cpu_s,
        loadgen_cpu_s,
    };
    let mut finished = started;
    for tally in &tallies {
        latency.merge(&tally.latency);
        run.deliveries += tally.distinct;
        run.duplicates += tally.duplicates;
        run.out_of_order += tally.out_of_order;
        run.unexpected += tally.unexpected;
        finished = finished.max(tally.last_new.unwrap_or(started));
    }
    run.lost = total * run.recipients as u64 - run.deliveries;
    run.seconds = finished.duration_since(started).as_secs_f64().max(1e-6);
    run.latency = latency;
    Ok(run)
}

pub fn subscribe(client: &mut Client, pubs: usize, per_pub: u64, deadline: Instant) -> Res<Tally> {
    client.stream.set_read_timeout(Some(Duration::from_millis(100))).map_err(|err| err.to_string())?;
    let mut tally = Tally::new(pubs, per_pub);
    while tally.distinct < pubs as u64 * per_pub && Instant::now() < deadline {
        receive(client, &mut tally, |_, _| {})?;
    }
    Ok(tally)
}

pub fn publish(
    client: &mut Client,
    index: usize,
    pubs: usize,
    per_pub: u64,
    pace: Pace,
    deadline: Instant,
) -> Res<Tally> {
    let mut tally = Tally::new(pubs, per_pub);
    let (mut sent, mut confirmed) = (0u64, 0u64);
    let began = Instant::now();
    let total = pubs as u64 * per_pub;
    while (confirmed < per_pub || tally.distinct < total) && Instant::now() < deadline {
        let mut wait = Duration::from_millis(100);
        match pace {
            Pace::Window(window) => {
                while sent < per_pub && sent - confirmed < window as u64 {
                    sent += 1;
                    client.queue_send(sent, &bench_text(now_us(), index, sent - 1, TEXT_SIZE));
                }
            }
            Pace::Every(interval) => {
                let due = began + interval * sent as u32;
                let now = Instant::now();
                if sent < per_pub && now >= due {
                    sent += 1;
                    client.queue_send(sent, &bench_text(now_us(), index, sent - 1, TEXT_SIZE));
                    wait = interval.min(wait);
                } else if sent < per_pub {
                    wait = (due - now).max(Duration::from_micros(50));
                }
            }
        }
        client.flush()?;
        client.stream.set_read_timeout(Some(wait)).map_err(|err| err.to_string())?;
        let mut failure = None;
        receive(client, &mut tally, |kind_byte, payload| match kind_byte {
            kind::SENT => confirmed += 1,
            kind::ERROR => failure = Some(String::from_utf8_lossy(payload.get(10..).unwrap_or_default()).into_owned()),
            _ => {}
        })?;
        if let Some(reason) = failure {
            return Err(format!("publisher {index}: server error: {reason}"));
        }
    }
    Ok(tally)
}

// ---------------------------------------------------------------- idle

pub struct IdleRun {
    pub conns: usize,
    pub connect_s: f64,
    pub settle_s: f64,
    pub rss_base_kib: u64,
    pub rss_kib: u64,
    pub threads: u64,
    pub server_cpu_s: f64,
    pub loadgen_cpu_s: f64,
}

/// Opens `conns` logged-in connections that then only read (and PING, as
/// real clients do), waits for the server to go quiet, and measures it.
pub fn idle(server: &Server, conns: usize, hold: Duration) -> Res<IdleRun> {
    let rss_base_kib = server.status("VmRSS");
    let (cpu_before, own_before) = (server.cpu_s(), own_cpu_s());
    let stop = AtomicBool::new(false);
    let drainers = 2;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..drainers).map(|_| mpsc::channel::<Client>()).unzip();
    let failure = Mutex::new(None::<String>);
    let (connect_s, settle_s, rss_kib, threads) = thread::scope(|scope| -> Res<(f64, f64, u64, u64)> {
        for receiver in receivers {
            let (stop, failure) = (&stop, &failure);
            scope.spawn(move || {
                if let Err(err) = drain(receiver, stop) {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                }
            });
        }
        let started = Instant::now();
        let senders = senders.into_iter().map(Mutex::new).collect::<Vec<_>>();
        let handed = connect_many(server, "i", conns, SMALL_INBOX, &|index, client| {
            let _ = client.stream.set_nonblocking(true);
            let sender = senders[index % drainers].lock().unwrap_or_else(|p| p.into_inner());
            let _ = sender.send(client);
        });
        let connect_s = started.elapsed().as_secs_f64();
        drop(senders);
        let settled = handed.and_then(|()| settle(server));
        // Measured while every connection is still open.
        let (rss_kib, threads) = (server.status("VmRSS"), server.status("Threads"));
        if !hold.is_zero() {
            eprintln!("loadgen: holding {conns} connections for {hold:?}");
            thread::sleep(hold);
        }
        stop.store(true, Ordering::Relaxed);
        Ok((connect_s, settled?.as_secs_f64(), rss_kib, threads))
    })?;
    if let Some(err) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(err);
    }
    Ok(IdleRun {
        conns,
        connect_s,
        settle_s,
        rss_base_kib,
        rss_kib,
        threads,
        server_cpu_s: server.cpu_s() - cpu_before,
        loadgen_cpu_s: own_cpu_s() - own_before,
    })
}

/// Waits until the server has used under 1 % CPU for half a second.
pub fn settle(server: &Server) -> Res<Duration> {
    let started = Instant::now();
    let mut quiet = 0;
    let mut cpu = server.cpu_s();
    while quiet < 2 {
        if started.elapsed() > RUN_LIMIT {
            return Err("the server did not go quiet".into());
        }
        thread::sleep(Duration::from_millis(250));
        let now = server.cpu_s();
        quiet = if now - cpu <= 0.01 { quiet + 1 } else { 0 };
        cpu = now;
    }
    Ok(started.elapsed())
}

/// Reads every client handed over on `clients` without blocking, one pass
/// every [`DRAIN_PERIOD`], until `stop`. Presence comes in 250 ms ticks and
/// a socket buffer holds far more than a tick of it, so a pass reads each
/// connection once (again only while reads fill the buffer) and the
/// drainers cost the machine little more than the bytes they copy.
pub fn drain(clients: mpsc::Receiver<Client>, stop: &AtomicBool) -> Res<()> {
    let mut owned: Vec<Client> = Vec::new();
    let mut last_ping = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let pass = Instant::now();
        owned.extend(clients.try_iter());
        let ping = last_ping.elapsed() > chat_common::PING_INTERVAL;
        for client in &mut owned {
            while client.fill()? >= SMALL_INBOX {
                client.skip_frames()?;
            }
            client.skip_frames()?;
            if ping {
                client.queue(&ClientMsg::Ping);
                client.flush()?;
            }
        }
        if ping {
            last_ping = Instant::now();
        }
        thread::sleep(DRAIN_PERIOD.saturating_sub(pass.elapsed()));
    }
    Ok(())
}

// ---------------------------------------------------------------- backlog

pub struct BacklogRun {
    pub messages: u64,
    pub fill_s: f64,
    pub replay_s: f64,
    pub drain_s: f64,
    pub lost: u64,
    pub duplicates: u64,
}

/// One user registers and goes offline; a publisher sends `messages`; the
/// server is restarted (replaying its journal); the user comes back.
pub fn backlog(server: &mut Server, messages: u64) -> Res<BacklogRun> {
    let token = Client::connect(server, "late", None, SMALL_INBOX)?.token;
    let fill_started = Instant::now();
    let filled = fanout(server, 0, 1, messages, Pace::Window(WINDOW))?;
    if filled.lost + filled.duplicates > 0 {
        return Err(format!("backlog: the publisher lost {} and saw {} twice", filled.lost, filled.duplicates));
    }
    let fill_s = fill_started.elapsed().as_secs_f64();
    let replay_s = server.restart()?.as_secs_f64();
    let started = Instant::now();
    let mut client = Client::connect(server, "late", Some(token), BIG_INBOX)?;
    let mut tally = Tally::new(1, messages);
    client.stream.set_read_timeout(Some(Duration::from_millis(100))).map_err(|err| err.to_string())?;
    while tally.distinct < messages && started.elapsed() < RUN_LIMIT {
        receive(&mut client, &mut tally, |_, _| {})?;
    }
    let drain_s = tally.last_new.map_or(0.0, |at| at.duration_since(started).as_secs_f64());
    Ok(BacklogRun {
        messages,
        fill_s,
        replay_s,
        drain_s,
        lost: messages - tally.distinct,
        duplicates: tally.duplicates,
    })
}

// ---------------------------------------------------------------- output

// ------------------------------------------------------------- registered

pub struct RegisteredRun {
    pub rss_growth_kib: u64,
    pub server_cpu_s: f64,
    pub lost: u64,
    pub duplicates: u64,
}

/// `registered` users register and go away (they never acknowledge
/// anything, so every message is kept for them); then 10 subscribers and a
/// publisher chat `messages` public messages. Measures what a stored
/// message costs the server in memory and CPU, which should not depend on
/// how many are registered.
pub fn registered_run(server: &Server, registered: usize, messages: u64) -> Res<RegisteredRun> {
    connect_many(server, "r", registered, SMALL_INBOX, &|_, client| drop(client))?;
    settle(server)?;
    let rss_before = server.status("VmRSS");
    let run = fanout(server, 10, 1, messages, Pace::Window(WINDOW))?;
    settle(server)?;
    Ok(RegisteredRun {
        rss_growth_kib: server.status("VmRSS").saturating_sub(rss_before),
        server_cpu_s: run.server_cpu_s,
        lost: run.lost,
        duplicates: run.duplicates,
    })
}
