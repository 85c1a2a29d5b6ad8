//! FASTA records (plain or gzip) through needletail, and their one-hot encoding.

use crate::error::{Error, Result};
use crate::float::Float;
use ndarray::{Array2, Array3, Axis};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// One FASTA record: its name and its letters, the lines of a multi-line record joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastaRecord {
    /// The header's first word (what follows `>` up to the first space or tab), as samtools
    /// faidx names a sequence.
    pub name: String,
    /// The letters as read (case kept; line breaks removed).
    pub sequence: Vec<u8>,
}

impl FastaRecord {
    /// A record from a name and its letters.
    pub fn new(name: impl Into<String>, sequence: impl Into<Vec<u8>>) -> FastaRecord {
        FastaRecord {
            name: name.into(),
            sequence: sequence.into(),
        }
    }

    /// The record one-hot encoded, `[4, L]`, as [`one_hot`], naming this record in errors.
    ///
    /// # Errors
    /// [`Error::InvalidBase`] naming the record and the position of the first letter that is
    /// not A, C, G, T or N.
    pub fn one_hot<F: Float>(&self) -> Result<Array2<F>> {
        encode(&self.name, &self.sequence)
    }
}

/// A streaming FASTA reader: records one at a time ([`Iterator`]) or in batches
/// ([`FastaReader::next_batch`]), in memory bounded by the longest record.
///
/// A gzip-compressed file (also several gzip members one after another, as `bgzip` writes) is
/// recognised by its first two bytes `1f 8b`, whatever the file's name. FASTQ input is read
/// too (its qualities are ignored).
pub struct FastaReader {
    file: String,
    records: Option<Box<dyn needletail::FastxReader>>,
    index: usize,
}

impl std::fmt::Debug for FastaReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastaReader")
            .field("file", &self.file)
            .field("records read", &self.index)
            .finish()
    }
}

impl FastaReader {
    /// Opens a FASTA file, plain or gzip.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be opened; [`Error::SequenceFile`] if it is empty or
    /// does not start like a FASTA file.
    pub fn open(path: impl AsRef<Path>) -> Result<FastaReader> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        FastaReader::with_name(file, &path.display().to_string())
    }

    /// Reads FASTA from any byte stream (a file, standard input, a byte slice), named
    /// `"<reader>"` in errors.
    ///
    /// # Errors
    /// [`Error::SequenceFile`] if the stream is empty or does not start like a FASTA file.
    pub fn new(reader: impl Read + Send + 'static) -> Result<FastaReader> {
        FastaReader::with_name(reader, "<reader>")
    }

    fn with_name(reader: impl Read + Send + 'static, file: &str) -> Result<FastaReader> {
        let records = needletail::parse_fastx_reader(reader).map_err(|e| parse_error(file, 0, &e))?;
        Ok(FastaReader {
            file: file.to_string(),
            records: Some(records),
            index: 0,
        })
    }

    /// Up to `n` next records (fewer at the end of the file, none after it).
    ///
    /// # Errors
    /// As the iterator: [`Error::SequenceFile`] for a malformed or truncated record.
    pub fn next_batch(&mut self, n: usize) -> Result<Vec<FastaRecord>> {
        self.by_ref().take(n).collect()
    }
}

impl Iterator for FastaReader {
    type Item = Result<FastaRecord>;

    fn next(&mut self) -> Option<Result<FastaRecord>> {
        let records = self.records.as_mut()?;
        let item = match records.next()? {
            Ok(record) => {
                let id = record.id();
                let word = id.split(|b| *b == b' ' || *b == b'\t').next().unwrap_or_default();
                Ok(FastaRecord {
                    name: String::from_utf8_lossy(word).into_owned(),
                    sequence: record.seq().into_owned(),
                })
            }
            Err(e) => Err(parse_error(&self.file, self.index, &e)),
        };
        self.index += 1;
        if item.is_err() {
            // needletail may not move past a bad record: stop here
            self.records = None;
        }
        Some(item)
    }
}

