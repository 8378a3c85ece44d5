//! The lease that makes a pipeline's runs take turns on one lake. It names its holder
//! and expires, so a crashed run blocks the next one only until its lease runs out,
//! or at once when the holder was a process on this host that no longer exists.
//!
//! The lease is a sequence of generations, `_state/lease/<generation>.json` (see
//! [`layout::lease_generation`]), and the newest one says who holds it, or that its
//! last holder released it. Each generation is created once, whole, and only if
//! absent (a hard link of a complete file on a local lake, `PutObject` with
//! `If-None-Match: *` on S3), so of several runs racing for one generation exactly
//! one creates it. To take the lease a run reads the newest generation `g`: held by a
//! live run that has not expired, it is refused; otherwise (free, released, stale or
//! unreadable) it creates `g + 1` naming itself. It then lists the generations again
//! and holds the lease only if its own is still the newest and reads back as its
//! own; a run that read an older generation and created a lower one backs off and
//! removes it. Generations only
//! grow (releasing creates the next one, marked released, and only generations below
//! the newest are ever removed), so no key is created twice and a slow racer cannot
//! win a generation that others have moved past. Taking over needs no read-modify-
//! write of a shared object, and so no compare-and-swap beyond create-if-absent.
//!
//! A run that takes the lease tidies what killed runs left: temporary files of
//! processes that no longer exist, and on a local lake the files of landings that
//! never wrote their manifest (unless the previous holder merely expired and may
//! still be running).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lake::{layout, pid_alive, Lake, LakeError};

/// Tries at taking the lease while other runs race for the same generations.
const MAX_TRIES: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub acquired_at: String,
    /// Unix seconds after which anyone may take the lease.
    pub expires_at: i64,
}

/// One generation of the lease: its holder, and when it was released, if it was.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Record {
    #[serde(flatten)]
    holder: Holder,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "pipeline already running: run {} ({}) on {} pid {} holds the lake lease since {}",
        .0.run_id, .0.command, .0.host, .0.pid, .0.acquired_at
    )]
    Held(Holder),
    #[error("lake lease: run {run_id} no longer holds it (generation {generation} expired and was taken over)")]
    Lost { run_id: String, generation: u64 },
    #[error("lake lease: still contended after {} tries; try again", MAX_TRIES)]
    Contended,
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// A held lease; dropping it releases it.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    holder: Holder,
    generation: u64,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl Holder {
    /// A process of this host that no longer exists.
    fn is_dead(&self) -> bool {
        self.host == host() && !pid_alive(self.pid)
    }

    fn is_stale(&self, now: i64) -> bool {
        now >= self.expires_at || self.is_dead()
    }
}

/// The generations of the lease in the lake, oldest first.
fn generations(lake: &Lake) -> Result<Vec<u64>, LakeError> {
    let mut gens: Vec<u64> = lake
        .list(&layout::lease_dir())?
        .iter()
        .filter_map(|k| layout::parse_lease_generation(k))
        .collect();
    gens.sort_unstable();
    Ok(gens)
}

/// The newest generation and its record (None when it cannot be read as one).
fn newest(lake: &Lake) -> Result<Option<(u64, Option<Record>)>, LakeError> {
    let Some(&generation) = generations(lake)?.last() else {
        return Ok(None);
    };
    let key = layout::lease_generation(generation);
    let record = match lake.get_json::<Record>(&key) {
        Ok(record) => record,
        Err(LakeError::Json { source, .. }) => {
            tracing::warn!(key, error = %source, "lease: unreadable generation; taking it as free");
            None
        }
        Err(e) => return Err(e),
    };
    Ok(Some((generation, record)))
}

/// Removes the generations below `newest` (best effort: leftovers are harmless).
fn remove_older(lake: &Lake, newest: u64) {
    if let Ok(gens) = generations(lake) {
        for g in gens.into_iter().filter(|g| *g < newest) {
            let _ = lake.delete(&layout::lease_generation(g));
        }
    }
}

