//! The campaign's own services, so it may stop and restart them: a
//! nats-server with JetStream on its own port and store directory, a
//! PostgreSQL cluster in a temporary directory (run as user `postgres`,
//! which PostgreSQL requires when we are root), and `jetsaga serve`
//! processes it launches, kills, pauses and arms with crash points.

use std::fs;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary (Debian's package).
const NATS_SERVER: &str = "/usr/sbin/nats-server";
/// PostgreSQL's programs.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long a service gets to come up or go down.
const SERVICE_WAIT: Duration = Duration::from_secs(30);
/// Pause between two looks at a service that is coming up.
const POLL: Duration = Duration::from_millis(50);
/// The signal number of SIGABRT, which a crash point raises.
const SIGABRT: i32 = 6;

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).stderr(Stdio::null()).status();
}

/// Whether something accepts TCP connections on `port`.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), POLL).is_ok()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let until = Instant::now() + SERVICE_WAIT;
    while Instant::now() < until {
        if done() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(format!("{what} did not come up within {SERVICE_WAIT:?}"))
}

fn log_file(path: &Path) -> Result<fs::File, String> {
    fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// A private nats-server with JetStream.
#[derive(Debug)]
pub struct Nats {
    port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Nats {
    /// Starts one under `root` (store in `root/nats`).
    pub fn start(root: &Path) -> Result<Self, String> {
        let store = root.join("nats");
        fs::create_dir_all(&store).map_err(|e| e.to_string())?;
        let mut nats = Nats { port: free_port(), store, log: root.join("nats.log"), child: None };
        nats.spawn()?;
        Ok(nats)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new(NATS_SERVER)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(log_file(&self.log)?)
            .spawn()
            .map_err(|e| format!("{NATS_SERVER}: {e}"))?;
        self.child = Some(child);
        let port = self.port;
        wait_until("nats-server", || listening(port))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM: graceful, or SIGKILL) and starts it again
    /// on the same port and store.
    pub fn restart(&mut self, graceful: bool) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), if graceful { "TERM" } else { "KILL" });
            let until = Instant::now() + SERVICE_WAIT;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < until {
                std::thread::sleep(POLL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.spawn()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A private PostgreSQL cluster, owned and run by user `postgres`.
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    data: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Postgres {
    /// initdb under `root/pg`, start, and create database `jetsaga`.
    pub fn start(root: &Path) -> Result<Self, String> {
        let base = root.join("pg");
        let (data, socket) = (base.join("data"), base.join("socket"));
        fs::create_dir_all(&socket).map_err(|e| e.to_string())?;
        let pg = Postgres { port: free_port(), data, socket, log: base.join("postgres.log") };
        run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&base))?;
        pg.as_postgres(&format!("{PG_BIN}/initdb"), &["-D", &pg.data_str(), "-U", "postgres", "--auth=trust", "--no-sync"])?;
        pg.ctl(&["start"])?;
        pg.psql("postgres", "CREATE DATABASE jetsaga")?;
        Ok(pg)
    }

    fn data_str(&self) -> String {
        self.data.display().to_string()
    }

    fn as_postgres(&self, program: &str, args: &[&str]) -> Result<String, String> {
        run(Command::new("runuser").args(["-u", "postgres", "--", program]).args(args))
    }

    /// `pg_ctl <verb>` with this cluster's port, socket and log; waits.
    fn ctl(&self, verb: &[&str]) -> Result<String, String> {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200", self.port, self.socket.display());
        let (data, log) = (self.data_str(), self.log.display().to_string());
        let mut args = vec!["-D", &data, "-l", &log, "-o", &options, "-w", "-t", "60"];
        args.extend_from_slice(verb);
        self.as_postgres(&format!("{PG_BIN}/pg_ctl"), &args)
    }

    /// `pg_ctl restart -m fast`.
    pub fn restart_fast(&self) -> Result<(), String> {
        self.ctl(&["restart", "-m", "fast"]).map(drop)
    }

    /// `pg_ctl stop -m fast`: the outage begins.
    pub fn stop(&self) -> Result<(), String> {
        self.ctl(&["stop", "-m", "fast"]).map(drop)
    }

    /// `pg_ctl start`: the outage ends.
    pub fn resume(&self) -> Result<(), String> {
        self.ctl(&["start"]).map(drop)
    }

    /// The database URL `serve` gets.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/jetsaga", self.port)
    }

    /// Runs `sql` in `database` with psql: unaligned rows, `|` between fields.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        run(Command::new(format!("{PG_BIN}/psql")).args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            database,
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ]))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop", "-m", "immediate"]);
    }
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.stdin(Stdio::null()).output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("{command:?}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// How a `serve` process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It aborted at this crash point.
    CrashPoint(String),
    /// It exited by itself (not a crash point): its status.
    Exited(String),
}

