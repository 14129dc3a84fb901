//! The faults and when they happen: a shuffled schedule with a fixed count
//! of each kind, spread over the run, and a watcher that relaunches `serve`
//! processes that ended (a crash point fired, or a kill) and resumes paused
//! ones. Everything here blocks; it runs on its own threads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rng::Rng;
use super::services::{signal, Ended, Nats, Postgres, Serve, ServeSetup};

/// How often the watcher looks at the `serve` processes.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// Longest a killed `serve` stays down before it is launched again.
const DOWN_MAX: Duration = Duration::from_millis(1500);
/// A pause lasts the ack wait plus at least this much.
const PAUSE_EXTRA_MIN: Duration = Duration::from_millis(500);
/// A pause lasts the ack wait plus up to this much.
const PAUSE_EXTRA_MAX: Duration = Duration::from_secs(3);
/// The armed crash point fires after up to this many hits (engine points).
const ENGINE_HITS_MAX: u64 = 12;
/// The same for the relay's points (hit once per relay batch).
const RELAY_HITS_MAX: u64 = 4;

/// One kind of fault in the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Kill a `serve` and launch it again armed with a crash point.
    ArmCrashPoint,
    /// SIGKILL a `serve` at a random moment.
    KillServe,
    /// SIGSTOP a `serve` for longer than the ack wait, then SIGCONT.
    PauseServe,
    /// `pg_ctl restart -m fast`.
    RestartPostgres,
    /// Stop PostgreSQL for the outage's length.
    PostgresOutage,
    /// SIGTERM nats-server and start it again.
    RestartNatsGraceful,
    /// SIGKILL nats-server and start it again.
    RestartNatsKilled,
    /// A hostile input (run by the async side).
    Hostile,
}

/// How many faults of each kind a run of `total` faults gets.
pub fn plan(total: u64, outage: bool, rng: &mut Rng) -> Vec<Fault> {
    let at_least = |n: u64, min: u64| n.max(min);
    let counts = [
        (Fault::RestartPostgres, at_least(total / 25, 2)),
        (Fault::RestartNatsGraceful, at_least(total / 50, 1)),
        (Fault::RestartNatsKilled, at_least(total / 50, 1)),
        (Fault::PostgresOutage, u64::from(outage)),
        (Fault::PauseServe, at_least(total / 14, 2)),
        (Fault::Hostile, at_least(total / 5, 4)),
        (Fault::KillServe, at_least(total / 7, 3)),
    ];
    let mut faults: Vec<Fault> = counts.iter().flat_map(|(f, n)| std::iter::repeat_n(*f, *n as usize)).collect();
    let rest = total.saturating_sub(faults.len() as u64).max(7);
    faults.extend(std::iter::repeat_n(Fault::ArmCrashPoint, rest as usize));
    rng.shuffle(&mut faults);
    faults
}

/// A `serve` slot and when it comes back after a kill.
#[derive(Debug)]
struct Slot {
    serve: Serve,
    down_until: Option<Instant>,
    paused: Option<(u32, Instant)>,
}

/// The services under attack, and the count of what was done to them.
#[derive(Debug)]
pub struct Lab {
    /// The nats-server.
    pub nats: Mutex<Nats>,
    /// PostgreSQL.
    pub postgres: Postgres,
    slots: Mutex<Vec<Slot>>,
    setup: ServeSetup,
    /// Faults by kind (and crash points by name).
    pub counts: Mutex<BTreeMap<String, u64>>,
    /// Notes (unexpected exits and the like).
    pub notes: Mutex<Vec<String>>,
    crash_points: Vec<&'static str>,
}