fn parse_error(file: &str, index: usize, e: &needletail::errors::ParseError) -> Error {
    let location = match &e.position.id {
        Some(id) => format!("record {} ({id}) at line {}", index + 1, e.position.line),
        None => format!("record {} at line {}", index + 1, e.position.line),
    };
    Error::SequenceFile {
        file: file.to_string(),
        location,
        reason: format!("{:?}: {}", e.kind, e.msg),
    }
}

/// Reads every record of a FASTA file (plain or gzip); see [`FastaReader`] to stream.
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened; [`Error::SequenceFile`] for an empty file or a
/// malformed or truncated record, naming the record.
pub fn read_fasta(path: impl AsRef<Path>) -> Result<Vec<FastaRecord>> {
    FastaReader::open(path)?.collect()
}

/// One-hot encodes DNA letters as `[4, L]` in A, C, G, T order: upper and lower case alike,
/// `N`/`n` an all-zero column.
///
/// ```
/// use relevance::genomics::io::one_hot;
/// # fn main() -> relevance::Result<()> {
/// let x = one_hot::<f32>(b"ACgtN")?;
/// assert_eq!(x.shape(), &[4, 5]);
/// assert_eq!(x.column(2).to_vec(), vec![0.0, 0.0, 1.0, 0.0]); // g
/// assert_eq!(x.column(4).sum(), 0.0); // N
/// assert!(one_hot::<f32>(b"ACGU").is_err());
/// # Ok(()) }
/// ```
///
/// # Shapes
/// `seq` of length L gives `[4, L]`.
///
/// # Errors
/// [`Error::InvalidBase`] (record `"sequence"`) at the first letter that is not A, C, G, T or
/// N; use [`FastaRecord::one_hot`] to name the record.
pub fn one_hot<F: Float>(seq: &[u8]) -> Result<Array2<F>> {
    encode("sequence", seq)
}

fn encode<F: Float>(name: &str, seq: &[u8]) -> Result<Array2<F>> {
    let mut out = Array2::<F>::zeros((4, seq.len()));
    for (position, &letter) in seq.iter().enumerate() {
        let row = match letter {
            b'A' | b'a' => 0,
            b'C' | b'c' => 1,
            b'G' | b'g' => 2,
            b'T' | b't' => 3,
            b'N' | b'n' => continue,
            _ => {
                return Err(Error::InvalidBase {
                    record: name.to_string(),
                    position,
                    letter: char::from(letter),
                })
            }
        };
        out[[row, position]] = F::one();
    }
    Ok(out)
}

/// One-hot encodes records of equal length as a batch `[N, 4, L]`, the input of a sequence
/// network (see [`one_hot`]).
///
/// # Shapes
/// N records of length L give `[N, 4, L]`.
///
/// # Errors
/// [`Error::EmptyBatch`] for no record; [`Error::SequenceFile`] naming the first record whose
/// length differs from the first one's; [`Error::InvalidBase`] naming the record and position
/// of a letter that is not A, C, G, T or N.
pub fn one_hot_batch<F: Float>(records: &[FastaRecord]) -> Result<Array3<F>> {
    let first = records.first().ok_or(Error::EmptyBatch)?;
    let len = first.sequence.len();
    if let Some(r) = records.iter().find(|r| r.sequence.len() != len) {
        return Err(Error::SequenceFile {
            file: "batch".into(),
            location: format!("record {}", r.name),
            reason: format!(
                "length {} differs from the first record's ({}, {len}): a batch needs equal lengths",
                r.sequence.len(),
                first.name
            ),
        });
    }
    let mut out = Array3::<F>::zeros((records.len(), 4, len));
    for (mut slot, record) in out.axis_iter_mut(Axis(0)).zip(records) {
        slot.assign(&record.one_hot::<F>()?);
    }
    Ok(out)
}
