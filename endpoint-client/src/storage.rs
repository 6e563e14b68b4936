//! Disk use of the terminal's state, bounded (`[storage]` in the configuration). What the
//! terminal writes lives in its state directory (the scan spool with pages and consented call
//! recordings waiting for upload, refused pages kept sealed, print job records) and in the
//! optional diagnostic recordings (`display.record_dir`). Logs go to the journal, bounded by
//! journald.
//!
//! The rule is sans-IO ([`Bound::level`], [`plan`], explicit sizes and times): from
//! `alarm_percent` of either bound the level is `near_full` (the heartbeat carries it and the
//! server raises a `disk_space` alarm); at the bound the oldest *finished* files that may go
//! (diagnostic recording parts not written to for [`FINISHED_AFTER`], then refused pages, by
//! age) are deleted until the use is back under the alarm threshold. A page or recording not
//! yet acknowledged by the server is never deleted: when only those are left the level stays
//! `full` and new scans are refused ([`Storage::admit_scan`]) with a message for the resident.
//! [`Storage::check`] is the small driver: it measures, plans and deletes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use shared::api::{DiskHealth, DiskLevel};

use crate::config::Config;

/// A diagnostic recording part not modified for this long is finished (a live part is written
/// many times a second).
pub const FINISHED_AFTER: Duration = Duration::from_secs(60);
/// The most directory entries one measurement looks at (a state directory holds hundreds).
const MAX_ENTRIES: usize = 100_000;

/// What the resident reads when a scan is refused because the disk is full.
pub const FULL_TEXT: &str = "终端存储空间已满，暂时不能扫描。已扫描的材料会继续上传，请联系工作人员处理。";

/// The configured bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub max_bytes: u64,
    pub min_free_bytes: u64,
    pub alarm_percent: u8,
}

/// What the state takes and what the file system has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used_bytes: u64,
    pub free_bytes: u64,
}

impl Bound {
    pub fn of(cfg: &Config) -> Self {
        let s = &cfg.storage;
        Self { max_bytes: s.max_bytes, min_free_bytes: s.min_free_bytes, alarm_percent: s.alarm_percent }
    }

    /// `full` at either bound (a bound of 0 is always full), `near_full` from `alarm_percent`
    /// of the use bound or within the same margin of the free-space minimum.
    pub fn level(&self, u: Usage) -> DiskLevel {
        if u.used_bytes >= self.max_bytes || u.free_bytes < self.min_free_bytes {
            return DiskLevel::Full;
        }
        let pct = u128::from(self.alarm_percent.clamp(1, 100));
        let near_use = u128::from(u.used_bytes) * 100 >= u128::from(self.max_bytes) * pct;
        let near_free = u128::from(u.free_bytes) * pct < u128::from(self.min_free_bytes) * 100;
        if near_use || near_free { DiskLevel::NearFull } else { DiskLevel::Ok }
    }
}

/// What may be deleted to stay within the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A diagnostic recording part (`display.record_dir`).
    Recording,
    /// A page the server refused, kept sealed for a technician (`spool/rejected/`).
    RefusedPage,
}

/// One deletable thing: its files, their size, when it was last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub kind: Kind,
    pub paths: Vec<PathBuf>,
    pub bytes: u64,
    pub modified: SystemTime,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into the candidates, in deletion order.
    pub delete: Vec<usize>,
    /// The use once they are gone, and its level.
    pub after: Usage,
    pub level: DiskLevel,
}

/// At the bound: the oldest finished candidates go (recordings before refused pages of the
/// same age) until the use is back under the alarm threshold or nothing deletable is left.
/// Below the bound nothing is deleted. Unfinished recordings (written within
/// [`FINISHED_AFTER`] of `now`) are never chosen.
pub fn plan(bound: &Bound, usage: Usage, candidates: &[Candidate], now: SystemTime) -> Plan {
    let mut after = usage;
    let mut delete = vec![];
    if bound.level(usage) == DiskLevel::Full {
        let mut order: Vec<usize> = (0..candidates.len())
            .filter(|&i| {
                let c = &candidates[i];
                c.kind != Kind::Recording
                    || now.duration_since(c.modified).is_ok_and(|age| age >= FINISHED_AFTER)
            })
            .collect();
        order.sort_by_key(|&i| (candidates[i].modified, candidates[i].kind == Kind::RefusedPage));
        for i in order {
            if bound.level(after) == DiskLevel::Ok {
                break;
            }
            let b = candidates[i].bytes;
            after = Usage {
                used_bytes: after.used_bytes.saturating_sub(b),
                free_bytes: after.free_bytes.saturating_add(b),
            };
            delete.push(i);
        }
    }
    Plan { delete, after, level: bound.level(after) }
}

