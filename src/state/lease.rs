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
    fn an_expired_lease_is_taken_over() {
        let (_d, lake) = lake();
        let stale = Lease::acquire(&lake, "r1", "run", Duration::from_secs(0)).expect("first");
        std::mem::forget(stale);
        Lease::acquire(&lake, "r2", "run", Duration::from_secs(60)).expect("takes over");
    }
}
