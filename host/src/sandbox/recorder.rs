//! A run's event log as it is written: sequence numbers, the event and
//! output budgets, and masking of secret values.

use super::fault::RunFault;
use crate::store::Progress;
use crate::types::{BudgetKind, Event, EventBody, OutputStream, now};
/// Program output is split into events at newlines, or at this many bytes.
const MAX_LINE: usize = 8 * 1024;
const MASK: &str = "********";
/// How much of the end of stderr a trap message quotes.
const STDERR_TAIL: usize = 2048;

/// Replaces every secret value the run has read with `********`.
#[derive(Default)]
pub(crate) struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    pub(crate) fn add(&mut self, value: &str) {
        if !value.is_empty() && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_owned());
            // Longest first, so a secret that contains another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// Masks every string and object key in `v`, to any depth (guest
    /// values are admitted at most `ingress::MAX_DEPTH` deep).
    pub(crate) fn mask_value(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        if self.secrets.is_empty() {
            return;
        }
        match v {
            Value::String(s) if self.secrets.iter().any(|x| s.contains(x.as_str())) => {
                *s = self.mask(s);
            }
            Value::Array(items) => items.iter_mut().for_each(|i| self.mask_value(i)),
            Value::Object(map) => {
                if map
                    .keys()
                    .any(|k| self.secrets.iter().any(|x| k.contains(x.as_str())))
                {
                    let old = std::mem::take(map);
                    for (k, v) in old {
                        map.insert(self.mask(&k), v);
                    }
                }
                map.values_mut().for_each(|i| self.mask_value(i));
            }
            _ => {}
        }
    }

    /// Where output may be cut at `cut` without splitting a secret value:
    /// `cut`, or the start of an occurrence that spans it (every secret
    /// that starts before `cut` lies wholly in `buf`, see `Recorder::output`).
    fn safe_cut(&self, buf: &[u8], cut: usize) -> usize {
        let mut best = cut;
        for s in &self.secrets {
            let s = s.as_bytes();
            let from = cut.saturating_sub(s.len() - 1);
            let to = (cut + s.len()).min(buf.len());
            if let Some(i) = buf[from..to].windows(s.len()).position(|w| w == s) {
                let start = from + i;
                if start < cut && start + s.len() > cut {
                    best = best.min(start);
                }
            }
        }
        if best == 0 { cut } else { best }
    }

    /// The longest secret, in bytes: output keeps this much back between
    /// chunks so a secret split across two writes is still masked.
    fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }
}

pub(crate) struct Recorder {
    next_seq: u64,
    pending: Vec<Event>,
    /// Events the guest caused (logs, custom, output, artifacts).
    guest_events: u64,
    /// Bytes of stdout, stderr, log messages, custom payloads and the result.
    output_bytes: u64,
    max_events: u64,
    max_output_bytes: u64,
    pub(crate) masker: Masker,
    line: [Vec<u8>; 2],
    /// The end of stderr, to explain a trap (a Rust panic prints there).
    pub(crate) stderr_tail: String,
    /// The first fault raised in this run.
    pub(crate) fault: Option<RunFault>,
    /// Raw bytes of each output stream turned into events so far.
    emitted: [u64; 2],
    /// Raw bytes of each stream an earlier execution already recorded:
    /// a replay counts them again but does not repeat their events.
    recorded: [u64; 2],
}

impl Recorder {
    pub(crate) fn new(progress: Progress, max_events: u64, max_output_bytes: u64) -> Self {
        Recorder {
            next_seq: progress.next_seq,
            emitted: [0; 2],
            recorded: progress.output,
            pending: Vec::new(),
            guest_events: 0,
            output_bytes: 0,
            max_events,
            max_output_bytes,
            masker: Masker::default(),
            line: [Vec::new(), Vec::new()],
            stderr_tail: String::new(),
            fault: None,
        }
    }

    /// Records `fault` unless an earlier one is already recorded; returns
    /// the error to trap with.
    pub(crate) fn fail(&mut self, fault: RunFault) -> wasmtime::Error {
        let fault = self.fault.get_or_insert(fault).clone();
        wasmtime::Error::new(fault)
    }

