//! The fault campaign of issue 8: its own nats-server and PostgreSQL, one
//! or two `jetsaga serve` processes, participants with seeded behaviour,
//! starts of every kind, and faults at random moments (crash points, kills,
//! pauses, database and broker restarts, a database outage, hostile
//! inputs); then a quiet period and [`checker::check`]. Used by the
//! `torture` example (the long run) and by `tests/it/torture.rs` (the
//! short one in CI).

pub mod checker;
pub mod definition;
pub mod faults;
pub mod load;
pub mod participants;
pub mod rng;
pub mod services;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use futures_util::StreamExt as _;
use serde_json::Value;
use tokio::sync::watch;

use checker::{Evidence, Verdict};
use definition::Definition;
use faults::{Fault, Lab};
use load::{Load, Starts, Via};
use participants::{Ledger, Participants};
use rng::Rng;
use services::{Nats, Postgres, ServeSetup};

/// The events stream the checker reads.
const EVENTS_STREAM: &str = "SAGA_EVENTS";
/// `serve --ack-wait`: pauses last longer than this.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// How long the campaign waits for `serve` to be ready at the start.
const READY_WAIT: Duration = Duration::from_secs(60);
/// Between two looks during the quiet period.
const QUIET_POLL: Duration = Duration::from_secs(1);
/// Looks in a row that must see nothing left to do.
const QUIET_STABLE: u32 = 3;
/// How often the campaign says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// One fetch of the checker's read of `SAGA_EVENTS`.
const FETCH_BATCH: usize = 2_000;
/// How long one fetch waits for messages.
const FETCH_EXPIRES: Duration = Duration::from_secs(2);

/// What one run does.
#[derive(Debug, Clone)]
pub struct Config {
    /// Every choice follows from it.
    pub seed: u64,
    /// How many (well-formed) sagas to start.
    pub sagas: u64,
    /// How long starts and faults go on.
    pub duration: Duration,
    /// How many faults to inject.
    pub faults: u64,
    /// The length of the database outage (none when zero).
    pub outage: Duration,
    /// How many `serve` processes run at once.
    pub serves: usize,
    /// The longest quiet period after the faults.
    pub quiet_max: Duration,
    /// The `jetsaga` binary built with `--features failpoints`.
    pub serve_bin: PathBuf,
    /// The definitions directory (`examples/torture/sagas`).
    pub sagas_dir: PathBuf,
    /// The crash points to spread kills over.
    pub crash_points: Vec<&'static str>,
    /// Keep the temporary directory (logs, data) for a post-mortem.
    pub keep: bool,
}

impl Config {
    /// The short version that runs in CI: a few hundred sagas, a few
    /// dozen faults, a 5 s outage, about a minute of faults.
    pub fn short(seed: u64, serve_bin: PathBuf, sagas_dir: PathBuf, crash_points: &[&'static str]) -> Self {
        Config {
            seed,
            sagas: 300,
            duration: Duration::from_secs(60),
            faults: 42,
            outage: Duration::from_secs(5),
            serves: 2,
            quiet_max: Duration::from_secs(90),
            serve_bin,
            sagas_dir,
            crash_points: crash_points.to_vec(),
            keep: false,
        }
    }
}

/// What a run did and what the checker found.
#[derive(Debug)]
pub struct Report {
    /// The seed (to replay the run).
    pub seed: u64,
    /// Faults by kind.
    pub faults: BTreeMap<String, u64>,
    /// The checker's verdict.
    pub verdict: Verdict,
    /// Crash points that never fired.
    pub points_not_fired: Vec<&'static str>,
    /// Wall time of the whole run.
    pub wall: Duration,
    /// Unexpected things seen along the way (not violations).
    pub notes: Vec<String>,
    /// The temporary directory, when kept.
    pub kept: Option<PathBuf>,
}

impl Report {
    /// True when the checker found nothing and every crash point fired.
    pub fn passed(&self) -> bool {
        self.verdict.total() == 0 && self.points_not_fired.is_empty()
    }

