//! Sequence files as genomics uses them (feature `genomics-io`): FASTA genomes and sequences
//! (plain or gzip), BED regions cut to fixed-width windows, one-hot encoding, and the `.npz`
//! inputs of tfmodisco-lite with a BED-like summary of the attributions.
//!
//! * [`FastaReader`] streams FASTA records (in batches with [`FastaReader::next_batch`], in
//!   memory bounded by the longest record); [`read_fasta`] reads them all. gzip (and bgzip) is
//!   recognised by its magic bytes `1f 8b`, not by the file's name.
//! * [`read_bed`] reads regions (BED3 and more columns; narrowPeak summits are kept);
//!   [`centred`] cuts fixed-width windows around summits or midpoints, as BPNet and ChromBPNet
//!   cut 2114-base inputs; [`Genome::extract`] returns their sequences. The genome is held in
//!   memory whole.
//! * [`one_hot`] and [`one_hot_batch`] encode A, C, G, T as rows 0–3 (lower case alike, N as
//!   zeros) into `[4, L]` and `[N, 4, L]`.
//! * [`write_modisco_inputs`] writes the one-hot sequences and hypothetical attributions as
//!   the two `.npz` files `modisco motifs -s … -a …` reads; [`write_npz`] writes any named
//!   arrays; [`write_summary`] one line per window (total attribution, additivity gap, peak).
//!
//! Nothing trusts the input: malformed, truncated or binary FASTA, BED lines that do not
//! parse, regions on unknown chromosomes or past a chromosome's end, and letters other than
//! A, C, G, T, N are typed errors ([`Error::SequenceFile`](crate::Error::SequenceFile),
//! [`Error::InvalidBase`](crate::Error::InvalidBase)) naming the record, line or region.
//! Every file is written under a temporary name and renamed when complete, so an error leaves
//! nothing half-written.
//!
//! # Why needletail
//! FASTA is read by [needletail](https://crates.io/crates/needletail) (One Codex, MIT), built
//! with only its gzip backend: it adds three small crates (buffer-redux, bytecount, memchr) to
//! flate2 on miniz_oxide, which `png` already builds, detects compression by magic bytes and
//! streams records from any reader. noodles-fasta (with noodles-bgzf, and noodles-bed for BED)
//! would bring `.fai` indexed reads but more crates, and its current releases need Rust 1.91
//! (this crate's MSRV is 1.85). BED3+ lines are tab-separated numbers and are parsed here,
//! which also lets every error name its line.
//!
//! # Example
//! From a genome and peaks to the files tfmodisco-lite reads:
//! ```
//! use ndarray::Axis;
//! use relevance::genomics::deep_lift_shap;
//! use relevance::genomics::io::{centred, one_hot_batch, read_bed, write_modisco_inputs, write_summary, Genome};
//! use relevance::{AvgPool1d, Conv1d, Conv1dConfig, Flatten, Layer, Network, Relu, Target};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("relevance-genomics-io-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! std::fs::write(dir.join("genome.fa"), ">chr1 test\nACGTACGTAC\nGTTTGCAnna\n>chr2\nGGGGCCCC\n")?;
//! std::fs::write(dir.join("peaks.bed"), "# peaks\nchr1\t4\t12\tp1\nchr2\t0\t8\tp2\n")?;
//!
//! let genome = Genome::read(dir.join("genome.fa"))?;
//! let windows = centred(&read_bed(dir.join("peaks.bed"))?, 6)?; // 6 bases around midpoints
//! let records = genome.extract(&windows)?;
//! assert_eq!(records[0].name, "chr1:5-11");
//! assert_eq!(records[0].sequence, b"CGTACG");
//! let x = one_hot_batch::<f32>(&records)?.into_dyn(); // [2, 4, 6]
//!
//! let w = ndarray::Array3::from_shape_fn((2, 4, 3), |(o, c, k)| ((o + 2 * c + k) % 5) as f32 - 2.0);
//! let net = Network::<f32>::new(&[4, 6], vec![
//!     Box::new(Conv1d::new(w, None, Conv1dConfig::default().same())?) as Box<dyn Layer<f32>>,
//!     Box::new(Relu),
//!     Box::new(AvgPool1d::global()),
//!     Box::new(Flatten),
//! ])?;
//! let references = x.mapv(|_| 0.25).insert_axis(Axis(1)); // one uniform reference each
//! let r = deep_lift_shap(&net, &x, &references, &Target::Class(0))?;
//!
//! write_modisco_inputs(dir.join("ohe.npz"), dir.join("shap.npz"), &x, &r.hypothetical)?;
//! write_summary(dir.join("summary.bed"), &windows, &r)?;
//! let summary = std::fs::read_to_string(dir.join("summary.bed"))?;
//! assert!(summary.starts_with("chr1\t5\t11\tp1\t"));
//! assert_eq!(summary.lines().count(), 2);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```

mod bed;
mod fasta;
mod npz;

pub use bed::{centred, parse_bed, read_bed, BedRegion, Genome};
pub use fasta::{one_hot, one_hot_batch, read_fasta, FastaReader, FastaRecord};
pub use npz::{write_modisco_inputs, write_npz, write_npz_zip64, write_summary};