    /// Appends an event the host writes (status changes); never budgeted.
    pub(crate) fn system(&mut self, body: EventBody) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(Event {
            seq,
            at: now(),
            body,
        });
    }

    /// Appends an event the guest caused, against `max_events`.
    pub(crate) fn guest(&mut self, body: EventBody) -> Result<(), RunFault> {
        if let Some(f) = &self.fault {
            return Err(f.clone());
        }
        if self.guest_events >= self.max_events {
            let fault = RunFault::Budget {
                budget: BudgetKind::MaxEvents,
                limit: self.max_events,
                used: self.guest_events + 1,
            };
            self.fault = Some(fault.clone());
            return Err(fault);
        }
        self.guest_events += 1;
        self.system(body);
        Ok(())
    }

    /// Counts a guest event a replay answered from the journal: charged
    /// again, so usage and budgets are the same however often a run resumes,
    /// but not written again.
    pub(crate) fn replayed(&mut self, output_bytes: usize) {
        self.guest_events += 1;
        self.output_bytes = self.output_bytes.saturating_add(output_bytes as u64);
    }

    /// Whether `n` more bytes of output stay within `max_output_bytes`.
    pub(crate) fn output_fits(&self, n: usize) -> bool {
        self.fault.is_none() && self.output_bytes.saturating_add(n as u64) <= self.max_output_bytes
    }

    /// Counts `n` bytes the guest produced against `max_output_bytes`.
    pub(crate) fn charge_output(&mut self, n: usize) -> Result<(), RunFault> {
        if let Some(f) = &self.fault {
            return Err(f.clone());
        }
        let used = self.output_bytes.saturating_add(n as u64);
        if used > self.max_output_bytes {
            let fault = RunFault::Budget {
                budget: BudgetKind::MaxOutputBytes,
                limit: self.max_output_bytes,
                used,
            };
            self.fault = Some(fault.clone());
            return Err(fault);
        }
        self.output_bytes = used;
        Ok(())
    }

    /// Program output: buffered into line events, masked, budgeted.
    pub(crate) fn output(&mut self, stream: OutputStream, bytes: &[u8]) -> Result<(), RunFault> {
        self.charge_output(bytes.len())?;
        let i = stream as usize;
        self.line[i].extend_from_slice(bytes);
        let keep = self.masker.longest();
        loop {
            let buf = &self.line[i];
            let cut = match buf.iter().position(|&b| b == b'\n') {
                Some(nl) => nl + 1,
                None if buf.len() >= MAX_LINE + keep => self.masker.safe_cut(buf, buf.len() - keep),
                None => break,
            };
            let chunk: Vec<u8> = self.line[i].drain(..cut).collect();
            self.output_event(stream, &chunk)?;
        }
        Ok(())
    }

    /// Emits whatever output is still buffered (at the end of a run).
    pub(crate) fn finish_output(&mut self) {
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let rest = std::mem::take(&mut self.line[stream as usize]);
            if !rest.is_empty() {
                // Past the budget this is dropped; the fault already says why.
                let _ = self.output_event(stream, &rest);
            }
        }
    }

    fn output_event(&mut self, stream: OutputStream, chunk: &[u8]) -> Result<(), RunFault> {
        let i = stream as usize;
        self.emitted[i] += chunk.len() as u64;
        // Chunking is a pure function of the bytes, so a replay meets the
        // same chunks: this one is in the log already.
        let replayed = self.emitted[i] <= self.recorded[i];
        if replayed && stream == OutputStream::Stdout {
            self.guest_events += 1;
            return Ok(());
        }
        let text = String::from_utf8_lossy(chunk);
        let text = self.masker.mask(text.trim_end_matches('\n'));
        if stream == OutputStream::Stderr {
            // Kept on replay too: it explains a trap.
            self.stderr_tail.push_str(&text);
            self.stderr_tail.push('\n');
            if self.stderr_tail.len() > STDERR_TAIL {
                let mut cut = self.stderr_tail.len() - STDERR_TAIL;
                while !self.stderr_tail.is_char_boundary(cut) {
                    cut += 1;
                }
                self.stderr_tail.drain(..cut);
            }
        }
        if replayed {
            self.guest_events += 1;
            return Ok(());
        }
        self.guest(EventBody::ProgramOutput { stream, text })
    }

    pub(crate) fn usage(&self) -> (u64, u64) {
        (self.guest_events, self.output_bytes)
    }

    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Events not yet handed to the store.
    pub(crate) fn take_pending(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.pending)
    }

    /// Where the event log and output stand once everything taken so far
    /// is stored.
    pub(crate) fn mark(&self) -> crate::sandbox::journal::Mark {
        crate::sandbox::journal::Mark {
            event: self.next_seq - 1,
            output: [
                self.emitted[0].max(self.recorded[0]),
                self.emitted[1].max(self.recorded[1]),
            ],
        }
    }

    /// How much output is recorded as events, if that changed since the
    /// last call (written beside the events, for a later resume).
    pub(crate) fn output_progress(&mut self) -> Option<[u64; 2]> {
        let now = [
            self.emitted[0].max(self.recorded[0]),
            self.emitted[1].max(self.recorded[1]),
        ];
        (now != self.recorded).then(|| {
            self.recorded = now;
            now
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masker_hides_every_secret_longest_first() {
        let mut m = Masker::default();
        m.add("abc");
        m.add("abcdef");
        m.add("");
        assert_eq!(m.mask("x abcdef y abc"), format!("x {MASK} y {MASK}"));
        assert_eq!(m.mask("nothing here"), "nothing here");
    }
}