    /// The summary table.
    pub fn summary(&self) -> String {
        let mut out = format!("fault campaign, seed {} — wall time {:.0?}\nfaults injected:\n", self.seed, self.wall);
        for (kind, n) in &self.faults {
            out.push_str(&format!("  {kind:<52} {n:>6}\n"));
        }
        out.push_str("checker:\n");
        out.push_str(&self.verdict.table());
        if !self.points_not_fired.is_empty() {
            out.push_str(&format!("crash points that never fired: {:?}\n", self.points_not_fired));
        }
        for note in self.notes.iter().take(10) {
            out.push_str(&format!("note: {note}\n"));
        }
        if let Some(dir) = &self.kept {
            out.push_str(&format!("logs and data kept in {}\n", dir.display()));
        }
        out.push_str(&format!("{} (seed {})\n", if self.passed() { "PASSED" } else { "FAILED" }, self.seed));
        out
    }
}

/// Runs the campaign.
pub async fn run(config: Config) -> Result<Report, String> {
    let began = Instant::now();
    let dir = tempfile::Builder::new().prefix("jetsaga-torture-").tempdir().map_err(|e| e.to_string())?;
    let root = dir.path().to_owned();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).map_err(|e| e.to_string())?;
    let definition = Definition::load(&sagas_file(&config.sagas_dir)?)?;
    if !config.serve_bin.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --features failpoints` (or pass --serve-bin)",
            config.serve_bin.display()
        ));
    }
    let (nats, postgres) = tokio::task::spawn_blocking({
        let root = root.clone();
        move || Ok::<_, String>((Nats::start(&root)?, Postgres::start(&root)?))
    })
    .await
    .map_err(|e| e.to_string())??;
    let setup = ServeSetup {
        bin: config.serve_bin.clone(),
        sagas: config.sagas_dir.clone(),
        nats_url: nats.url(),
        database_url: postgres.url(),
        ack_wait: ACK_WAIT,
        logs: root.clone(),
    };
    let nats_url = nats.url();
    let lab = Lab::new(nats, postgres, setup, config.serves, &config.crash_points)?;
    let ready_by = Instant::now() + READY_WAIT;
    while !lab.ready() {
        lab.watch_once();
        if Instant::now() > ready_by {
            return Err(format!("serve did not become ready; see the logs in {}", keep(dir).display()));
        }
        tokio::time::sleep(QUIET_POLL / 10).await;
    }
    let client = async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .retry_on_initial_connect()
        .connect(&nats_url)
        .await
        .map_err(|e| e.to_string())?;
    let jetstream = async_nats::jetstream::new(client);

    let ledger = Ledger::default();
    let participants =
        Participants { jetstream: jetstream.clone(), definition: Arc::new(definition.clone()), seed: config.seed, ledger: ledger.clone() };
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = participants.spawn(stop_rx);
    let watching = Arc::new(AtomicBool::new(false));
    let watcher = lab.watch(Arc::clone(&watching));

    let load = Load {
        jetstream: jetstream.clone(),
        saga_type: definition.name.clone(),
        ports: lab.ports(),
        starts: Starts::default(),
        seed: config.seed,
    };
    let starting = tokio::spawn(start_all(load.clone(), config.clone()));
    let faulting = tokio::spawn(fault_all(Arc::clone(&lab), load.clone(), config.clone()));
    let progress = tokio::spawn({
        let (lab, starts, ledger) = (Arc::clone(&lab), load.starts.clone(), ledger.clone());
        async move {
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let faults: u64 = lab.counts.lock().expect("counts").iter().filter(|(k, _)| !k.starts_with(' ')).map(|(_, n)| n).sum();
                eprintln!(
                    "[{:>4.0?}] starts {}, faults {faults}, commands received {}",
                    began.elapsed(),
                    starts.all().len(),
                    ledger.entries().len()
                );
            }
        }
    });
    let start_result = starting.await.map_err(|e| e.to_string());
    let fault_result = faulting.await.map_err(|e| e.to_string()).and_then(|r| r);

    progress.abort();
    eprintln!("[{:>4.0?}] faults over; quiet period", began.elapsed());
    // The quiet period: no more faults; every serve unarmed and running.
    let disarmed = lab.disarm();
    let quiet = quiet(&lab, &jetstream, config.quiet_max).await;
    watching.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || watcher.join()).await;

    let stream = read_events(&jetstream).await;
    let db = tokio::task::spawn_blocking({
        let lab = Arc::clone(&lab);
        move || database_view(&lab.postgres)
    })
    .await
    .map_err(|e| e.to_string())?;
    let _ = stop_tx.send(true);
    for worker in workers {
        worker.abort();
    }
    let mut notes: Vec<String> = lab.notes.lock().expect("notes").clone();
    for problem in
        [start_result.err(), fault_result.err(), disarmed.err(), quiet.err(), stream.as_ref().err().cloned(), db.as_ref().err().cloned()]
            .into_iter()
            .flatten()
    {
        notes.insert(0, problem);
    }
    let (db_events, db_status) = db.unwrap_or_default();
    let evidence = Evidence {
        definition: Some(definition),
        seed: config.seed,
        starts: load.starts.all(),
        ledger: ledger.entries(),
        stream: stream.unwrap_or_default(),
        db_events,
        db_status,
    };
    let verdict = checker::check(&evidence);
    let faults = lab.counts.lock().expect("counts").clone();
    let points_not_fired = config.crash_points.iter().copied().filter(|p| !faults.contains_key(&format!("  crash point {p}"))).collect();
    drop(lab);
    let kept = (config.keep || verdict.total() > 0).then(|| keep(dir));
    Ok(Report { seed: config.seed, faults, verdict, points_not_fired, wall: began.elapsed(), notes, kept })
}

fn keep(dir: tempfile::TempDir) -> PathBuf {
    dir.keep()
}

fn sagas_file(dir: &Path) -> Result<PathBuf, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    match files.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("{}: the campaign runs exactly one definition", dir.display())),
    }
}

/// Starts `config.sagas` sagas evenly over the run, every way there is.
async fn start_all(load: Load, config: Config) {
    let mut rng = Rng::new(config.seed ^ 0x5747);
    let every = config.duration / u32::try_from(config.sagas.max(1)).unwrap_or(u32::MAX);
    let began = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..config.sagas {
        let via = match rng.below(100) {
            0..30 => Via::NatsNamed,
            30..65 => Via::NatsDerived,
            65..80 => Via::HttpNamed,
            _ => Via::HttpUnnamed,
        };
        let mut start_rng = Rng::new(rng.next_u64());
        let load = load.clone();
        tasks.push(tokio::spawn(async move { load.start(n, via, &mut start_rng).await }));
        tokio::time::sleep_until((began + every * u32::try_from(n + 1).unwrap_or(u32::MAX)).into()).await;
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Injects the planned faults, spread over the run.
async fn fault_all(lab: Arc<Lab>, load: Load, config: Config) -> Result<(), String> {
    let mut rng = Rng::new(config.seed ^ 0xFA17);
    let schedule = faults::plan(config.faults, !config.outage.is_zero(), &mut rng);
    let every = config.duration / u32::try_from(schedule.len().max(1)).unwrap_or(u32::MAX);
    let began = Instant::now();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        for (i, fault) in schedule.into_iter().enumerate() {
            let at = began + every * u32::try_from(i).unwrap_or(u32::MAX) + rng.between(Duration::ZERO, every / 2);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            if fault == Fault::Hostile {
                let known = load.starts.all().iter().rev().find_map(|s| s.saga_id.clone());
                let name = handle.block_on(load.hostile(config.sagas + i as u64, &mut rng, known));
                lab.count("hostile input");
                lab.count(&format!("  {name}"));
                continue;
            }
            lab.inject(fault, &mut rng, config.outage)?;
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Waits until nothing is left to do: every saga in the database finished
/// or stuck, the count steady, and `SAGA_EVENTS` holding every event.
async fn quiet(lab: &Arc<Lab>, jetstream: &async_nats::jetstream::Context, limit: Duration) -> Result<(), String> {
    let until = Instant::now() + limit;
    let mut stable = 0;
    let mut last = String::new();
    while Instant::now() < until {
        tokio::time::sleep(QUIET_POLL).await;
        let lab2 = Arc::clone(lab);
        let row = tokio::task::spawn_blocking(move || {
            lab2.postgres.psql(
                "jetsaga",
                "SELECT (SELECT count(*) FROM sagas), (SELECT count(*) FROM sagas WHERE status NOT IN ('completed','compensated','stuck','aborted')), (SELECT count(*) FROM events)",
            )
        })
        .await
        .map_err(|e| e.to_string())?;
        let Ok(row) = row else { continue };
        let fields: Vec<u64> = row.trim().split('|').filter_map(|f| f.parse().ok()).collect();
        let published = match jetstream.get_stream(EVENTS_STREAM).await {
            Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        let now = format!("{row} {published}");
        let settled = fields.len() == 3 && fields[1] == 0 && published >= fields[2];
        stable = if settled && now == last { stable + 1 } else { 0 };
        last = now;
        if stable >= QUIET_STABLE {
            return Ok(());
        }
    }
    Err(format!("the campaign's quiet period of {limit:?} ended with work left (sagas|open|events published: {last})"))
}

/// Every message of `SAGA_EVENTS`, through a consumer of our own.
async fn read_events(jetstream: &async_nats::jetstream::Context) -> Result<Vec<Value>, String> {
    let mut stream = jetstream.get_stream(EVENTS_STREAM).await.map_err(|e| e.to_string())?;
    let total = stream.info().await.map_err(|e| e.to_string())?.state.messages;
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config { deliver_policy: DeliverPolicy::All, ack_policy: AckPolicy::None, ..pull::Config::default() })
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut empty = 0;
    while (out.len() as u64) < total && empty < 3 {
        let mut batch = consumer.fetch().max_messages(FETCH_BATCH).expires(FETCH_EXPIRES).messages().await.map_err(|e| e.to_string())?;
        let before = out.len();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| e.to_string())?;
            out.push(serde_json::from_slice(&message.payload).unwrap_or(Value::Null));
        }
        empty = if out.len() == before { empty + 1 } else { 0 };
    }
    Ok(out)
}

type DbView = (BTreeMap<String, (u64, u64)>, BTreeMap<String, String>);

/// Per saga, the database's event count and highest seq, and its status.
fn database_view(postgres: &Postgres) -> Result<DbView, String> {
    let mut events = BTreeMap::new();
    for line in postgres.psql("jetsaga", "SELECT saga_id, count(*), max(seq) FROM events GROUP BY saga_id")?.lines() {
        let f: Vec<&str> = line.split('|').collect();
        if let [id, count, max] = f.as_slice() {
            events.insert((*id).to_owned(), (count.parse().unwrap_or(0), max.parse().unwrap_or(0)));
        }
    }
    let mut status = BTreeMap::new();
    for line in postgres.psql("jetsaga", "SELECT saga_id, status FROM sagas")?.lines() {
        if let Some((id, s)) = line.split_once('|') {
            status.insert(id.to_owned(), s.to_owned());
        }
    }
    Ok((events, status))
}
