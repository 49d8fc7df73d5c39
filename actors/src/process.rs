//! Process figures for the metrics endpoint (CPU time, resident memory, open files,
//! threads, start time), read from `/proc/self` once a second by a small task.

use std::time::Duration;

use crate::metrics as m;

/// Reads `/proc/self` and sets the process gauges. Returns false where `/proc` is missing.
pub fn sample() -> bool {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return false;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let ticks = clock_ticks();
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        metrics::gauge!(m::PROCESS_CPU_SECONDS_TOTAL).set((utime + stime) / ticks);
    }
    if let Some(threads) = field(20) {
        metrics::gauge!(m::PROCESS_THREADS).set(threads);
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time()) {
        metrics::gauge!(m::PROCESS_START_TIME_SECONDS).set(boot + start / ticks);
    }
    if let Some(pages) = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
    {
        metrics::gauge!(m::PROCESS_RESIDENT_MEMORY_BYTES).set(pages * page_size());
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        metrics::gauge!(m::PROCESS_OPEN_FDS).set(dir.count() as f64);
    }
    true
}

fn clock_ticks() -> f64 {
    // Linux reports /proc times in USER_HZ, which is 100 on every architecture it runs on.
    100.0
}

fn page_size() -> f64 {
    4096.0
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Samples once a second until the task is aborted.
pub async fn run() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !sample() {
            return;
        }
    }
}
