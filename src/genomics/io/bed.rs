//! BED regions, fixed-width windows around their centres, and a genome to cut them from.

use super::fasta::{FastaReader, FastaRecord};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// One region of a BED file: 0-based, half-open `[start, end)` on `chrom`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BedRegion {
    /// The chromosome (column 1).
    pub chrom: String,
    /// First base, 0-based (column 2).
    pub start: u64,
    /// One past the last base (column 3).
    pub end: u64,
    /// The name (column 4), if given and not `.`.
    pub name: Option<String>,
    /// The strand (column 6), `'+'` or `'-'`, if given and not `.`. Carried along only: the
    /// sequences are always read from the forward strand.
    pub strand: Option<char>,
    /// The summit's offset from `start` (narrowPeak column 10), if given and not -1.
    pub summit: Option<u64>,
    /// The line of the BED file (1-based) the region came from; 0 for a region made in code.
    pub line: usize,
}

impl BedRegion {
    /// A region `[start, end)` on `chrom`, without name, strand, summit or line.
    pub fn new(chrom: impl Into<String>, start: u64, end: u64) -> BedRegion {
        BedRegion {
            chrom: chrom.into(),
            start,
            end,
            name: None,
            strand: None,
            summit: None,
            line: 0,
        }
    }

    /// Where the region is, for messages: `region at line 4 (chr1:100-200)`, or
    /// `region chr1:100-200` for one made in code (line 0).
    pub(crate) fn location(&self) -> String {
        let span = format!("{}:{}-{}", self.chrom, self.start, self.end);
        match self.line {
            0 => format!("region {span}"),
            line => format!("region at line {line} ({span})"),
        }
    }

    /// The window of `width` bases centred on the summit if there is one, on the midpoint
    /// `(start + end) / 2` otherwise, as BPNet and ChromBPNet cut their inputs: it starts
    /// `width / 2` bases before the centre. Name, strand and line are kept, the summit moves
    /// with the start.
    ///
    /// ```
    /// use relevance::genomics::io::BedRegion;
    /// # fn main() -> relevance::Result<()> {
    /// let w = BedRegion::new("chr1", 1000, 1100).centred(10)?;
    /// assert_eq!((w.start, w.end), (1045, 1055));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::SequenceFile`] naming the region if the window would start before base 0, or
    /// if `width` is 0.
    pub fn centred(&self, width: u64) -> Result<BedRegion> {
        let centre = match self.summit {
            Some(s) => self.start.saturating_add(s),
            None => self.start + self.end.saturating_sub(self.start) / 2,
        };
        let start = centre.checked_sub(width / 2).filter(|_| width > 0);
        let start = start.ok_or_else(|| Error::SequenceFile {
            file: "regions".into(),
            location: self.location(),
            reason: format!("a window of {width} bases around base {centre} starts before the chromosome"),
        })?;
        Ok(BedRegion {
            start,
            end: start.saturating_add(width),
            summit: Some(centre - start),
            ..self.clone()
        })
    }
}

/// Reads the regions of a BED file (BED3 and more columns, narrowPeak included): blank lines,
/// `#` comments, `track` and `browser` lines are skipped.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::SequenceFile`] naming the line of the
/// first line with fewer than 3 tab-separated columns, a coordinate that is not a number, an
/// end before its start, a strand other than `+`, `-`, `.`, or a summit outside the region.
pub fn read_bed(path: impl AsRef<Path>) -> Result<Vec<BedRegion>> {
    let path = path.as_ref();
    let bytes = crate::io::read_file(path)?;
    parse_bed(&bytes, &path.display().to_string())
}

/// Parses BED text held in memory; `file` names it in errors. See [`read_bed`].
///
/// ```
/// use relevance::genomics::io::parse_bed;
/// # fn main() -> relevance::Result<()> {
/// let regions = parse_bed(b"track name=peaks\nchr1\t100\t200\tpeak1\t0\t+\n", "peaks.bed")?;
/// assert_eq!((regions[0].start, regions[0].end, regions[0].line), (100, 200, 2));
/// assert_eq!(regions[0].name.as_deref(), Some("peak1"));
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`read_bed`].
pub fn parse_bed(text: &[u8], file: &str) -> Result<Vec<BedRegion>> {
    let mut regions = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let err = |reason: String| Error::SequenceFile {
            file: file.to_string(),
            location: format!("line {line}"),
            reason,
        };
        let text = std::str::from_utf8(raw).map_err(|_| err("the line is not UTF-8 text".into()))?;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty()
            || text.starts_with('#')
            || text.starts_with("track")
            || text.starts_with("browser")
        {
            continue;
        }
        let cols: Vec<&str> = text.split('\t').collect();
        if cols.len() < 3 {
            return Err(err(format!(
                "{} tab-separated column(s), a BED line needs chrom, start, end",
                cols.len()
            )));
        }
        let number = |col: usize, what: &str| {
            cols[col]
                .trim()
                .parse::<u64>()
                .map_err(|_| err(format!("{what} {:?} is not a non-negative integer", cols[col])))
        };
        let (start, end) = (number(1, "start")?, number(2, "end")?);
        if end < start {
            return Err(err(format!("end {end} is before start {start}")));
        }
        if cols[0].is_empty() {
            return Err(err("the chromosome name is empty".into()));
        }
        let given = |col: usize| {
            cols.get(col)
                .map(|c| c.trim())
                .filter(|c| !c.is_empty() && *c != ".")
        };
        let strand = match given(5) {
            None => None,
            Some("+") => Some('+'),
            Some("-") => Some('-'),
            Some(s) => return Err(err(format!("strand {s:?} is none of +, -, ."))),
        };
        let summit = match given(9) {
            None | Some("-1") => None,
            Some(_) => {
                let s = number(9, "summit offset")?;
                if s > end - start {
                    return Err(err(format!(
                        "summit offset {s} is outside the region of {} bases",
                        end - start
                    )));
                }
                Some(s)
            }
        };
        regions.push(BedRegion {
            chrom: cols[0].to_string(),
            start,
            end,
            name: given(3).map(str::to_string),
            strand,
            summit,
            line,
        });
    }
    Ok(regions)
}

