//! Splitting an XML byte stream into records: the bytes of each record element, from its
//! start tag to its end tag, with the byte offset where it starts.
//!
//! Only the tokenizer runs here (quick-xml, with end-name checks off), so the reader thread
//! stays cheap; each record is parsed and checked in full by the workers (`dom`). Nesting is
//! counted on the record element's own name only, so a record whose inner tags do not
//! balance still ends at its own end tag and the records after it are unaffected. A
//! tokenizer error inside a record makes that record bad and reading goes on after it; a
//! stream that ends inside a record (a truncated file) makes that last record bad.

use std::io::{self, BufRead, Read};

use quick_xml::events::Event;
use quick_xml::Reader;

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    /// A record's bytes, starting at `offset`.
    Record {
        /// Byte offset of the record's `<` in the stream.
        offset: u64,
        /// The record element, start tag to end tag.
        bytes: Vec<u8>,
    },
    /// A record that cannot be cut out of the stream.
    Bad {
        /// Byte offset of the record's start (or of the error, outside a record).
        offset: u64,
        /// Why.
        message: String,
    },
}

/// A reader that keeps every byte consumed since `base`, so a record's raw bytes can be cut
/// out after the tokenizer has gone past them.
struct Tee<R> {
    inner: R,
    captured: Vec<u8>,
    /// Stream offset of `captured[0]`.
    base: u64,
}

impl<R> Tee<R> {
    fn consumed(&self) -> u64 {
        self.base + self.captured.len() as u64
    }

    /// Forgets the bytes before stream offset `offset`.
    fn forget_before(&mut self, offset: u64) {
        let n = (offset.saturating_sub(self.base) as usize).min(self.captured.len());
        self.captured.drain(..n);
        self.base += n as u64;
    }
}

impl<R: BufRead> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.captured.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tee<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // `consume` follows a `fill_buf` whose bytes are still buffered, so this cannot fail
        // or read.
        if let Ok(buf) = self.inner.fill_buf() {
            let n = amt.min(buf.len());
            self.captured.extend_from_slice(&buf[..n]);
        }
        self.inner.consume(amt);
    }
}

/// Bytes kept before the next event outside a record: the `<` of a start tag may have been
/// consumed with the text before it.
const KEEP_OUTSIDE: usize = 64 * 1024;

/// Splits a stream into record pieces.
pub(super) struct Splitter<R> {
    reader: Reader<Tee<R>>,
    record: Vec<u8>,
    buf: Vec<u8>,
    /// The open record: its start offset and the nesting of its element name.
    open: Option<(u64, usize)>,
    /// Stream offset of the last error, to stop if the tokenizer cannot get past it.
    last_error: Option<u64>,
    done: bool,
}

impl<R: BufRead> Splitter<R> {
    /// Splits `input` into elements named `record` (compared on the local name, so a prefix
    /// is ignored).
    pub(super) fn new(input: R, record: &str) -> Self {
        let mut reader = Reader::from_reader(Tee {
            inner: input,
            captured: Vec::new(),
            base: 0,
        });
        let config = reader.config_mut();
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        config.expand_empty_elements = false;
        Splitter {
            reader,
            record: record.as_bytes().to_vec(),
            buf: Vec::new(),
            open: None,
            last_error: None,
            done: false,
        }
    }

