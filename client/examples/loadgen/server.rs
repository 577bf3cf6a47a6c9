//! The server under test: one `chat-server` process per run, and CPU
//! time read from `/proc`.

use super::*;

/// Flags that lift the per-address and storage limits for a run.
const CLASS_LIMITS_LIFTED: [&str; 12] = [
    "--max-conns-per-ip",
    "1000000",
    "--max-handshakes-per-ip",
    "1000000",
    "--max-users",
    "1000000",
    "--new-users-per-hour",
    "1000000",
    "--mailbox-bytes",
    "4294967296",
    "--store-bytes",
    "17179869184",
];

/// One `chat-server` process, killed when dropped.
pub struct Server {
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub child: Child,
    /// Kept open: the server may print more to stdout.
    pub _stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
    pub key: Key,
}

impl Server {
    /// Starts a server in a new directory `name` under the work directory;
    /// `memory` runs it without a journal.
    pub fn start(options: &Options, name: &str, memory: bool, extra: &[&str]) -> Res<Server> {
        let dir = options.work_dir.join(name);
        fs::create_dir_all(&dir).map_err(|err| format!("{}: {err}", dir.display()))?;
        let mut args: Vec<String> = vec!["--port".into(), "0".into(), "--key-file".into(), path_arg(&dir.join("key"))];
        if memory {
            args.push("--memory".into());
        } else {
            args.extend(["--data-dir".into(), path_arg(&dir.join("data"))]);
        }
        // One address plays thousands of users here: the limits meant for
        // a class of key holders are lifted, and runs hold all they send.
        args.extend(CLASS_LIMITS_LIFTED.iter().map(|s| s.to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let (child, stdout, addr) = spawn_server(&options.server, &dir, &args)?;
        if options.pids {
            // For a profiler: `perf record -g -p PID`.
            eprintln!("loadgen: {name}: server pid {} on {addr}", child.id());
        }
        let key = load_key(&dir.join("key")).map_err(|err| err.to_string())?;
        Ok(Server { bin: options.server.clone(), dir, args, child, _stdout: stdout, addr, key })
    }

    /// Kills the server (like a crash: nothing acknowledged may be lost)
    /// and starts it again on the same data; returns how long the new one
    /// took to replay its journal and listen.
    pub fn restart(&mut self) -> Res<Duration> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = Instant::now();
        let (child, stdout, addr) = spawn_server(&self.bin, &self.dir, &self.args)?;
        (self.child, self._stdout, self.addr) = (child, stdout, addr);
        Ok(started.elapsed())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU seconds the server has used so far.
    pub fn cpu_s(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.pid()))
    }

    /// A `/proc/<pid>/status` field in kB (VmRSS) or a count (Threads).
    pub fn status(&self, field: &str) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Starts the binary with its log in `dir/server.log` and waits for its
/// `listening on ADDR` line.
pub fn spawn_server(bin: &Path, dir: &Path, args: &[String]) -> Res<(Child, BufReader<ChildStdout>, SocketAddr)> {
    let log_path = dir.join("server.log");
    let log = File::options().create(true).append(true).open(&log_path);
    let log = log.map_err(|err| format!("{}: {err}", log_path.display()))?;
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|err| format!("{}: {err}", bin.display()))?;
    let Some(stdout) = child.stdout.take() else { return Err("the server's stdout is not a pipe".into()) };
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).map_err(|err| err.to_string())? == 0 {
            let _ = child.wait();
            return Err(format!("the server exited before listening; see {}", log_path.display()));
        }
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            let addr = addr.parse().map_err(|_| format!("cannot parse the server's address {addr:?}"))?;
            return Ok((child, stdout, addr));
        }
    }
}

/// utime + stime of a `/proc/.../stat` file, in seconds.
pub fn cpu_seconds(path: &str) -> f64 {
    let stat = fs::read_to_string(path).unwrap_or_default();
    // The command name is in parentheses and may hold spaces: count fields
    // after the last ')'; utime and stime are fields 14 and 15 of the line.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / TICKS_PER_S
}

pub fn own_cpu_s() -> f64 {
    cpu_seconds("/proc/self/stat")
}

// ---------------------------------------------------------------- client
