//! `relevance explain-seq`: DeepLIFT-SHAP with dinucleotide-shuffled references and
//! hypothetical contributions over a FASTA file (or BED regions of a genome), streamed in
//! chunks: memory bounded whatever the number of sequences, resumable (a chunk whose output
//! exists is skipped), and split with `--shard I/N` across independent processes whose
//! chunk files are the unsharded run's, byte for byte. When every chunk is there, the run
//! writes the merged files tfmodisco-lite reads.

use crate::model::load_model;
use crate::{Failure, ModelArgs};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{ArrayD, Axis};
use relevance::genomics::io::{
    centred, read_bed, write_modisco_inputs, write_npz, write_summary, BedRegion, FastaReader, FastaRecord,
    Genome,
};
use relevance::genomics::{deep_lift_shap, shuffled_references, SequenceAttribution};
use relevance::{Network, Target};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The options of `explain-seq`.
#[derive(clap::Args)]
pub struct ExplainSeqArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Sequences to explain (FASTA, plain or gzip); each as long as the model's input.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "bed",
        conflicts_with = "bed"
    )]
    pub fasta: Option<PathBuf>,
    /// Regions to explain (BED), cut from --genome, centred on each region's middle with
    /// --width bases (default: the model's input length).
    #[arg(long, value_name = "FILE", requires = "genome")]
    pub bed: Option<PathBuf>,
    /// The genome the BED regions refer to (FASTA, plain or gzip; read into memory).
    #[arg(long, value_name = "FILE")]
    pub genome: Option<PathBuf>,
    /// Window width for BED regions.
    #[arg(long, value_name = "BASES")]
    pub width: Option<u64>,
    /// The output to explain (its index; 0 for a single count output).
    #[arg(long, value_name = "C", default_value = "0")]
    pub target: usize,
    /// Dinucleotide-shuffled references per sequence.
    #[arg(long, value_name = "N", default_value = "20", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub references: u32,
    /// Seed of the shuffles, as tangermeme's `deep_lift_shap(..., random_state=S)`:
    /// reference k of every sequence is its dinucleotide shuffle by the Mersenne Twister
    /// seeded with S + k (the same shuffles as tangermeme's), whatever the chunking or
    /// sharding.
    #[arg(long, value_name = "S", default_value = "0")]
    pub seed: i64,
    /// Sequences per chunk (one output file each; the unit of resuming and sharding).
    #[arg(long, value_name = "N", default_value = "256", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub chunk: u32,
    /// Sequences per call of the library within a chunk.
    #[arg(long, value_name = "N", default_value = "8", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: u32,
    /// Run only the chunks k with k mod N = I (0-based), for N independent processes (an
    /// array job); the chunk files are those of the unsharded run.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Output directory: chunks/chunk-K.npz and .bed, then (once every chunk is there)
    /// ohe.npz and shap.npz for tfmodisco-lite, attributions.npz and summary.bed.
    #[arg(long, value_name = "DIR", default_value = "relevance-seq-out")]
    pub out: PathBuf,
    /// Do not write the merged files (only the chunks).
    #[arg(long)]
    pub no_merge: bool,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: give the shard as I/N, e.g. 0/4"))?;
    let i: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: I is not a number"))?;
    let n: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: N is not a number"))?;
    if n == 0 || i >= n {
        return Err(format!("{s:?}: need 0 ≤ I < N"));
    }
    Ok((i, n))
}

/// The (window, record) pairs of a source, in file order.
type Records<'a> = Box<dyn Iterator<Item = Result<(BedRegion, FastaRecord), String>> + 'a>;

/// Where the sequences come from.
enum Source {
    Fasta(PathBuf),
    Regions { genome: Genome, windows: Vec<BedRegion> },
}

