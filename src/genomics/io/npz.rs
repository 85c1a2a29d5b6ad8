//! NumPy `.npz` archives (a zip of `.npy` members, stored, ZIP64 past 4 GiB) written
//! atomically, the inputs of tfmodisco-lite, and a BED-like summary of attributions.

use super::bed::BedRegion;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::genomics::SequenceAttribution;
use crate::io::npy_preamble;
use ndarray::{ArrayD, Axis};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Sizes and offsets from this value on need ZIP64 fields.
const ZIP32_LIMIT: u64 = 0xFFFF_FFFF;
/// DOS date 1980-01-01 (time 00:00): a fixed timestamp makes the output reproducible.
const DOS_DATE: u16 = 0x21;

/// A file written under a temporary name in the destination's directory and renamed onto
/// the destination by [`AtomicFile::commit`]; dropped uncommitted, the temporary is removed.
pub(crate) struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub(crate) fn create(dest: &Path) -> Result<AtomicFile> {
        let name = dest
            .file_name()
            .ok_or_else(|| io_err(dest, "the path names no file"))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        let file = File::create(&tmp).map_err(|e| io_err(dest, &e.to_string()))?;
        Ok(AtomicFile {
            dest: dest.to_path_buf(),
            tmp,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self
            .out
            .as_mut()
            .ok_or_else(|| io_err(&self.dest, "already closed"))?;
        out.write_all(bytes)
            .map_err(|e| io_err(&self.dest, &e.to_string()))
    }

    /// Flushes and closes the temporary file (the destination is not touched yet).
    fn finish(&mut self) -> Result<()> {
        if let Some(out) = self.out.take() {
            let file = out
                .into_inner()
                .map_err(|e| io_err(&self.dest, &e.error().to_string()))?;
            file.sync_all().map_err(|e| io_err(&self.dest, &e.to_string()))?;
        }
        Ok(())
    }

    /// Closes the file and renames it onto the destination.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.finish()?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| io_err(&self.dest, &e.to_string()))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        self.out = None;
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn io_err(path: &Path, reason: &str) -> Error {
    Error::Io {
        path: path.display().to_string(),
        reason: format!("cannot write: {reason}"),
    }
}

/// One member of the archive, for the central directory.
struct Member {
    name: Vec<u8>,
    crc: u32,
    size: u64,
    offset: u64,
}

/// A zip archive of stored (uncompressed) members, written front to back.
struct ZipWriter {
    out: AtomicFile,
    offset: u64,
    members: Vec<Member>,
    /// ZIP64 fields even where not needed (to test them on small files).
    force_zip64: bool,
}

impl ZipWriter {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Adds `name.npy` holding `array` (`<f4` for `f32`, `<f8` for `f64`).
    fn add_npy<F: Float>(&mut self, name: &str, array: &ArrayD<F>) -> Result<()> {
        let is_f32 = std::mem::size_of::<F>() == 4;
        let preamble = npy_preamble(array.shape(), is_f32);
        // first pass: the CRC the local header needs (and every value checked finite)
        let mut crc = crc32fast::Hasher::new();
        crc.update(&preamble);
        encode(array, is_f32, |chunk| {
            crc.update(chunk);
            Ok(())
        })
        .map_err(|e| match e {
            Error::NonFinite { index, value, .. } => Error::NonFinite {
                what: format!("npz member {name}"),
                index,
                value,
            },
            e => e,
        })?;
        let size = preamble.len() as u64 + array.len() as u64 * if is_f32 { 4 } else { 8 };
        let member = Member {
            name: format!("{name}.npy").into_bytes(),
            crc: crc.finalize(),
            size,
            offset: self.offset,
        };
        let zip64 = self.force_zip64 || size >= ZIP32_LIMIT;
        let mut header = Vec::with_capacity(64);
        header.extend_from_slice(&0x0403_4b50_u32.to_le_bytes());
        header.extend_from_slice(&(if zip64 { 45_u16 } else { 20 }).to_le_bytes());
        header.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // flags, method (stored), time
        header.extend_from_slice(&DOS_DATE.to_le_bytes());
        header.extend_from_slice(&member.crc.to_le_bytes());
        let small = if zip64 { ZIP32_LIMIT as u32 } else { size as u32 };
        header.extend_from_slice(&small.to_le_bytes());
        header.extend_from_slice(&small.to_le_bytes());
        header.extend_from_slice(&(member.name.len() as u16).to_le_bytes());
        header.extend_from_slice(&(if zip64 { 20_u16 } else { 0 }).to_le_bytes());
        header.extend_from_slice(&member.name);
        if zip64 {
            header.extend_from_slice(&[1, 0, 16, 0]);
            header.extend_from_slice(&size.to_le_bytes());
            header.extend_from_slice(&size.to_le_bytes());
        }
        self.put(&header)?;
        self.put(&preamble)?;
        // second pass: the data
        let mut out = std::mem::take(&mut self.offset);
        encode(array, is_f32, |chunk| {
            out += chunk.len() as u64;
            self.out.write(chunk)
        })?;
        self.offset = out;
        self.members.push(member);
        Ok(())
    }

    /// Writes the central directory and the end records; the file is still to be committed.
    fn finish(mut self) -> Result<AtomicFile> {
        let cd_start = self.offset;
        let mut cd = Vec::new();
        for m in &self.members {
            let big_size = self.force_zip64 || m.size >= ZIP32_LIMIT;
            let big_offset = self.force_zip64 || m.offset >= ZIP32_LIMIT;
            let mut extra = Vec::new();
            if big_size {
                extra.extend_from_slice(&m.size.to_le_bytes());
                extra.extend_from_slice(&m.size.to_le_bytes());
            }
            if big_offset {
                extra.extend_from_slice(&m.offset.to_le_bytes());
            }
            let version: u16 = if extra.is_empty() { 20 } else { 45 };
            cd.extend_from_slice(&0x0201_4b50_u32.to_le_bytes());
            cd.extend_from_slice(&version.to_le_bytes()); // made by (MS-DOS attributes)
            cd.extend_from_slice(&version.to_le_bytes()); // needed to extract
            cd.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // flags, method, time
            cd.extend_from_slice(&DOS_DATE.to_le_bytes());
            cd.extend_from_slice(&m.crc.to_le_bytes());
            let size = if big_size {
                ZIP32_LIMIT as u32
            } else {
                m.size as u32
            };
            cd.extend_from_slice(&size.to_le_bytes());
            cd.extend_from_slice(&size.to_le_bytes());
            cd.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
            let extra_len = if extra.is_empty() {
                0
            } else {
                extra.len() as u16 + 4
            };
            cd.extend_from_slice(&extra_len.to_le_bytes());
            cd.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
            let offset = if big_offset {
                ZIP32_LIMIT as u32
            } else {
                m.offset as u32
            };
            cd.extend_from_slice(&offset.to_le_bytes());
            cd.extend_from_slice(&m.name);
            if !extra.is_empty() {
                cd.extend_from_slice(&1_u16.to_le_bytes());
                cd.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                cd.extend_from_slice(&extra);
            }
        }
        self.put(&cd)?;
        let cd_size = cd.len() as u64;
        let count = self.members.len() as u64;
        let zip64 = self.force_zip64 || cd_start >= ZIP32_LIMIT || cd_size >= ZIP32_LIMIT;
        let mut end = Vec::new();
        if zip64 {
            let record = self.offset;
            end.extend_from_slice(&0x0606_4b50_u32.to_le_bytes());
            end.extend_from_slice(&44_u64.to_le_bytes()); // size of the rest of the record
            end.extend_from_slice(&45_u16.to_le_bytes());
            end.extend_from_slice(&45_u16.to_le_bytes());
            end.extend_from_slice(&[0; 8]); // this disk, the disk of the central directory
            end.extend_from_slice(&count.to_le_bytes());
            end.extend_from_slice(&count.to_le_bytes());
            end.extend_from_slice(&cd_size.to_le_bytes());
            end.extend_from_slice(&cd_start.to_le_bytes());
            end.extend_from_slice(&0x0706_4b50_u32.to_le_bytes()); // the locator
            end.extend_from_slice(&0_u32.to_le_bytes());
            end.extend_from_slice(&record.to_le_bytes());
            end.extend_from_slice(&1_u32.to_le_bytes());
        }
        end.extend_from_slice(&0x0605_4b50_u32.to_le_bytes());
        end.extend_from_slice(&[0; 4]); // this disk, the disk of the central directory
        let count16 = if zip64 { u16::MAX } else { count as u16 };
        end.extend_from_slice(&count16.to_le_bytes());
        end.extend_from_slice(&count16.to_le_bytes());
        let clip = |v: u64| if zip64 { ZIP32_LIMIT as u32 } else { v as u32 };
        end.extend_from_slice(&clip(cd_size).to_le_bytes());
        end.extend_from_slice(&clip(cd_start).to_le_bytes());
        end.extend_from_slice(&[0, 0]); // comment length
        self.put(&end)?;
        Ok(self.out)
    }
}

/// Encodes the values of `array` in C order as little-endian `f32` or `f64`, handing out
/// chunks of at most 64 KiB; stops at the first non-finite value.
fn encode<F: Float>(
    array: &ArrayD<F>,
    is_f32: bool,
    mut sink: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for (index, &v) in array.iter().enumerate() {
        let v = v.as_f64();
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: "npz member".into(),
                index,
                value: v,
            });
        }
        if is_f32 {
            buf.extend_from_slice(&(v as f32).to_le_bytes());
        } else {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        if buf.len() >= (1 << 16) - 8 {
            sink(&buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        sink(&buf)?;
    }
    Ok(())
}

fn zip_writer(path: &Path, force_zip64: bool) -> Result<ZipWriter> {
    Ok(ZipWriter {
        out: AtomicFile::create(path)?,
        offset: 0,
        members: Vec::new(),
        force_zip64,
    })
}

fn npz<F: Float>(path: &Path, arrays: &[(&str, &ArrayD<F>)], force_zip64: bool) -> Result<AtomicFile> {
    for (i, (name, _)) in arrays.iter().enumerate() {
        let bad = name.is_empty() || name.contains(['/', '\\']) || name.len() > 200;
        if bad || arrays[..i].iter().any(|(n, _)| n == name) {
            return Err(Error::InvalidParameter {
                rule: "write_npz",
                reason: format!(
                    "array name {name:?}: names must be non-empty, unique, without slashes, at most 200 bytes"
                ),
            });
        }
    }
    let mut zip = zip_writer(path, force_zip64)?;
    for (name, array) in arrays {
        zip.add_npy(name, array)?;
    }
    zip.finish()
}

/// Writes arrays to a NumPy `.npz` archive, as `numpy.savez` does: member `name.npy` for each
/// `(name, array)`, read back with `numpy.load(path)[name]`. Members are stored uncompressed
/// (`<f4` for `f32`, `<f8` for `f64`), with ZIP64 fields past 4 GiB.
///
/// The archive is written under a temporary name in the same directory and renamed at the
/// end: on any error nothing is left at `path` (an older file there stays as it was).
///
/// ```
/// use ndarray::ArrayD;
/// use relevance::genomics::io::write_npz;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("relevance-doc-{}.npz", std::process::id()));
/// let x = ArrayD::<f32>::ones(vec![2, 4, 3]);
/// write_npz(&path, &[("arr_0", &x)])?;
/// let bytes = std::fs::read(&path)?;
/// assert_eq!(&bytes[..4], b"PK\x03\x04"); // a zip archive
/// # std::fs::remove_file(&path)?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty, repeated or slashed name; [`Error::NonFinite`]
/// for a NaN or infinite value; [`Error::Io`] if the file cannot be written.
pub fn write_npz<F: Float>(path: impl AsRef<Path>, arrays: &[(&str, &ArrayD<F>)]) -> Result<()> {
    npz(path.as_ref(), arrays, false)?.commit()
}

/// [`write_npz`] with ZIP64 fields on every member and the end records, as a file past 4 GiB
/// gets them: for tests of readers.
#[doc(hidden)]
pub fn write_npz_zip64<F: Float>(path: impl AsRef<Path>, arrays: &[(&str, &ArrayD<F>)]) -> Result<()> {
    npz(path.as_ref(), arrays, true)?.commit()
}

/// Writes the two inputs of tfmodisco-lite's `modisco motifs -s sequences.npz -a
/// attributions.npz`: the one-hot sequences and the hypothetical attributions, each as the
/// member `arr_0` of its own `.npz`, shape `[N, 4, L]` (modisco loads `np.load(path)['arr_0']`,
/// cuts the central `-w` window, 400 by default, of the last axis and transposes to
/// `[N, L, 4]` itself, so L must be at least the window).
///
/// Checked with modisco-lite 3.0.0: numpy and its own `.npz` reader (`_load_input` in
/// `modiscolite/cli.py`) read both files, and `modisco motifs` runs on them.
///
/// Both files are written under temporary names and renamed only once both are complete: on
/// an error neither is left.
///
/// # Shapes
/// `one_hot` and `hypothetical` are both `[N, 4, L]`.
///
/// # Errors
/// [`Error::Rank`] or [`Error::Shape`] for arrays that are not `[N, 4, L]` of the same shape;
/// [`Error::EmptyBatch`] for N = 0; [`Error::NonFinite`] for a NaN or infinite value;
/// [`Error::Io`] if a file cannot be written.
pub fn write_modisco_inputs<F: Float>(
    sequences_path: impl AsRef<Path>,
    attributions_path: impl AsRef<Path>,
    one_hot: &ArrayD<F>,
    hypothetical: &ArrayD<F>,
) -> Result<()> {
    if one_hot.ndim() != 3 {
        return Err(Error::Rank {
            what: "one-hot sequences for modisco".into(),
            expected: 3,
            got: one_hot.ndim(),
            shape: one_hot.shape().to_vec(),
        });
    }
    if one_hot.shape()[1] != 4 || hypothetical.shape() != one_hot.shape() {
        return Err(Error::Shape {
            what: "modisco inputs (one-hot, hypothetical)".into(),
            expected: vec![one_hot.shape()[0], 4, one_hot.shape()[2]],
            got: if one_hot.shape()[1] != 4 {
                one_hot.shape()
            } else {
                hypothetical.shape()
            }
            .to_vec(),
        });
    }
    if one_hot.shape()[0] == 0 {
        return Err(Error::EmptyBatch);
    }
    let sequences = npz(sequences_path.as_ref(), &[("arr_0", one_hot)], false)?;
    let attributions = npz(attributions_path.as_ref(), &[("arr_0", hypothetical)], false)?;
    sequences.commit()?;
    attributions.commit()
}

/// Writes a BED-like summary of attributions, one tab-separated line per sequence, without a
/// header, in the order of `windows`:
///
/// | column | content |
/// | --- | --- |
/// | 1–3 | chrom, start, end of the window explained (0-based, half-open) |
/// | 4 | the region's name, `.` if none |
/// | 5 | total attribution `Σ attributions` |
/// | 6 | the additivity gap `Σ attributions − (f(x) − mean f(refs))` ([`SequenceAttribution::gap`]) |
/// | 7 | the genome position (0-based) of the base with the largest absolute attribution |
/// | 8 | the attribution there |
///
/// Written atomically, as [`write_npz`].
///
/// # Errors
/// [`Error::BatchMismatch`] if the number of windows is not N; [`Error::Shape`] if a window's
/// length differs from the attributions' L; [`Error::Io`] if the file cannot be written.
pub fn write_summary<F: Float>(
    path: impl AsRef<Path>,
    windows: &[BedRegion],
    attribution: &SequenceAttribution<F>,
) -> Result<()> {
    let a = &attribution.attributions;
    let shape = a.shape();
    if a.ndim() != 3 || windows.len() != shape[0] {
        return Err(Error::BatchMismatch {
            what: "summary windows".into(),
            batch: shape.first().copied().unwrap_or(0),
            got: windows.len(),
        });
    }
    let mut text = String::new();
    for (i, (w, seq)) in windows.iter().zip(a.axis_iter(Axis(0))).enumerate() {
        let per_base = seq.sum_axis(Axis(0));
        if w.end.checked_sub(w.start) != Some(per_base.len() as u64) {
            return Err(Error::Shape {
                what: format!("summary window {}", w.location()),
                expected: vec![4, per_base.len()],
                got: vec![4, w.end.saturating_sub(w.start) as usize],
            });
        }
        let (best, value) = per_base
            .iter()
            .enumerate()
            .fold(
                (0, F::zero()),
                |(bi, bv), (i, &v)| if v.abs() > bv.abs() { (i, v) } else { (bi, bv) },
            );
        let gap = attribution.gap.get(i).copied().unwrap_or(F::zero());
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            w.chrom,
            w.start,
            w.end,
            w.name.as_deref().unwrap_or("."),
            per_base.sum(),
            gap,
            w.start + best as u64,
            value
        ));
    }
    let mut file = AtomicFile::create(path.as_ref())?;
    file.write(text.as_bytes())?;
    file.commit()
}
