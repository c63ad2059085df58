//! Peak memory of the processes named by `--watch-pid`, sampled from
//! `/proc/PID/status` while the run goes on. `VmHWM` is the kernel's own
//! high-water mark of the resident set, so a peak between samples is not
//! missed; sampling keeps the last value seen should the process exit.

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