/// The driver: measures the state, deletes what the plan says, reports.
#[derive(Debug, Clone)]
pub struct Storage {
    bound: Bound,
    state_dir: PathBuf,
    record_dir: Option<PathBuf>,
}

/// One check's outcome (the heartbeat's `disk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub disk: Option<DiskHealth>,
    pub level: DiskLevel,
    pub deleted_bytes: u64,
}

impl Storage {
    pub fn new(cfg: &Config) -> Self {
        Self { bound: Bound::of(cfg), state_dir: cfg.state_dir(), record_dir: cfg.display.record_dir.clone() }
    }

    /// Measures, deletes at the bound, and reports where the state stands.
    pub fn check(&self, now: SystemTime) -> Report {
        let Some(fs) = crate::health::disk(&self.state_dir) else {
            return Report { disk: None, level: DiskLevel::Ok, deleted_bytes: 0 };
        };
        let mut budget = MAX_ENTRIES;
        let mut used = tree_bytes(&self.state_dir, 0, &mut budget);
        let record_dir = self.record_dir.as_deref().filter(|d| !inside(d, &self.state_dir));
        if let Some(d) = record_dir {
            used = used.saturating_add(tree_bytes(d, 0, &mut budget));
        }
        let usage = Usage { used_bytes: used, free_bytes: fs.free_bytes };
        let candidates = self.candidates();
        let p = plan(&self.bound, usage, &candidates, now);
        let mut deleted = 0u64;
        for &i in &p.delete {
            let c = &candidates[i];
            let mut gone = true;
            for path in &c.paths {
                gone &= std::fs::remove_file(path).is_ok();
            }
            if gone {
                deleted = deleted.saturating_add(c.bytes);
            }
            tracing::warn!(kind = ?c.kind, bytes = c.bytes, path = %c.paths[0].display(), "deleted to stay within storage.max_bytes");
        }
        let after = Usage {
            used_bytes: usage.used_bytes.saturating_sub(deleted),
            free_bytes: usage.free_bytes.saturating_add(deleted).min(fs.total_bytes),
        };
        let level = self.bound.level(after);
        if level != DiskLevel::Ok {
            tracing::warn!(
                ?level,
                used = after.used_bytes,
                free = after.free_bytes,
                "terminal storage near or at its bound"
            );
        }
        let disk = DiskHealth {
            free_bytes: after.free_bytes,
            total_bytes: fs.total_bytes,
            used_bytes: Some(after.used_bytes),
            max_bytes: Some(self.bound.max_bytes),
            min_free_bytes: Some(self.bound.min_free_bytes),
            level,
        };
        Report { disk: Some(disk), level, deleted_bytes: deleted }
    }