impl Source {
    /// A fresh stream of (window, record) in file order.
    fn stream(&self) -> Result<Records<'_>, Failure> {
        match self {
            Source::Fasta(path) => {
                let reader = FastaReader::open(path).map_err(|e| Failure::Run(e.to_string()))?;
                Ok(Box::new(reader.map(|r| {
                    let r = r.map_err(|e| e.to_string())?;
                    let window = BedRegion::new(r.name.clone(), 0, r.sequence.len() as u64);
                    Ok((window, r))
                })))
            }
            Source::Regions { genome, windows } => Ok(Box::new(windows.iter().map(|w| {
                let mut r = genome
                    .extract(std::slice::from_ref(w))
                    .map_err(|e| e.to_string())?;
                Ok((w.clone(), r.pop().expect("one region, one record")))
            }))),
        }
    }
}

pub fn explain_seq(args: ExplainSeqArgs) -> Result<(), Failure> {
    let model = load_model(&args.model, None)?;
    for note in &model.notes {
        eprintln!("note: {note}");
    }
    let net = model.net;
    let shape = net.input_shape().to_vec();
    if shape.len() != 2 || shape[0] != 4 {
        return Err(Failure::Run(format!(
            "the model takes inputs of shape {shape:?}; explain-seq needs one-hot DNA [4, L]"
        )));
    }
    let length = shape[1];
    let source = match (&args.fasta, &args.bed, &args.genome) {
        (Some(f), _, _) => Source::Fasta(f.clone()),
        (None, Some(bed), Some(genome)) => {
            let regions = read_bed(bed).map_err(|e| Failure::Run(e.to_string()))?;
            let width = args.width.unwrap_or(length as u64);
            let windows = centred(&regions, width).map_err(|e| Failure::Run(e.to_string()))?;
            eprintln!("reading the genome {} ...", genome.display());
            let genome = Genome::read(genome).map_err(|e| Failure::Run(e.to_string()))?;
            Source::Regions { genome, windows }
        }
        _ => {
            return Err(Failure::Usage(
                "give --fasta FILE, or --bed FILE with --genome FILE".into(),
            ))
        }
    };
    // one pass to count (and check) the records: the progress bar's total
    let mut total = 0usize;
    for item in source.stream()? {
        let (_, record) = item.map_err(Failure::Run)?;
        if record.sequence.len() != length {
            return Err(Failure::Run(format!(
                "sequence {} (record {}) has {} bases; the model takes {length}",
                record.name,
                total + 1,
                record.sequence.len()
            )));
        }
        total += 1;
    }
    if total == 0 {
        return Err(Failure::Run("no sequence to explain".into()));
    }
    let chunk = args.chunk as usize;
    let chunks = total.div_ceil(chunk);
    let (shard, shards) = args.shard.unwrap_or((0, 1));
    let dir = args.out.join("chunks");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::Run(format!("cannot create {}: {e}", dir.display())))?;
    let mine: Vec<usize> = (0..chunks).filter(|k| k % shards == shard).collect();
    let todo: Vec<usize> = mine
        .iter()
        .copied()
        .filter(|&k| !chunk_path(&dir, k, "npz").exists())
        .collect();
    let todo_sequences: usize = todo.iter().map(|&k| chunk_len(k, chunk, total)).sum();
    eprintln!(
        "{total} sequences of {length} bp in {chunks} chunk{} of {chunk}; {} ({todo_sequences} sequences) to do{}{}",
        if chunks == 1 { "" } else { "s" },
        todo.len(),
        if shards > 1 { format!(" in shard {shard}/{shards}") } else { String::new() },
        if todo.len() < mine.len() {
            format!(", {} done before", mine.len() - todo.len())
        } else {
            String::new()
        }
    );
    let bar = ProgressBar::new(todo_sequences as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} sequences, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut stream = source.stream()?;
    let mut next = 0usize; // index of the next record of the stream
    for &k in &todo {
        // skip to the chunk's first record
        while next < k * chunk {
            stream.next();
            next += 1;
        }
        let n = chunk_len(k, chunk, total);
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let item = stream
                .next()
                .ok_or_else(|| Failure::Run("the input changed while it was read".into()))?;
            items.push(item.map_err(Failure::Run)?);
            next += 1;
        }
        explain_chunk(&net, &args, &dir, k, &items, &bar)?;
    }
    bar.finish_and_clear();
    let done = todo_sequences as f64;
    let secs = started.elapsed().as_secs_f64();
    if todo_sequences > 0 {
        eprintln!(
            "explained {todo_sequences} sequences in {secs:.1} s ({:.2} sequences/s)",
            done / secs.max(1e-9)
        );
    }
    let missing = (0..chunks)
        .filter(|&k| !chunk_path(&dir, k, "npz").exists())
        .count();
    if missing > 0 {
        eprintln!("{missing} chunks of other shards still missing: the merged files are written by the run that completes them");
        return Ok(());
    }
    if !args.no_merge {
        merge(&args.out, &dir, chunks)?;
    }
    Ok(())
}