impl Lease {
    pub fn acquire(
        lake: &Lake,
        run_id: &str,
        command: &str,
        ttl: Duration,
    ) -> Result<Self, LeaseError> {
        let now = chrono::Utc::now();
        let holder = Holder {
            run_id: run_id.to_string(),
            host: host(),
            pid: std::process::id(),
            command: command.to_string(),
            acquired_at: super::now_rfc3339(),
            expires_at: now.timestamp() + ttl.as_secs() as i64,
        };
        let record = Record {
            holder: holder.clone(),
            released_at: None,
        };
        for _ in 0..MAX_TRIES {
            let newest = newest(lake)?;
            let previous = newest.as_ref().and_then(|(_, r)| r.clone());
            if let Some(Record {
                holder: other,
                released_at: None,
            }) = &previous
            {
                if !other.is_stale(now.timestamp()) {
                    return Err(LeaseError::Held(other.clone()));
                }
            }
            let generation = newest.as_ref().map_or(1, |(g, _)| g + 1);
            if !lake.create_new_json(&layout::lease_generation(generation), &record)? {
                // Another run created this generation first: look again.
                continue;
            }
            if generations(lake)?.last() != Some(&generation) {
                // A run that read a newer generation got there first; ours was
                // created from an older reading and is void.
                lake.delete(&layout::lease_generation(generation))?;
                continue;
            }
            // Read back: on a store whose create-if-absent is not atomic (an emulator
            // that checks, then writes) a racer's record may have replaced ours.
            let ours = lake.get_json::<Record>(&layout::lease_generation(generation));
            if !matches!(&ours, Ok(Some(r)) if *r == record) {
                continue;
            }
            let lease = Self {
                lake: lake.clone(),
                holder,
                generation,
            };
            if let Some(Record {
                holder: other,
                released_at: None,
            }) = &previous
            {
                tracing::warn!(run_id = %other.run_id, host = %other.host, pid = other.pid, "taking over a stale lease");
            }
            remove_older(lake, generation);
            lease.tidy(newest.is_some().then_some(previous).as_ref());
            return Ok(lease);
        }
        Err(LeaseError::Contended)
    }