    /// Whether a new scan may start (after deleting what may go): refused at the bound.
    pub fn admit_scan(&self, now: SystemTime) -> Result<(), &'static str> {
        if self.check(now).level == DiskLevel::Full { Err(FULL_TEXT) } else { Ok(()) }
    }

    /// Diagnostic recording parts and refused pages, with their sizes and times.
    fn candidates(&self) -> Vec<Candidate> {
        let mut out = vec![];
        if let Some(dir) = &self.record_dir
            && let Ok(rd) = std::fs::read_dir(dir)
        {
            for e in rd.flatten().take(MAX_ENTRIES) {
                let Ok(m) = e.path().symlink_metadata() else { continue };
                if m.is_file() {
                    out.push(Candidate {
                        kind: Kind::Recording,
                        paths: vec![e.path()],
                        bytes: m.len(),
                        modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    });
                }
            }
        }
        let rejected = self.state_dir.join("spool").join("rejected");
        if let Ok(rd) = std::fs::read_dir(&rejected) {
            for e in rd.flatten().take(MAX_ENTRIES) {
                let path = e.path();
                if path.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let Ok(m) = path.symlink_metadata() else { continue };
                let sealed = path.with_extension("sealed");
                let sealed_len = sealed.symlink_metadata().map(|m| m.len()).unwrap_or(0);
                out.push(Candidate {
                    kind: Kind::RefusedPage,
                    paths: vec![path.clone(), sealed],
                    bytes: m.len().saturating_add(sealed_len),
                    modified: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        out
    }
}

fn inside(dir: &Path, parent: &Path) -> bool {
    match (dir.canonicalize(), parent.canonicalize()) {
        (Ok(d), Ok(p)) => d.starts_with(p),
        _ => dir.starts_with(parent),
    }
}

/// Bytes of the regular files under `dir` (symbolic links not followed, 8 levels deep at most,
/// at most `budget` entries).
fn tree_bytes(dir: &Path, depth: u32, budget: &mut usize) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut total = 0u64;
    for e in rd.flatten() {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let Ok(m) = e.path().symlink_metadata() else { continue };
        if m.is_file() {
            total = total.saturating_add(m.len());
        } else if m.is_dir() && depth < 8 {
            total = total.saturating_add(tree_bytes(&e.path(), depth + 1, budget));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const MIB: u64 = 1 << 20;

    fn bound(max: u64, min_free: u64) -> Bound {
        Bound { max_bytes: max, min_free_bytes: min_free, alarm_percent: 80 }
    }

    fn usage(used: u64, free: u64) -> Usage {
        Usage { used_bytes: used, free_bytes: free }
    }

    #[test]
    fn the_alarm_comes_before_the_bound_on_either_side() {
        let b = bound(100 * MIB, 10 * MIB);
        assert_eq!(b.level(usage(79 * MIB, 1 << 40)), DiskLevel::Ok);
        assert_eq!(b.level(usage(80 * MIB, 1 << 40)), DiskLevel::NearFull);
        assert_eq!(b.level(usage(100 * MIB - 1, 1 << 40)), DiskLevel::NearFull);
        assert_eq!(b.level(usage(100 * MIB, 1 << 40)), DiskLevel::Full);
        // Free space: full under the minimum, near within the margin (10 MiB / 0.8 = 12.5 MiB).
        assert_eq!(b.level(usage(0, 13 * MIB)), DiskLevel::Ok);
        assert_eq!(b.level(usage(0, 12 * MIB)), DiskLevel::NearFull);
        assert_eq!(b.level(usage(0, 10 * MIB - 1)), DiskLevel::Full);
        // Hostile bounds: 0 is always full; the largest numbers do not overflow.
        assert_eq!(bound(0, 0).level(usage(0, 0)), DiskLevel::Full);
        assert_eq!(bound(u64::MAX, u64::MAX).level(usage(u64::MAX - 1, u64::MAX)), DiskLevel::NearFull);
        assert_eq!(bound(u64::MAX, 0).level(usage(0, 0)), DiskLevel::Ok);
    }

    fn cand(kind: Kind, name: &str, mib: u64, age_secs: u64, now: SystemTime) -> Candidate {
        Candidate {
            kind,
            paths: vec![PathBuf::from(name)],
            bytes: mib * MIB,
            modified: now - Duration::from_secs(age_secs),
        }
    }

    #[test]
    fn at_the_bound_the_oldest_finished_files_go_until_under_the_alarm() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let b = bound(100 * MIB, 0);
        let c = vec![
            cand(Kind::Recording, "new", 10, 3600, now),
            cand(Kind::RefusedPage, "page", 5, 7200, now),
            cand(Kind::Recording, "live", 50, 1, now),
            cand(Kind::Recording, "oldest", 10, 9000, now),
        ];
        // Near the bound: the alarm only, nothing deleted.
        let p = plan(&b, usage(90 * MIB, 1 << 40), &c, now);
        assert_eq!((p.delete.clone(), p.level), (vec![], DiskLevel::NearFull));
        // At the bound: oldest first, the part still written is kept, down under 80 %.
        let p = plan(&b, usage(100 * MIB, 1 << 40), &c, now);
        assert_eq!(p.delete, vec![3, 1, 0]);
        assert_eq!((p.after.used_bytes, p.level), (75 * MIB, DiskLevel::Ok));
        // Only unacknowledged pages left (nothing deletable): it stays full.
        let p = plan(&b, usage(100 * MIB, 1 << 40), &c[2..3], now);
        assert_eq!((p.delete.clone(), p.level), (vec![], DiskLevel::Full));
        // A bound of 0: everything that may go goes, and it is still full.
        let p = plan(&bound(0, 0), usage(100 * MIB, 1 << 40), &c, now);
        assert_eq!((p.delete.len(), p.level), (3, DiskLevel::Full));
    }

    /// A state directory with a page waiting for upload, a refused page and two finished
    /// diagnostic recordings, under a bound of `max` bytes.
    fn terminal(dir: &Path, max: u64) -> (Config, crate::spool::Spool, crate::spool::Entry, PathBuf) {
        let mut cfg = Config { state_dir: Some(dir.join("state")), ..Config::default() };
        cfg.storage.max_bytes = max;
        cfg.storage.min_free_bytes = 0;
        let rec = dir.join("state").join("recordings");
        std::fs::create_dir_all(&rec).expect("mkdir");
        cfg.display.record_dir = Some(rec.clone());
        let spool = crate::spool::Spool::open(dir.join("state").join("spool")).expect("spool");
        let add = |bytes: &[u8]| {
            let scratch = spool.scratch_path("jpg");
            std::fs::write(&scratch, bytes).expect("write");
            spool.add(&scratch, Uuid::new_v4(), None, "扫描件.jpg", "image/jpeg", "jpg").expect("add")
        };
        let waiting = add(&vec![1u8; 300_000]);
        let refused = add(&vec![2u8; 200_000]);
        spool.reject(&refused, "415").expect("reject");
        let old = SystemTime::now() - Duration::from_secs(3600);
        for (name, age) in [("a-camera-0-0.ivf", 2), ("a-camera-0-1.ivf", 1)] {
            let p = rec.join(name);
            std::fs::write(&p, vec![3u8; 200_000]).expect("write");
            let f = std::fs::File::options().write(true).open(&p).expect("open");
            f.set_modified(old - Duration::from_secs(age * 60)).expect("mtime");
        }
        (cfg, spool, waiting, rec)
    }

    #[test]
    fn a_tiny_bound_deletes_old_recordings_and_refused_pages_never_a_waiting_page_and_refuses_scans() {
        let dir = tempfile::tempdir().expect("tmp");
        let (cfg, spool, waiting, rec) = terminal(dir.path(), 1 << 20);
        let storage = Storage::new(&cfg);
        // ~0.9 MiB of 1 MiB: the alarm, nothing deleted.
        let r = storage.check(SystemTime::now());
        assert_eq!((r.level, r.deleted_bytes), (DiskLevel::NearFull, 0));
        let disk = r.disk.expect("measured");
        assert_eq!(disk.max_bytes, Some(1 << 20));
        assert!(disk.used_bytes.is_some_and(|u| u > 900_000), "{disk:?}");
        assert!(disk.alarm().is_some_and(|a| a.contains("将满")));
        assert_eq!(storage.admit_scan(SystemTime::now()), Ok(()));

        // A disk full for this terminal (a bound just above the waiting page).
        let mut small = cfg.clone();
        small.storage.max_bytes = 250_000;
        let storage = Storage::new(&small);
        let r = storage.check(SystemTime::now());
        assert_eq!(r.level, DiskLevel::Full, "the waiting page alone is over the bound");
        assert!(r.deleted_bytes >= 600_000, "{r:?}");
        assert!(std::fs::read_dir(&rec).expect("dir").next().is_none(), "the recordings went");
        assert!(spool.rejected().is_empty(), "the refused page went");
        assert_eq!(spool.list(), vec![waiting.clone()], "the page not yet acknowledged stays");
        assert!(spool.content_path(&waiting).exists());
        assert_eq!(storage.admit_scan(SystemTime::now()), Err(FULL_TEXT));

        // A bound of 0 (hostile; the configuration refuses it): full, the page still kept.
        let mut zero = cfg;
        zero.storage.max_bytes = 0;
        assert_eq!(Storage::new(&zero).admit_scan(SystemTime::now()), Err(FULL_TEXT));
        assert_eq!(spool.list(), vec![waiting]);
    }

    #[test]
    fn a_part_still_being_written_is_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let (mut cfg, _spool, _waiting, rec) = terminal(dir.path(), 1 << 20);
        let live = rec.join("b-camera-0-0.ivf");
        std::fs::write(&live, vec![4u8; 100_000]).expect("write");
        cfg.storage.max_bytes = 2 << 20;
        cfg.storage.min_free_bytes = u64::MAX / 2; // the file system is "full" for this bound
        let r = Storage::new(&cfg).check(SystemTime::now());
        assert_eq!(r.level, DiskLevel::Full);
        assert!(live.exists(), "the live part is kept");
        assert_eq!(std::fs::read_dir(&rec).expect("dir").count(), 1);
    }
}