fn chunk_len(k: usize, chunk: usize, total: usize) -> usize {
    chunk.min(total - k * chunk)
}

fn chunk_path(dir: &Path, k: usize, ext: &str) -> PathBuf {
    dir.join(format!("chunk-{k:06}.{ext}"))
}

/// Explains chunk `k` (its records `items`), writing its .bed then its
/// .npz (the .npz marks the chunk done; both are written atomically).
fn explain_chunk(
    net: &Network<f32>,
    args: &ExplainSeqArgs,
    dir: &Path,
    k: usize,
    items: &[(BedRegion, FastaRecord)],
    bar: &ProgressBar,
) -> Result<(), Failure> {
    let r = args.references as usize;
    let mut parts: Vec<SequenceAttribution<f32>> = Vec::new();
    let mut one_hots = Vec::new();
    for batch in items.chunks(args.batch as usize) {
        let records: Vec<FastaRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
        let x = relevance::genomics::io::one_hot_batch::<f32>(&records)
            .map_err(|e| Failure::Run(e.to_string()))?;
        let n = x.dim().0;
        let x = x.into_dyn();
        let refs =
            shuffled_references(&x, r, args.seed).map_err(|e| Failure::Run(format!("chunk {k}: {e}")))?;
        let out = deep_lift_shap(net, &x, &refs, &Target::Class(args.target))
            .map_err(|e| Failure::Run(format!("chunk {k}: {e}")))?;
        parts.push(out);
        one_hots.push(x);
        bar.inc(n as u64);
    }
    let whole = SequenceAttribution::concat(&parts).map_err(|e| Failure::Run(e.to_string()))?;
    let views: Vec<_> = one_hots.iter().map(|a| a.view()).collect();
    let one_hot = ndarray::concatenate(Axis(0), &views).expect("batches of one shape");
    let windows: Vec<BedRegion> = items.iter().map(|(w, _)| w.clone()).collect();
    write_summary(chunk_path(dir, k, "bed"), &windows, &whole).map_err(|e| Failure::Run(e.to_string()))?;
    write_npz(
        chunk_path(dir, k, "npz"),
        &[
            ("one_hot", &one_hot),
            ("attributions", &whole.attributions),
            ("hypothetical", &whole.hypothetical),
            ("gap", &whole.gap.clone().into_dyn()),
            ("output", &whole.output.clone().into_dyn()),
            ("reference_output", &whole.reference_output.clone().into_dyn()),
            ("pair_deltas", &whole.pair_deltas.clone().into_dyn()),
        ],
    )
    .map_err(|e| Failure::Run(e.to_string()))?;
    Ok(())
}

