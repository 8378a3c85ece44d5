//! The lease that makes a pipeline's runs take turns on one lake. It is an object
//! created only if absent (an atomic create on a local directory); it names its holder
//! and expires, so a crashed run blocks the next one only until its lease runs out,
//! or at once when the holder was a process on this host that no longer exists.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lake::{Lake, LakeError};

const KEY: &str = "_state/lease.json";

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

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "pipeline already running: run {} ({}) on {} pid {} holds the lake lease since {}",
        .0.run_id, .0.command, .0.host, .0.pid, .0.acquired_at
    )]
    Held(Holder),
    #[error(transparent)]
    Lake(#[from] LakeError),
}

/// A held lease; dropping it releases it.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    holder: Holder,
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

impl Holder {
    fn is_stale(&self, now: i64) -> bool {
        now >= self.expires_at
            || (self.host == host()
                && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists())
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
        let bytes = serde_json::to_vec_pretty(&holder).map_err(|source| LakeError::Json {
            key: KEY.into(),
            source,
        })?;
        // Two tries: the second after clearing a stale lease.
        for _ in 0..2 {
            if lake.create_new(KEY, &bytes)? {
                return Ok(Self {
                    lake: lake.clone(),
                    holder,
                });
            }
            match lake.get_json::<Holder>(KEY) {
                Ok(Some(other)) if !other.is_stale(now.timestamp()) => {
                    return Err(LeaseError::Held(other))
                }
                Ok(Some(other)) => {
                    tracing::warn!(run_id = %other.run_id, host = %other.host, pid = other.pid, "taking over a stale lease");
                    lake.delete(KEY)?;
                }
                // Unreadable or vanished: a holder died mid-write or just released.
                Ok(None) | Err(_) => lake.delete(KEY)?,
            }
        }
        match lake.get_json::<Holder>(KEY)? {
            Some(other) => Err(LeaseError::Held(other)),
            None => Err(LeaseError::Lake(LakeError::Io {
                key: KEY.into(),
                source: std::io::Error::other("lease contended; try again"),
            })),
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
        let deadline = std::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(250);
        loop {
            match Self::acquire(lake, run_id, command, ttl) {
                Err(LeaseError::Held(holder)) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(LeaseError::Held(holder));
                    }
                    tracing::info!(run_id = %holder.run_id, pid = holder.pid, "lease held; waiting");
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }

    /// Pushes the expiry out to `ttl` from now, for long runs (a backfill renews
    /// after each interval).
    pub fn renew(&mut self, ttl: Duration) -> Result<(), LeaseError> {
        let mut holder = self.holder.clone();
        holder.expires_at = chrono::Utc::now().timestamp() + ttl.as_secs() as i64;
        self.lake.put_json(KEY, &holder)?;
        self.holder = holder;
        Ok(())
    }
}

/// Who holds the lease now, if anyone (a stale holder included).
pub fn current(lake: &Lake) -> Result<Option<Holder>, LeaseError> {
    Ok(lake.get_json(KEY)?)
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Release only our own lease: an expired one may have been taken over.
        if let Ok(Some(h)) = self.lake.get_json::<Holder>(KEY) {
            if h == self.holder {
                let _ = self.lake.delete(KEY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeUrl;

    fn lake() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(&LakeUrl::Local(dir.path().into())).expect("open");
        (dir, lake)
    }

    #[test]
    fn a_second_holder_is_refused_until_release() {
        let (_d, lake) = lake();
        let first = Lease::acquire(&lake, "r1", "run", Duration::from_secs(60)).expect("first");
        let second = Lease::acquire(&lake, "r2", "run", Duration::from_secs(60));
        assert!(matches!(second, Err(LeaseError::Held(h)) if h.run_id == "r1"));
        drop(first);
        Lease::acquire(&lake, "r3", "run", Duration::from_secs(60)).expect("after release");
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
    fn an_expired_lease_is_taken_over() {
        let (_d, lake) = lake();
        let stale = Lease::acquire(&lake, "r1", "run", Duration::from_secs(0)).expect("first");
        std::mem::forget(stale);
        Lease::acquire(&lake, "r2", "run", Duration::from_secs(60)).expect("takes over");
    }
}
