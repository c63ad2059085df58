//! Peak memory of the processes named by `--watch-pid`, sampled from
//! `/proc/PID/status` while the run goes on. `VmHWM` is the kernel's own
//! high-water mark of the resident set, so a peak between samples is not
//! missed; sampling keeps the last value seen should the process exit.
//! Also the CPU time each used during the ingest (`/proc/PID/stat`): on a
//! machine whose speed varies from run to run, CPU per envelope compares
//! two builds more steadily than rates do.

use super::report::ProcessMemory;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A `kB` field of `/proc/PID/status`, e.g. `VmHWM`.
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field) && line[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// User plus system CPU time of `pid` so far, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command, which is in parentheses and may hold spaces:
    // state is field 3, utime 14 and stime 15, in USER_HZ (100 on Linux).
    let after_command = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some((ticks(14)? + ticks(15)?) as f64 / 100.0)
}

fn command_of(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> =
        cmdline.split(|&b| b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    if words.is_empty() {
        "(unknown)".to_owned()
    } else {
        words.join(" ")
    }
}

/// Samples the watched processes in the background until [`Self::finish`].
pub struct MemoryWatch {
    samples: Arc<Mutex<Vec<ProcessMemory>>>,
    stop_tx: watch::Sender<bool>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

impl MemoryWatch {
    pub fn start(pids: &[u32]) -> Self {
        let samples: Vec<ProcessMemory> = pids
            .iter()
            .map(|&pid| ProcessMemory {
                pid,
                command: command_of(pid),
                peak_rss_at_start_kib: status_field(pid, "VmHWM"),
                peak_rss_kib: status_field(pid, "VmHWM"),
                rss_at_end_kib: status_field(pid, "VmRSS"),
                alive_at_end: true,
                ingest_cpu_seconds: None,
            })
            .collect();
        let samples = Arc::new(Mutex::new(samples));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let sampler = (!pids.is_empty()).then(|| {
            let samples = samples.clone();
            tokio::spawn(async move {
                loop {
                    sample(&samples);
                    tokio::select! {
                        _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                        _ = stop_rx.changed() => return,
                    }
                }
            })
        });
        Self { samples, stop_tx, sampler }
    }

    /// Each process's CPU time so far, to pass to [`Self::ingest_ended`].
    pub fn cpu_now(&self) -> Vec<Option<f64>> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.iter().map(|process| cpu_seconds(process.pid)).collect()
    }

    /// Records the CPU time each process used since `began` ([`Self::cpu_now`]).
    pub fn ingest_ended(&self, began: &[Option<f64>]) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        for (process, began) in samples.iter_mut().zip(began) {
            process.ingest_cpu_seconds = began.zip(cpu_seconds(process.pid)).map(|(began, now)| now - began);
        }
    }

    /// Takes a last sample and returns what was seen.
    pub async fn finish(mut self) -> Vec<ProcessMemory> {
        let _ = self.stop_tx.send(true);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.await;
        }
        sample(&self.samples);
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.clone()
    }
}

fn sample(samples: &Mutex<Vec<ProcessMemory>>) {
    let mut samples = samples.lock().unwrap_or_else(PoisonError::into_inner);
    for process in samples.iter_mut() {
        let (peak, rss) = (status_field(process.pid, "VmHWM"), status_field(process.pid, "VmRSS"));
        process.alive_at_end = peak.is_some();
        if peak.is_some() {
            process.peak_rss_kib = process.peak_rss_kib.max(peak);
            process.rss_at_end_kib = rss;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_time_of_a_process_grows_as_it_works() {
        let pid = std::process::id();
        let before = cpu_seconds(pid).expect("this process has a stat file");
        let began = std::time::Instant::now();
        let mut x = 0u64;
        while began.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = cpu_seconds(pid).unwrap();
        assert!(after - before >= 0.1, "300 ms of spinning took {:.2} s of CPU", after - before);
        assert_eq!(cpu_seconds(u32::MAX), None, "no such process");
    }
}