impl Lab {
    /// Launches `serves` processes and returns the lab.
    pub fn new(
        nats: Nats,
        postgres: Postgres,
        setup: ServeSetup,
        serves: usize,
        crash_points: &[&'static str],
    ) -> Result<Arc<Self>, String> {
        let mut slots = Vec::new();
        for slot in 0..serves {
            let mut serve = Serve::new(slot, &setup.logs);
            serve.launch(&setup, None)?;
            slots.push(Slot { serve, down_until: None, paused: None });
        }
        Ok(Arc::new(Lab {
            nats: Mutex::new(nats),
            postgres,
            slots: Mutex::new(slots),
            setup,
            counts: Mutex::new(BTreeMap::new()),
            notes: Mutex::new(Vec::new()),
            crash_points: crash_points.to_vec(),
        }))
    }

    /// The ops API ports of the slots.
    pub fn ports(&self) -> Vec<u16> {
        self.slots.lock().expect("slots").iter().map(|s| s.serve.port).collect()
    }

    /// Counts one fault of `kind`.
    pub fn count(&self, kind: &str) {
        *self.counts.lock().expect("counts").entry(kind.to_owned()).or_insert(0) += 1;
    }

    fn note(&self, note: String) {
        self.notes.lock().expect("notes").push(note);
    }

    /// Whether every slot has a process that answers `/readyz`.
    pub fn ready(&self) -> bool {
        self.slots.lock().expect("slots").iter().all(|s| s.serve.ready())
    }

    /// One look at the slots: counts what ended, launches what is due,
    /// resumes what was paused long enough.
    pub fn watch_once(&self) {
        let now = Instant::now();
        let mut slots = self.slots.lock().expect("slots");
        for slot in slots.iter_mut() {
            if let Some((pid, until)) = slot.paused {
                if now >= until {
                    if slot.serve.pid() == Some(pid) {
                        signal(pid, "CONT");
                    }
                    slot.paused = None;
                }
            }
            match slot.serve.ended() {
                Some(Ended::CrashPoint(point)) => {
                    self.count("SIGKILL serve: at a crash point");
                    self.count(&format!("  crash point {point}"));
                    slot.down_until = Some(now);
                }
                Some(Ended::Exited(status)) => {
                    self.count("serve exited by itself (not injected)");
                    self.note(format!("serve exited by itself: {status}"));
                    slot.down_until = Some(now);
                }
                None => {}
            }
            if slot.serve.pid().is_none() && slot.down_until.is_some_and(|t| now >= t) {
                slot.down_until = None;
                if let Err(e) = slot.serve.launch(&self.setup, None) {
                    self.note(format!("cannot launch serve: {e}"));
                    slot.down_until = Some(now + DOWN_MAX);
                }
            }
        }
    }

    /// Runs the watcher until `stop` is set.
    pub fn watch(self: &Arc<Self>, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<()> {
        let lab = Arc::clone(self);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                lab.watch_once();
                std::thread::sleep(WATCH_EVERY);
            }
        })
    }

    /// The crash point that fired least so far (ties broken by `rng`).
    fn next_point(&self, rng: &mut Rng) -> &'static str {
        let counts = self.counts.lock().expect("counts");
        let fired = |p: &str| counts.get(&format!("  crash point {p}")).copied().unwrap_or(0);
        let least = self.crash_points.iter().map(|p| fired(p)).min().unwrap_or(0);
        let candidates: Vec<&'static str> = self.crash_points.iter().copied().filter(|p| fired(p) == least).collect();
        candidates[rng.below(candidates.len() as u64) as usize]
    }

    /// Carries out one fault (all but hostile inputs); returns its name.
    pub fn inject(&self, fault: Fault, rng: &mut Rng, outage: Duration) -> Result<(), String> {
        let slot_count = self.slots.lock().expect("slots").len() as u64;
        let which = rng.below(slot_count) as usize;
        match fault {
            Fault::ArmCrashPoint => {
                let point = self.next_point(rng);
                // Recovery meets its point once per page: arm it at the first hit.
                let hits = if point.starts_with("relay") {
                    rng.below(RELAY_HITS_MAX)
                } else if point == "recovery-mid" {
                    0
                } else {
                    rng.below(ENGINE_HITS_MAX)
                };
                let failpoints = if hits == 0 { format!("{point}=return") } else { format!("{point}={hits}*off->return") };
                let mut slots = self.slots.lock().expect("slots");
                let slot = &mut slots[which];
                if slot.serve.kill() {
                    self.count("SIGKILL serve: plain");
                }
                slot.paused = None;
                slot.down_until = None;
                self.count("serve launched armed with a crash point");
                slot.serve.launch(&self.setup, Some((point, failpoints)))?;
            }
            Fault::KillServe => {
                let mut slots = self.slots.lock().expect("slots");
                let slot = &mut slots[which];
                if slot.serve.kill() {
                    self.count("SIGKILL serve: plain");
                }
                slot.paused = None;
                slot.down_until = Some(Instant::now() + rng.between(Duration::ZERO, DOWN_MAX));
            }
            Fault::PauseServe => {
                let mut slots = self.slots.lock().expect("slots");
                let slot = &mut slots[which];
                if let (Some(pid), None) = (slot.serve.pid(), slot.paused) {
                    signal(pid, "STOP");
                    let length = self.setup.ack_wait + rng.between(PAUSE_EXTRA_MIN, PAUSE_EXTRA_MAX);
                    slot.paused = Some((pid, Instant::now() + length));
                    self.count("SIGSTOP/SIGCONT serve, longer than the ack wait");
                }
            }
            Fault::RestartPostgres => {
                self.postgres.restart_fast()?;
                self.count("PostgreSQL fast restart");
            }
            Fault::PostgresOutage => {
                self.postgres.stop()?;
                std::thread::sleep(outage);
                self.postgres.resume()?;
                self.count(&format!("PostgreSQL outage of {}s", outage.as_secs()));
            }
            Fault::RestartNatsGraceful => {
                self.nats.lock().expect("nats").restart(true)?;
                self.count("nats-server graceful restart");
            }
            Fault::RestartNatsKilled => {
                self.nats.lock().expect("nats").restart(false)?;
                self.count("nats-server SIGKILL restart");
            }
            Fault::Hostile => {}
        }
        Ok(())
    }

    /// Ends the faults: every slot runs an unarmed, running process again
    /// (an armed one is killed and launched without crash points).
    pub fn disarm(&self) -> Result<(), String> {
        let mut slots = self.slots.lock().expect("slots");
        for slot in slots.iter_mut() {
            if let Some((pid, _)) = slot.paused.take() {
                signal(pid, "CONT");
            }
            if slot.serve.armed.is_some() && slot.serve.kill() {
                self.count("SIGKILL serve: plain");
            }
            if slot.serve.pid().is_none() {
                slot.down_until = None;
                slot.serve.launch(&self.setup, None)?;
            }
        }
        Ok(())
    }
}