/// Concatenates every chunk into ohe.npz + shap.npz (tfmodisco-lite's `-s` and `-a`: the
/// one-hot sequences and the hypothetical contributions, `[N, 4, L]` as `arr_0`),
/// attributions.npz (every array of the chunks) and summary.bed. The merge holds the
/// arrays of all sequences in memory (N × 4 × L × 4 bytes each); the chunks do not.
fn merge(out: &Path, dir: &Path, chunks: usize) -> Result<(), Failure> {
    const NAMES: [&str; 7] = [
        "one_hot",
        "attributions",
        "hypothetical",
        "gap",
        "output",
        "reference_output",
        "pair_deltas",
    ];
    let mut arrays: Vec<Vec<ArrayD<f32>>> = vec![Vec::with_capacity(chunks); NAMES.len()];
    let mut summary = Vec::new();
    for k in 0..chunks {
        let path = chunk_path(dir, k, "npz");
        let bytes =
            std::fs::read(&path).map_err(|e| Failure::Run(format!("cannot read {}: {e}", path.display())))?;
        let members =
            read_stored_npz(&bytes).map_err(|e| Failure::Run(format!("{}: {e}", path.display())))?;
        for (i, name) in NAMES.iter().enumerate() {
            let data = members
                .iter()
                .find(|(n, _)| n == &format!("{name}.npy"))
                .ok_or_else(|| Failure::Run(format!("{}: no member {name}", path.display())))?;
            let a = relevance::io::read_npy::<f32>(data.1)
                .map_err(|e| Failure::Run(format!("{}: {e}", path.display())))?;
            arrays[i].push(a);
        }
        let bed = chunk_path(dir, k, "bed");
        summary.extend(
            std::fs::read(&bed).map_err(|e| Failure::Run(format!("cannot read {}: {e}", bed.display())))?,
        );
    }
    let cat = |parts: &[ArrayD<f32>]| -> Result<ArrayD<f32>, Failure> {
        let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
        ndarray::concatenate(Axis(0), &views)
            .map_err(|e| Failure::Run(format!("chunks of different shapes: {e}")))
    };
    let merged: Vec<ArrayD<f32>> = arrays.iter().map(|p| cat(p)).collect::<Result<_, _>>()?;
    write_modisco_inputs(out.join("ohe.npz"), out.join("shap.npz"), &merged[0], &merged[2])
        .map_err(|e| Failure::Run(e.to_string()))?;
    let named: Vec<(&str, &ArrayD<f32>)> = NAMES.iter().copied().zip(merged.iter()).collect();
    write_npz(out.join("attributions.npz"), &named).map_err(|e| Failure::Run(e.to_string()))?;
    let tmp = out.join(".summary.bed.tmp");
    std::fs::write(&tmp, &summary)
        .and_then(|()| std::fs::rename(&tmp, out.join("summary.bed")))
        .map_err(|e| Failure::Run(format!("cannot write {}: {e}", out.join("summary.bed").display())))?;
    eprintln!(
        "wrote {0}/ohe.npz and {0}/shap.npz (tfmodisco-lite: modisco motifs -s {0}/ohe.npz -a {0}/shap.npz ...), {0}/attributions.npz and {0}/summary.bed",
        out.display()
    );
    Ok(())
}

/// The members (name, bytes) of an `.npz` written by this crate: stored (uncompressed)
/// zip entries with their sizes in the local headers (ZIP64 extra fields included).
fn read_stored_npz(bytes: &[u8]) -> Result<Vec<(String, &[u8])>, String> {
    let u16_at = |i: usize| -> Result<u16, String> {
        bytes
            .get(i..i + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated".to_string())
    };
    let u32_at = |i: usize| -> Result<u32, String> {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| "truncated".to_string())
    };
    let mut members = Vec::new();
    let mut at = 0usize;
    while u32_at(at)? == 0x0403_4b50 {
        if u16_at(at + 8)? != 0 {
            return Err("a compressed member (not written by relevance)".into());
        }
        let mut size = u64::from(u32_at(at + 18)?);
        let (name_len, extra_len) = (usize::from(u16_at(at + 26)?), usize::from(u16_at(at + 28)?));
        let name_at = at + 30;
        let name = bytes.get(name_at..name_at + name_len).ok_or("truncated")?;
        let extra = bytes
            .get(name_at + name_len..name_at + name_len + extra_len)
            .ok_or("truncated")?;
        if size == 0xFFFF_FFFF && extra.len() >= 12 && extra[0..2] == [1, 0] {
            size = u64::from_le_bytes(extra[4..12].try_into().map_err(|_| "bad ZIP64 field")?);
        }
        let data_at = name_at + name_len + extra_len;
        let size = usize::try_from(size).map_err(|_| "member too large")?;
        let data = bytes
            .get(data_at..data_at.checked_add(size).ok_or("member too large")?)
            .ok_or("truncated")?;
        members.push((String::from_utf8_lossy(name).into_owned(), data));
        at = data_at + size;
    }
    if members.is_empty() {
        return Err("not an .npz file".into());
    }
    Ok(members)
}