    /// Removes what killed runs left (see the module's doc). `previous` is the
    /// record the lease was taken from: `None` for a new lake, `Some(None)` for an
    /// unreadable one. Failures are logged, never fatal: the run can do its work.
    fn tidy(&self, previous: Option<&Option<Record>>) {
        match self.lake.remove_dead_temps() {
            Ok(removed) => {
                for path in removed {
                    tracing::info!(path = %path.display(), "removed a temporary file of a run that no longer exists");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot clear temporary files of dead runs"),
        }
        let previous_may_run = match previous {
            None => false,
            Some(Some(r)) => r.released_at.is_none() && !r.holder.is_dead(),
            Some(None) => true,
        };
        if !self.lake.is_local() {
            return;
        }
        if previous_may_run {
            tracing::info!(
                "the previous lease holder may still be running; unfinished landings kept"
            );
            return;
        }
        match super::remove_unfinished_landings(&self.lake, &self.holder.run_id) {
            Ok(removed) => {
                for key in removed {
                    tracing::warn!(key, "removed a file of a landing that never finished");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot clear unfinished landings"),
        }
    }
}

impl Lease {
    /// Like [`Lease::acquire`], but while another run holds the lease, tries again
    /// with a growing pause (a quarter second up to five) for at most `wait`.
    pub fn acquire_waiting(
        lake: &Lake,
        run_id: &str,
        command: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Self, LeaseError> {
        // A wait too long for the clock (`--wait 18446744073709551615`) waits forever.
        let deadline = std::time::Instant::now().checked_add(wait);
        let mut pause = Duration::from_millis(250);
        loop {
            match Self::acquire(lake, run_id, command, ttl) {
                Err(LeaseError::Held(holder)) => {
                    let now = std::time::Instant::now();
                    let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
                    if left.is_zero() {
                        return Err(LeaseError::Held(holder));
                    }
                    tracing::info!(run_id = %holder.run_id, pid = holder.pid, "lease held; waiting");
                    std::thread::sleep(pause.min(left));
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Pushes the expiry out to `ttl` from now, for long runs (a backfill renews
    /// after each interval). Fails when the lease expired and another run took it.
    pub fn renew(&mut self, ttl: Duration) -> Result<(), LeaseError> {
        let mut holder = self.holder.clone();
        holder.expires_at = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
        let lost = || LeaseError::Lost {
            run_id: holder.run_id.clone(),
            generation: self.generation,
        };
        if generations(&self.lake)?.last() != Some(&self.generation) {
            return Err(lost());
        }
        let record = Record {
            holder: holder.clone(),
            released_at: None,
        };
        self.lake
            .put_json(&layout::lease_generation(self.generation), &record)?;
        // Taken over between the check and the write: the write changed nothing
        // anyone reads (only the newest generation counts).
        if generations(&self.lake)?.last() != Some(&self.generation) {
            return Err(lost());
        }
        self.holder = holder;
        Ok(())
    }

    /// The generation this lease holds.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Who holds the lease now, if anyone (a stale holder included).
pub fn current(lake: &Lake) -> Result<Option<Holder>, LeaseError> {
    Ok(match newest(lake)? {
        Some((_, Some(r))) if r.released_at.is_none() => Some(r.holder),
        _ => None,
    })
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Release only our own lease: an expired one may have been taken over.
        let Ok(gens) = generations(&self.lake) else {
            return;
        };
        if gens.last() != Some(&self.generation) {
            return;
        }
        let released = Record {
            holder: self.holder.clone(),
            released_at: Some(super::now_rfc3339()),
        };
        let next = self.generation + 1;
        match self
            .lake
            .create_new_json(&layout::lease_generation(next), &released)
        {
            Ok(true) => remove_older(&self.lake, next),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot release the lake lease; it stays until it expires")
            }
        }
    }
}

/// For tests of the takeover race: every lake handle in `lakes` (one per racer, the
/// same lake or one client each) tries to take the lease at once, on its own thread,
/// and holds what it got until all have tried. Returns how many hold it (one, when
/// takeover is atomic).
#[doc(hidden)]
pub fn race(lakes: &[&Lake], trial: usize) -> usize {
    use std::sync::Barrier;
    let start = Barrier::new(lakes.len());
    let tried = Barrier::new(lakes.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = lakes
            .iter()
            .enumerate()
            .map(|(i, lake)| {
                let (start, tried) = (&start, &tried);
                s.spawn(move || {
                    start.wait();
                    let got = Lease::acquire(
                        lake,
                        &format!("t{trial}-{i}"),
                        "ingest",
                        Duration::from_secs(60),
                    );
                    // Hold it until every racer has tried.
                    tried.wait();
                    match got {
                        Ok(_) => true,
                        Err(LeaseError::Held(_)) => false,
                        Err(e) => panic!("racer {i}: {e}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a racer panicked"))
            .filter(|held| *held)
            .count()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeUrl;
    use std::path::Path;

    /// A pid above any kernel's pid_max: no process has it.
    const DEAD_PID: u32 = u32::MAX - 1;

    fn lake() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&LakeUrl::Local(dir.path().into())).expect("open");
        (dir, lake)
    }

    fn open(path: &Path) -> Lake {
        Lake::open(&LakeUrl::Local(path.into())).expect("open")
    }

    /// Leaves generation `generation` held by a process of this host that is gone.
    fn dead_holder(lake: &Lake, generation: u64) {
        let record = Record {
            holder: Holder {
                run_id: "dead".into(),
                host: host(),
                pid: DEAD_PID,
                command: "ingest".into(),
                acquired_at: "2026-01-01T00:00:00.000Z".into(),
                expires_at: i64::MAX,
            },
            released_at: None,
        };
        assert!(lake
            .create_new_json(&layout::lease_generation(generation), &record)
            .expect("stale lease"));
    }

    #[test]
    fn a_second_holder_is_refused_until_release() {
        let (_d, lake) = lake();
        let first = Lease::acquire(&lake, "r1", "run", Duration::from_secs(60)).expect("first");
        let second = Lease::acquire(&lake, "r2", "run", Duration::from_secs(60));
        assert!(matches!(second, Err(LeaseError::Held(h)) if h.run_id == "r1"));
        assert_eq!(
            current(&lake).expect("read").map(|h| h.run_id),
            Some("r1".into())
        );
        drop(first);
        assert_eq!(current(&lake).expect("read"), None, "released");
        let third = Lease::acquire(&lake, "r3", "run", Duration::from_secs(60)).expect("after");
        // Generations only grow: r1 held 1, its release is 2, r3 holds 3; older ones go.
        assert_eq!(third.generation(), 3);
        assert_eq!(generations(&lake).expect("list"), [3]);
    }

    #[test]
    fn waiting_gets_the_lease_once_it_is_released_and_gives_up_otherwise() {
        let (_d, lake) = lake();
        let first = Lease::acquire(&lake, "r1", "run", Duration::from_secs(60)).expect("first");
        let short = Lease::acquire_waiting(
            &lake,
            "r2",
            "run",
            Duration::from_secs(60),
            Duration::from_millis(300),
        );
        assert!(matches!(short, Err(LeaseError::Held(_))));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(first);
        });
        let got = Lease::acquire_waiting(
            &lake,
            "r3",
            "run",
            Duration::from_secs(60),
            Duration::from_secs(10),
        );
        releaser.join().expect("join");
        assert_eq!(got.expect("waited").holder.run_id, "r3");
    }

    #[test]
    fn renewing_moves_the_expiry() {
        let (_d, lake) = lake();
        let mut lease = Lease::acquire(&lake, "r1", "run", Duration::from_secs(0)).expect("first");
        lease.renew(Duration::from_secs(600)).expect("renew");
        let other = Lease::acquire(&lake, "r2", "run", Duration::from_secs(60));
        assert!(
            matches!(other, Err(LeaseError::Held(_))),
            "renewed, not stale"
        );
        assert_eq!(
            current(&lake).expect("read").map(|h| h.run_id),
            Some("r1".into())
        );
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_its_holder_cannot_renew_or_release_it() {
        let (_d, lake) = lake();
        let mut stale = Lease::acquire(&lake, "r1", "run", Duration::from_secs(0)).expect("first");
        let taker =
            Lease::acquire(&lake, "r2", "run", Duration::from_secs(60)).expect("takes over");
        assert!(matches!(
            stale.renew(Duration::from_secs(60)),
            Err(LeaseError::Lost { .. })
        ));
        drop(stale);
        assert_eq!(
            current(&lake).expect("read").map(|h| h.run_id),
            Some("r2".into()),
            "the old holder's release freed the new holder's lease"
        );
        drop(taker);
    }

    #[test]
    fn a_dead_holders_lease_is_taken_over_at_once_and_an_unreadable_one_too() {
        let (_d, lake) = lake();
        dead_holder(&lake, 4);
        let lease = Lease::acquire(&lake, "r1", "run", Duration::from_secs(60)).expect("take");
        assert_eq!(lease.generation(), 5);
        drop(lease);
        let (_d2, lake) = self::lake();
        lake.put(&layout::lease_generation(1), b"{\"run_id\": ")
            .expect("torn");
        let lease = Lease::acquire(&lake, "r1", "run", Duration::from_secs(60)).expect("take");
        assert_eq!(lease.generation(), 2);
    }

    /// `runs` trials of `racers` threads taking the lease at once over a dead
    /// holder's; each holds what it got until all have tried. Returns the number of
    /// holders in each trial.
    fn race_threads(trials: usize, racers: usize) -> Vec<usize> {
        (0..trials)
            .map(|trial| {
                let (_d, lake) = lake();
                dead_holder(&lake, 1);
                let lakes = vec![&lake; racers];
                race(&lakes, trial)
            })
            .collect()
    }

    #[test]
    fn racing_threads_over_a_dead_holders_lease_give_exactly_one_holder() {
        let trials: usize = std::env::var("CDP_LEASE_TRIALS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(200);
        let holders = race_threads(trials, 8);
        let bad: Vec<_> = holders
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != 1)
            .collect();
        eprintln!(
            "lease race (threads): {trials} trials of 8, {} with other than one holder",
            bad.len()
        );
        assert!(bad.is_empty(), "(trial, holders): {bad:?}");
    }

    /// The racer side of the process race: started by the test below with the lake
    /// in CDP_LEASE_RACE_DIR; waits for `go`, tries once, writes `held-<pid>` or
    /// `refused-<pid>`, and if it holds the lease keeps it until `release` appears.
    #[test]
    #[ignore = "run by racing_processes_over_a_dead_holders_lease_give_exactly_one_holder"]
    fn lease_racer_process() {
        let Some(dir) = std::env::var_os("CDP_LEASE_RACE_DIR") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        let wait_for = |name: &str| {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !dir.join(name).exists() {
                assert!(std::time::Instant::now() < deadline, "no {name}");
                std::thread::sleep(Duration::from_micros(200));
            }
        };
        wait_for("go");
        let lake = open(&dir.join("lake"));
        let pid = std::process::id();
        let got = Lease::acquire(&lake, &format!("p{pid}"), "ingest", Duration::from_secs(60));
        let outcome = match &got {
            Ok(_) => "held",
            Err(LeaseError::Held(_)) => "refused",
            Err(e) => panic!("racer {pid}: {e}"),
        };
        std::fs::write(dir.join(format!("{outcome}-{pid}")), b"").expect("report");
        if got.is_ok() {
            wait_for("release");
        }
    }

    #[test]
    fn racing_processes_over_a_dead_holders_lease_give_exactly_one_holder() {
        let trials: usize = std::env::var("CDP_LEASE_PROCESS_TRIALS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(25);
        let racers = 8;
        let exe = std::env::current_exe().expect("test binary");
        let mut bad = Vec::new();
        for trial in 0..trials {
            let dir = tempfile::tempdir().expect("tempdir");
            dead_holder(&open(&dir.path().join("lake")), 1);
            let children: Vec<_> = (0..racers)
                .map(|_| {
                    std::process::Command::new(&exe)
                        .args([
                            "state::lease::tests::lease_racer_process",
                            "--exact",
                            "--ignored",
                            "--test-threads=1",
                        ])
                        .env("CDP_LEASE_RACE_DIR", dir.path())
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("spawn racer")
                })
                .collect();
            std::fs::write(dir.path().join("go"), b"").expect("go");
            let outcomes = |prefix: &str| {
                std::fs::read_dir(dir.path())
                    .expect("dir")
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    })
                    .count()
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while outcomes("held-") + outcomes("refused-") < racers {
                assert!(
                    std::time::Instant::now() < deadline,
                    "racers never finished"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            let held = outcomes("held-");
            std::fs::write(dir.path().join("release"), b"").expect("release");
            for mut child in children {
                assert!(child.wait().expect("wait").success(), "a racer failed");
            }
            if held != 1 {
                bad.push((trial, held));
            }
        }
        eprintln!(
            "lease race (processes): {trials} trials of {racers}, {} with other than one holder",
            bad.len()
        );
        assert!(bad.is_empty(), "(trial, holders): {bad:?}");
    }

    #[test]
    fn taking_the_lease_clears_what_a_killed_run_left() {
        let (dir, lake) = lake();
        // A killed ingest: half a landing (no manifest) and a temporary file.
        lake.put("raw/crm/r0/000-a.csv", b"x").expect("put");
        let temp = dir.path().join("raw/crm/r0/001-b.csv.tmp-4294967294-0");
        std::fs::write(&temp, b"half").expect("temp");
        // A finished landing and the Data Exchange staging stay.
        lake.put("raw/crm/r1/000-a.csv", b"x").expect("put");
        lake.put(&layout::raw_manifest("crm", "r1"), b"{}")
            .expect("put");
        lake.put("raw/dx/_exports/job/a.csv", b"x").expect("put");
        dead_holder(&lake, 1);
        let lease = Lease::acquire(&lake, "r2", "ingest", Duration::from_secs(60)).expect("take");
        assert!(!temp.exists(), "a dead run's temporary file stayed");
        assert_eq!(
            lake.list("raw/").expect("list"),
            [
                "raw/crm/r1/000-a.csv",
                "raw/crm/r1/_manifest.json",
                "raw/dx/_exports/job/a.csv"
            ]
        );
        drop(lease);
    }

    #[test]
    fn unfinished_landings_stay_when_the_previous_holder_may_still_run() {
        let (_d, lake) = lake();
        lake.put("raw/crm/r0/000-a.csv", b"x").expect("put");
        // This process, past its expiry: stale, but alive.
        let mut stale = Lease::acquire(&lake, "r0", "run", Duration::from_secs(0)).expect("r0");
        let lease = Lease::acquire(&lake, "r1", "run", Duration::from_secs(60)).expect("r1");
        assert_eq!(lake.list("raw/").expect("list"), ["raw/crm/r0/000-a.csv"]);
        assert!(stale.renew(Duration::from_secs(60)).is_err());
        drop(lease);
    }
}
