//! How Python payloads travel through the engine: this module owns the payload type, the
//! lists a handler call receives, and reading a payload back (dead letters).
//!
//! A payload stays a Python object, never serialised. One pushed alone (`push`) is its own
//! shared reference. Payloads pushed in bulk (`push_many`) are not wrapped one by one: each
//! chunk becomes one Python list of the engine's own (a copy of the references, built with
//! the GIL held once per chunk) and each item holds that list and its position in it. A
//! handler call then turns the batch into [`Pieces`], runs of consecutive positions of one
//! list (without the GIL, a pointer compare per item), and builds its argument from them
//! with a slice per run: a batch cut from one or two chunks costs two C-level list copies,
//! not a Python operation per item.

use std::sync::Arc;

use ferry_core::Batch;
use pyo3::prelude::*;
use pyo3::types::PyList;

/// A payload: a Python object shared without the GIL (cloning an `Arc` needs none).
#[derive(Clone)]
pub(crate) enum Payload {
    /// A payload pushed alone.
    One(Arc<Py<PyAny>>),
    /// Position `at` of a chunk pushed in bulk.
    InChunk {
        /// The chunk: a list of the engine's own, never handed to user code.
        chunk: Arc<Py<PyList>>,
        /// The position in it (a chunk holds far fewer than 2^32 payloads).
        at: u32,
    },
}

impl Payload {
    /// The Python object.
    pub(crate) fn bind<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Payload::One(p) => Ok(p.bind(py).clone()),
            Payload::InChunk { chunk, at } => chunk.bind(py).get_item(*at as usize),
        }
    }

    /// Whether the payload came in a chunk (its key is then its index).
    pub(crate) fn in_chunk(&self) -> bool {
        matches!(self, Payload::InChunk { .. })
    }
}

/// One run of a batch's payloads.
enum Piece {
    One(Arc<Py<PyAny>>),
    /// Positions `start..end` of a chunk.
    Slice(Arc<Py<PyList>>, usize, usize),
}

/// A batch's payloads as runs, in the batch's order; built without the GIL.
pub(crate) struct Pieces {
    pieces: Vec<Piece>,
    len: usize,
}

impl Pieces {
    /// The runs of `batch`: consecutive positions of one chunk make one run.
    pub(crate) fn of(batch: &Batch<Payload>) -> Self {
        let mut pieces: Vec<Piece> = Vec::new();
        for p in batch.payloads() {
            match p {
                Payload::One(obj) => pieces.push(Piece::One(Arc::clone(obj))),
                Payload::InChunk { chunk, at } => {
                    let at = *at as usize;
                    match pieces.last_mut() {
                        Some(Piece::Slice(c, _, end)) if *end == at && Arc::ptr_eq(c, chunk) => {
                            *end += 1;
                        }
                        _ => pieces.push(Piece::Slice(Arc::clone(chunk), at, at + 1)),
                    }
                }
            }
        }
        Pieces {
            pieces,
            len: batch.len(),
        }
    }

    /// How many payloads.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The payloads as a new Python list (the handler's argument).
    pub(crate) fn to_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut out: Option<Bound<'py, PyList>> = None;
        for piece in &self.pieces {
            match piece {
                Piece::Slice(chunk, start, end) => {
                    let part = chunk.bind(py).get_slice(*start, *end);
                    match &out {
                        None => out = Some(part),
                        Some(list) => {
                            list.as_sequence().in_place_concat(part.as_sequence())?;
                        }
                    }
                }
                Piece::One(obj) => {
                    out.get_or_insert_with(|| PyList::empty(py))
                        .append(obj.bind(py))?;
                }
            }
        }
        Ok(out.unwrap_or_else(|| PyList::empty(py)))
    }
}