    /// The next piece, `Ok(None)` at the end, or the I/O error that ends the stream.
    pub(super) fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        while !self.done {
            if self.open.is_none() {
                let tee = self.reader.get_mut();
                if tee.captured.len() > 2 * KEEP_OUTSIDE {
                    let keep_from = tee.consumed() - KEEP_OUTSIDE as u64;
                    tee.forget_before(keep_from);
                }
            }
            self.buf.clear();
            let event = self.reader.read_event_into(&mut self.buf);
            let consumed = self.reader.get_ref().consumed();
            match event {
                Err(quick_xml::Error::Io(e)) => {
                    self.done = true;
                    return Err(io::Error::new(e.kind(), e.to_string()));
                }
                Err(e) => {
                    if self.last_error == Some(consumed) {
                        // The tokenizer does not get past it: the rest cannot be read.
                        self.done = true;
                    }
                    self.last_error = Some(consumed);
                    let offset = match self.open.take() {
                        Some((start, _)) => start,
                        None => consumed,
                    };
                    return Ok(Some(Piece::Bad {
                        offset,
                        message: format!("not well-formed XML: {e}"),
                    }));
                }
                Ok(Event::Eof) => {
                    self.done = true;
                    if let Some((start, _)) = self.open.take() {
                        return Ok(Some(Piece::Bad {
                            offset: start,
                            message: format!(
                                "the input ends inside <{}> (truncated?)",
                                String::from_utf8_lossy(&self.record)
                            ),
                        }));
                    }
                }
                Ok(Event::Start(e)) if e.local_name().as_ref() == self.record => {
                    match &mut self.open {
                        Some((_, depth)) => *depth += 1,
                        None => {
                            let start = consumed.saturating_sub(e.len() as u64 + 2);
                            self.open = Some((start, 1));
                        }
                    }
                }
                Ok(Event::Empty(e)) if e.local_name().as_ref() == self.record => {
                    if self.open.is_none() {
                        let start = consumed.saturating_sub(e.len() as u64 + 3);
                        return Ok(Some(self.cut(start, consumed)));
                    }
                }
                Ok(Event::End(e)) if e.local_name().as_ref() == self.record => {
                    if let Some((start, depth)) = &mut self.open {
                        *depth -= 1;
                        if *depth == 0 {
                            let start = *start;
                            self.open = None;
                            return Ok(Some(self.cut(start, consumed)));
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        Ok(None)
    }

    /// The bytes from `start` to `end` as a record, forgetting everything before `end`.
    fn cut(&mut self, start: u64, end: u64) -> Piece {
        let tee = self.reader.get_mut();
        let piece = if start < tee.base || end > tee.consumed() {
            Piece::Bad {
                offset: start,
                message: "the record's start tag is too long to keep".into(),
            }
        } else {
            let from = (start - tee.base) as usize;
            let to = (end - tee.base) as usize;
            Piece::Record {
                offset: start,
                bytes: tee.captured[from..to].to_vec(),
            }
        };
        tee.forget_before(end);
        piece
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &[u8], record: &str) -> Vec<Piece> {
        let mut s = Splitter::new(text, record);
        let mut out = Vec::new();
        while let Some(p) = s.next_piece().unwrap() {
            out.push(p);
        }
        out
    }

    fn rec(offset: u64, bytes: &str) -> Piece {
        Piece::Record {
            offset,
            bytes: bytes.as_bytes().to_vec(),
        }
    }

    #[test]
    fn cuts_records_with_their_offsets() {
        let text = "<?xml version=\"1.0\"?>\n<orders>\n  <order id=\"1\"><a>x</a></order>\n  <o:order id=\"2\"/>\n<order><order>in</order><![CDATA[</order>]]></order></orders>";
        let got = split(text.as_bytes(), "order");
        let first = text.find("<order id").unwrap() as u64;
        let second = text.find("<o:order").unwrap() as u64;
        let third = text.rfind("<order><order>").unwrap() as u64;
        assert_eq!(
            got,
            vec![
                rec(first, "<order id=\"1\"><a>x</a></order>"),
                rec(second, "<o:order id=\"2\"/>"),
                rec(
                    third,
                    "<order><order>in</order><![CDATA[</order>]]></order>"
                ),
            ]
        );
    }

    #[test]
    fn unbalanced_inner_tags_stay_in_their_record_and_truncation_is_named() {
        let text = "<r><order><a></order><order><b/></order><order><c>";
        let got = split(text.as_bytes(), "order");
        assert_eq!(got[0], rec(3, "<order><a></order>"));
        assert_eq!(got[1], rec(21, "<order><b/></order>"));
        assert_eq!(
            got[2],
            Piece::Bad {
                offset: 40,
                message: "the input ends inside <order> (truncated?)".into()
            }
        );
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn a_byte_order_mark_counts_in_offsets() {
        let text = b"\xEF\xBB\xBF<order>1</order>";
        assert_eq!(split(text, "order"), vec![rec(3, "<order>1</order>")]);
    }
}
