//! What waits for the writer: the lines ready to be stored, the lines to
//! mark `interrupted`, the high-water mark of numbers handed out, and the
//! shedding of the oldest waiting lines when the store has been away too
//! long.

use super::{Conversation, Line};

impl Conversation {
    /// Takes the lines ready to be written, in sequence order.
    pub fn take_ready(&mut self) -> Vec<Line> {
        let mut lines = std::mem::take(&mut self.ready);
        lines.sort_by_key(|l| l.sequence_number);
        if let Some(last) = lines.last() {
            self.handed_high = self.handed_high.max(last.sequence_number);
        }
        lines
    }

    /// Takes the numbers of lines already handed over that must become
    /// `interrupted`.
    pub fn take_interrupted(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.interrupted)
    }

    /// Puts lines back (the writer could not take them now); they go out
    /// with the next flush.
    pub fn restore_ready(&mut self, lines: Vec<Line>, interrupted: Vec<i64>) {
        self.ready.extend(lines);
        self.interrupted.extend(interrupted);
    }

    /// Bytes of text in lines waiting for the writer.
    pub fn backlog_bytes(&self) -> usize {
        self.ready.iter().map(|l| l.text.len()).sum()
    }

    /// Drops the oldest waiting lines until at most `max_bytes` of text
    /// wait, and returns their numbers. The numbers stay reserved (the
    /// high-water mark covers them), so finalizing records them as `lost`.
    pub fn shed_backlog(&mut self, max_bytes: usize) -> Vec<i64> {
        let mut bytes = self.backlog_bytes();
        if bytes <= max_bytes {
            return Vec::new();
        }
        self.ready.sort_by_key(|l| l.sequence_number);
        let mut shed = Vec::new();
        let mut keep = 0;
        for (i, line) in self.ready.iter().enumerate() {
            if bytes <= max_bytes {
                keep = i;
                break;
            }
            bytes -= line.text.len();
            shed.push(line.sequence_number);
            keep = i + 1;
        }
        self.ready.drain(..keep);
        self.unreported_high_water = self.unreported_high_water.max(shed.last().copied());
        shed
    }

    /// Gives back a high-water mark the writer could not take.
    pub fn restore_high_water(&mut self, high_water: Option<i64>) {
        self.unreported_high_water = self.unreported_high_water.max(high_water);
    }

    /// The highest sequence number handed out since the last call, if any:
    /// the store must learn it so a restart never reuses it.
    pub fn take_high_water(&mut self) -> Option<i64> {
        self.unreported_high_water.take()
    }
}