/// One `jetsaga serve` slot: at most one process at a time.
#[derive(Debug)]
pub struct Serve {
    /// The ops API's port (fixed per slot).
    pub port: u16,
    slot: usize,
    child: Option<Child>,
    launches: u32,
    logs: PathBuf,
    log: PathBuf,
    /// The crash point this process was armed with.
    pub armed: Option<String>,
}

/// What every `serve` process is started with.
#[derive(Debug, Clone)]
pub struct ServeSetup {
    /// The `jetsaga` binary (built with `--features failpoints`).
    pub bin: PathBuf,
    /// The definitions directory.
    pub sagas: PathBuf,
    /// The private nats-server.
    pub nats_url: String,
    /// The private PostgreSQL.
    pub database_url: String,
    /// `--ack-wait`.
    pub ack_wait: Duration,
    /// Where each process's log goes.
    pub logs: PathBuf,
}

impl Serve {
    /// An empty slot.
    pub fn new(slot: usize, logs: &Path) -> Self {
        Serve { port: free_port(), slot, child: None, launches: 0, logs: logs.to_owned(), log: PathBuf::new(), armed: None }
    }

    /// Launches a process in this slot, armed with `failpoints` (the
    /// `FAILPOINTS` value) when given; `point` names the armed crash point.
    pub fn launch(&mut self, setup: &ServeSetup, armed: Option<(&str, String)>) -> Result<(), String> {
        self.launches += 1;
        self.log = self.logs.join(format!("serve-{}-{}.log", self.slot, self.launches));
        let ack_wait = format!("{}ms", setup.ack_wait.as_millis());
        let mut command = Command::new(&setup.bin);
        command
            .args(["serve", "--sagas"])
            .arg(&setup.sagas)
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--ack-wait", &ack_wait])
            .env("NATS_URL", &setup.nats_url)
            .env("DATABASE_URL", &setup.database_url)
            .env("JETSAGA_SUBJECT_PREFIX", "saga")
            .env("JETSAGA_OPS_TOKEN", "torture-campaign-ops-token")
            .env("JETSAGA_LOG", "warn")
            .env_remove("FAILPOINTS")
            .stdout(Stdio::null())
            .stderr(log_file(&self.log)?);
        if let Some((_, failpoints)) = &armed {
            command.env("FAILPOINTS", failpoints);
        }
        let child = command.spawn().map_err(|e| format!("{}: {e}", setup.bin.display()))?;
        self.child = Some(child);
        self.armed = armed.map(|(point, _)| point.to_owned());
        Ok(())
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL (also a stopped process); true when one was running.
    pub fn kill(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = child.kill();
        let _ = child.wait();
        self.armed = None;
        true
    }

    /// How the process ended, if it did.
    pub fn ended(&mut self) -> Option<Ended> {
        let status: ExitStatus = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let fired = log.lines().find_map(|l| l.split("crash point ").nth(1)?.split(' ').next().map(str::to_owned));
        self.armed = None;
        Some(match fired {
            Some(point) if status.signal() == Some(SIGABRT) => Ended::CrashPoint(point),
            _ => Ended::Exited(format!("{status}: {}", log.lines().rev().take(3).collect::<Vec<_>>().join(" / "))),
        })
    }

    /// Whether `/readyz` answers 200.
    pub fn ready(&self) -> bool {
        self.child.is_some() && http::get(self.port, "/readyz").is_ok_and(|(status, _)| status == 200)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Plain HTTP/1.1 with ureq, blocking (call from `spawn_blocking`).
pub mod http {
    use std::time::Duration;

    /// How long one HTTP exchange may take.
    const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().timeout_global(Some(HTTP_TIMEOUT)).http_status_as_error(false).build().into()
    }

    /// `GET http://127.0.0.1:<port><path>`: status and body.
    pub fn get(port: u16, path: &str) -> Result<(u16, String), String> {
        let mut response = agent().get(&format!("http://127.0.0.1:{port}{path}")).call().map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string().unwrap_or_default()))
    }

    /// `POST http://127.0.0.1:<port><path>` with a JSON body: status and body.
    pub fn post(port: u16, path: &str, body: &str) -> Result<(u16, String), String> {
        let mut response = agent()
            .post(&format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/json")
            .send(body)
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_string().unwrap_or_default()))
    }
}
