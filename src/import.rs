//! `pm import FILE`: submits the envelopes of a file of JSON lines (one
//! `MessageEnvelopeInput` a line, as `pm assert --envelope-out` writes) with
//! `sendMessages`, a batch a request, with a progress bar; prints each
//! refusal with its line number and a summary by outcome.

use crate::client::GatewayClient;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// Envelopes one `sendMessages` takes at most (the gateway's bound).
pub const MAX_BATCH: usize = 100;
/// A request's envelopes stop growing past this many bytes of JSON, well
/// inside the gateway's request limit (4 MiB by default).
const MAX_BATCH_BYTES: usize = 2 << 20;

const SEND_MANY: &str = "mutation($e: [MessageEnvelopeInput!]!) { \
    sendMessages(envelopes: $e) { envelope { messageHash } refusal { code error } } }";

/// How the envelopes of a file fared.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub accepted: usize,
    /// Refusals by code; a line that is not a JSON object counts as
    /// `MALFORMED_ENVELOPE` without being sent.
    pub refused: BTreeMap<String, usize>,
}

impl ImportSummary {
    pub fn refused_total(&self) -> usize {
        self.refused.values().sum()
    }
}

/// One envelope to send: its line number and JSON.
struct Line {
    number: usize,
    envelope: Value,
    bytes: usize,
}

/// Reads `file`, sends its envelopes `batch` at a time and reports; fails
/// (exit 1) when any envelope was refused.
pub async fn import(url: &str, file: &Path, batch: usize) -> anyhow::Result<()> {
    if !(1..=MAX_BATCH).contains(&batch) {
        bail!("--batch must be 1 to {MAX_BATCH}");
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let started = Instant::now();
    let summary = send_lines(&GatewayClient::new(url), &text, batch).await?;
    let total = summary.accepted + summary.refused_total();
    let seconds = started.elapsed().as_secs_f64();
    let by_code: Vec<String> = summary.refused.iter().map(|(code, n)| format!("{code} {n}")).collect();
    println!(
        "imported {}: {total} envelopes, {} accepted, {} refused{} in {seconds:.1} s ({:.0}/s)",
        file.display(),
        summary.accepted,
        summary.refused_total(),
        if by_code.is_empty() { String::new() } else { format!(" ({})", by_code.join(", ")) },
        total as f64 / seconds.max(1e-9),
    );
    if summary.refused_total() > 0 {
        bail!("{} of {total} envelopes were refused", summary.refused_total());
    }
    Ok(())
}

async fn send_lines(client: &GatewayClient, text: &str, batch: usize) -> anyhow::Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let mut pending: Vec<Line> = Vec::new();
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty()).collect();
    let bar = ProgressBar::new(lines.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} envelopes, {per_sec}, {eta} left")
            .expect("the template is valid"),
    );
    for (number, line) in lines {
        match serde_json::from_str::<Value>(line) {
            Ok(envelope @ Value::Object(_)) => {
                let bytes = line.len();
                let full =
                    pending.len() == batch || pending.iter().map(|l| l.bytes).sum::<usize>() + bytes > MAX_BATCH_BYTES;
                if full && !pending.is_empty() {
                    send_batch(client, std::mem::take(&mut pending), &mut summary, &bar).await?;
                }
                pending.push(Line { number, envelope, bytes });
            }
            _ => {
                refused(&mut summary, &bar, number, "MALFORMED_ENVELOPE", "the line is not a JSON object");
                bar.inc(1);
            }
        }
    }
    if !pending.is_empty() {
        send_batch(client, pending, &mut summary, &bar).await?;
    }
    bar.finish_and_clear();
    Ok(summary)
}

async fn send_batch(
    client: &GatewayClient,
    lines: Vec<Line>,
    summary: &mut ImportSummary,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let envelopes: Vec<&Value> = lines.iter().map(|l| &l.envelope).collect();
    let first = lines[0].number;
    let data = match client.query(SEND_MANY, json!({ "e": envelopes })).await {
        Ok(data) => data,
        // The whole request was refused (an envelope GraphQL itself rejects,
        // such as a missing field, refuses every envelope of its request):
        // send them one by one, so that each gets its own answer.
        Err(_) if lines.len() > 1 => {
            for line in lines {
                Box::pin(send_batch(client, vec![line], summary, bar)).await?;
            }
            return Ok(());
        }
        Err(error) => {
            let text = error.to_string();
            let (code, sentence) = text.split_once(": ").unwrap_or(("ERROR", text.as_str()));
            if code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                refused(summary, bar, first, code, sentence);
                bar.inc(1);
                return Ok(());
            }
            return Err(error).context(format!("sending the envelope of line {first}"));
        }
    };
    let results = data["sendMessages"].as_array().context("the gateway gave no sendMessages results")?;
    if results.len() != lines.len() {
        bail!("the gateway answered {} results for {} envelopes", results.len(), lines.len());
    }
    for (line, result) in lines.iter().zip(results) {
        match &result["refusal"] {
            Value::Null => summary.accepted += 1,
            refusal => refused(
                summary,
                bar,
                line.number,
                refusal["code"].as_str().unwrap_or("ERROR"),
                refusal["error"].as_str().unwrap_or(""),
            ),
        }
    }
    bar.inc(lines.len() as u64);
    Ok(())
}

fn refused(summary: &mut ImportSummary, bar: &ProgressBar, line: usize, code: &str, sentence: &str) {
    *summary.refused.entry(code.to_owned()).or_default() += 1;
    bar.suspend(|| eprintln!("line {line}: {code}: {sentence}"));
}