/// Centres every region on a window of `width` bases; see [`BedRegion::centred`].
///
/// # Errors
/// As [`BedRegion::centred`], for the first region that fails.
pub fn centred(regions: &[BedRegion], width: u64) -> Result<Vec<BedRegion>> {
    regions.iter().map(|r| r.centred(width)).collect()
}

/// A genome held in memory: its chromosomes by name, to cut region sequences from.
///
/// The whole FASTA is read (about 3.1 GB for a human genome); indexed reading through a
/// `.fai` is not offered yet.
#[derive(Debug, Clone, Default)]
pub struct Genome {
    chromosomes: HashMap<String, Vec<u8>>,
}

impl Genome {
    /// Reads every record of a genome FASTA (plain or gzip).
    ///
    /// # Errors
    /// As [`FastaReader`], and as [`Genome::from_records`].
    pub fn read(path: impl AsRef<Path>) -> Result<Genome> {
        let path = path.as_ref();
        let records = FastaReader::open(path)?.collect::<Result<Vec<_>>>()?;
        Genome::from_records(records).map_err(|e| match e {
            Error::SequenceFile { location, reason, .. } => Error::SequenceFile {
                file: path.display().to_string(),
                location,
                reason,
            },
            e => e,
        })
    }

    /// A genome from records, one per chromosome.
    ///
    /// # Errors
    /// [`Error::SequenceFile`] naming a chromosome that appears twice.
    pub fn from_records(records: impl IntoIterator<Item = FastaRecord>) -> Result<Genome> {
        let mut chromosomes = HashMap::new();
        for r in records {
            if chromosomes.contains_key(&r.name) {
                return Err(Error::SequenceFile {
                    file: "genome".into(),
                    location: format!("record {}", r.name),
                    reason: "the chromosome appears twice".into(),
                });
            }
            chromosomes.insert(r.name, r.sequence);
        }
        Ok(Genome { chromosomes })
    }

    /// The length of a chromosome, if the genome has it.
    pub fn len(&self, chrom: &str) -> Option<usize> {
        self.chromosomes.get(chrom).map(Vec::len)
    }

    /// Whether the genome has no chromosome.
    pub fn is_empty(&self) -> bool {
        self.chromosomes.is_empty()
    }

    /// The sequence of each region, as records named `chrom:start-end` (as samtools faidx and
    /// bedtools getfasta name them), forward strand, case kept.
    ///
    /// ```
    /// use relevance::genomics::io::{centred, one_hot_batch, BedRegion, FastaRecord, Genome};
    /// # fn main() -> relevance::Result<()> {
    /// let genome = Genome::from_records([FastaRecord::new("chr1", "ACGTACGTAC")])?;
    /// let windows = centred(&[BedRegion::new("chr1", 2, 8)], 4)?; // [3, 7)
    /// let records = genome.extract(&windows)?;
    /// assert_eq!((records[0].name.as_str(), &records[0].sequence[..]), ("chr1:3-7", &b"TACG"[..]));
    /// assert_eq!(one_hot_batch::<f32>(&records)?.shape(), &[1, 4, 4]);
    /// assert!(genome.extract(&[BedRegion::new("chr1", 8, 12)]).is_err()); // past the end
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::SequenceFile`] naming the region (its BED line) and chromosome for an unknown
    /// chromosome or a region that ends past the chromosome's end.
    pub fn extract(&self, regions: &[BedRegion]) -> Result<Vec<FastaRecord>> {
        regions
            .iter()
            .map(|r| {
                let err = |reason: String| Error::SequenceFile {
                    file: "regions".into(),
                    location: r.location(),
                    reason,
                };
                let seq = self
                    .chromosomes
                    .get(&r.chrom)
                    .ok_or_else(|| err(format!("chromosome {} is not in the genome", r.chrom)))?;
                if r.start > r.end {
                    return Err(err(format!("start {} is past end {}", r.start, r.end)));
                }
                let end = usize::try_from(r.end).unwrap_or(usize::MAX);
                if end > seq.len() {
                    return Err(err(format!(
                        "the region ends at {} past the end of {} ({} bases)",
                        r.end,
                        r.chrom,
                        seq.len()
                    )));
                }
                let start = r.start as usize; // start <= end <= len
                Ok(FastaRecord::new(
                    format!("{}:{}-{}", r.chrom, r.start, r.end),
                    &seq[start..end],
                ))
            })
            .collect()
    }
}
