//! How much CPU other processes took while we were timing: the machine's busy time from
//! `/proc/stat` minus this process's own from `/proc/self/stat`, over the same interval, as a
//! share of all CPUs. A share well above zero means the latencies include waiting for the CPU,
//! so the harness flags the measurement. Linux only; elsewhere nothing is measured.

/// A reading of the machine's and this process's CPU counters (clock ticks).
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    machine_busy: u64,
    machine_total: u64,
    own: u64,
}

/// Share of machine capacity used by other processes above which a timing is flagged.
pub const OTHER_CPU_SHARE_LIMIT: f64 = 0.10;

impl CpuSnapshot {
    /// The counters now, or `None` where `/proc` is not available.
    pub fn now() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice" (proc(5)); guest
        // time is already counted in user/nice, so it is left out.
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let idle = fields.get(3)? + fields.get(4)?;
        let total: u64 = fields.iter().sum();
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15
        // (1-based) of the whole line, i.e. 12 and 13 after the name (proc(5)).
        let after_name = own_stat.rsplit_once(')')?.1;
        let rest: Vec<&str> = after_name.split_whitespace().collect();
        let own = rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
        Some(CpuSnapshot {
            machine_busy: total - idle,
            machine_total: total,
            own,
        })
    }

    /// The share (0..1) of the machine's CPU capacity that other processes used since `self`.
    pub fn other_share_since(&self, later: &CpuSnapshot) -> Option<f64> {
        let total = later.machine_total.checked_sub(self.machine_total)?;
        if total == 0 {
            return None;
        }
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let own = later.own.saturating_sub(self.own);
        Some(busy.saturating_sub(own) as f64 / total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_a_fraction_and_own_work_is_not_counted_as_others() {
        let Some(before) = CpuSnapshot::now() else {
            return; // not Linux
        };
        // Keep this thread busy for a while; it is "own" time.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = CpuSnapshot::now().unwrap();
        let share = before.other_share_since(&after).unwrap();
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
}
