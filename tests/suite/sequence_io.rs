//! Sequence files (feature `genomics-io`): FASTA plain and gzip, BED regions, windows, one-hot
//! encoding, `.npz` archives for tfmodisco-lite and the summary; every bad input a typed error
//! naming where, nothing half-written.

use flate2::write::GzEncoder;
use flate2::Compression;
use ndarray::{array, Array3, ArrayD, Axis};
use proptest::prelude::*;
use relevance::genomics::deep_lift_shap;
use relevance::genomics::io::{
    centred, one_hot, one_hot_batch, parse_bed, read_bed, read_fasta, write_modisco_inputs, write_npz,
    write_npz_zip64, write_summary, BedRegion, FastaReader, FastaRecord, Genome,
};
use relevance::io::read_npy;
use relevance::{AvgPool1d, Conv1d, Conv1dConfig, Error, Flatten, Layer, Network, Relu, Target};
use std::io::Write;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sequences")
        .join(name)
}

/// A fresh empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relevance-seqio-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn names(records: &[FastaRecord]) -> Vec<&str> {
    records.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn fasta_multi_line_records_keep_case_and_first_word() {
    let records = read_fasta(fixture("small.fa")).unwrap();
    assert_eq!(names(&records), ["seq1", "seq2", "seq3"]);
    assert_eq!(records[0].sequence, b"ACGTacgtNNac");
    assert_eq!(records[1].sequence, b"GGCCAATTnnnn");
    assert_eq!(records[2].sequence, b"acgtACGTacgt");
}

#[test]
fn gzip_is_recognised_by_magic_bytes_not_name() {
    let dir = scratch("gzip");
    let plain = std::fs::read(fixture("small.fa")).unwrap();
    // named .fa although compressed
    std::fs::write(dir.join("small.fa"), gzip(&plain)).unwrap();
    assert_eq!(
        read_fasta(dir.join("small.fa")).unwrap(),
        read_fasta(fixture("small.fa")).unwrap()
    );
    // several gzip members one after another, as bgzip writes
    let (a, b) = plain.split_at(plain.len() / 2);
    let mut members = gzip(a);
    members.extend(gzip(b));
    std::fs::write(dir.join("members.fa.gz"), members).unwrap();
    assert_eq!(
        read_fasta(dir.join("members.fa.gz")).unwrap(),
        read_fasta(fixture("small.fa")).unwrap()
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn fasta_streams_in_batches() {
    let mut reader = FastaReader::open(fixture("small.fa")).unwrap();
    assert_eq!(names(&reader.next_batch(2).unwrap()), ["seq1", "seq2"]);
    assert_eq!(names(&reader.next_batch(2).unwrap()), ["seq3"]);
    assert!(reader.next_batch(2).unwrap().is_empty());
    let from_bytes = FastaReader::new(std::io::Cursor::new(b">x\nAC\nGT\n".to_vec())).unwrap();
    let records: Vec<_> = from_bytes.collect::<relevance::Result<_>>().unwrap();
    assert_eq!(records, [FastaRecord::new("x", "ACGT")]);
}

#[test]
fn one_hot_is_acgt_order_with_n_as_zeros() {
    let x = one_hot::<f64>(b"ACGTNacgtn").unwrap();
    let column = |l: usize| x.column(l).to_vec();
    for (l, row) in [0, 1, 2, 3].into_iter().enumerate() {
        let mut expected = vec![0.0; 4];
        expected[row] = 1.0;
        assert_eq!(column(l), expected);
        assert_eq!(column(l + 5), expected, "lower case as upper");
    }
    assert_eq!(column(4), vec![0.0; 4]);
    assert_eq!(column(9), vec![0.0; 4]);
    let batch = one_hot_batch::<f32>(&read_fasta(fixture("small.fa")).unwrap()).unwrap();
    assert_eq!(batch.shape(), &[3, 4, 12]);
    assert_eq!(batch.index_axis(Axis(0), 1).sum(), 8.0); // GGCCAATT then nnnn
}

#[test]
fn bad_letter_names_record_and_position() {
    let records = read_fasta(fixture("bad_letter.fa")).unwrap();
    let err = records[1].one_hot::<f32>().unwrap_err();
    assert_eq!(
        err,
        Error::InvalidBase {
            record: "bad".into(),
            position: 3,
            letter: 'U'
        }
    );
    assert!(
        err.to_string().contains("sequence bad: letter 'U' at position 3"),
        "{err}"
    );
    let err = one_hot::<f32>(b"AC-T").unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidBase {
            position: 2,
            letter: '-',
            ..
        }
    ));
    let err = one_hot::<f32>(&[b'A', 0xff]).unwrap_err();
    assert!(matches!(err, Error::InvalidBase { position: 1, .. }));
}

#[test]
fn batch_needs_equal_lengths_and_a_record() {
    let records = read_fasta(fixture("bad_letter.fa")).unwrap(); // lengths 4 and 6
    let err = one_hot_batch::<f32>(&records).unwrap_err();
    match &err {
        Error::SequenceFile { location, reason, .. } => {
            assert_eq!(location, "record bad");
            assert!(reason.contains("length 6"), "{reason}");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(one_hot_batch::<f32>(&[]).unwrap_err(), Error::EmptyBatch);
}

#[test]
fn empty_truncated_and_binary_fasta_are_typed_errors() {
    let dir = scratch("bad_fasta");
    let plain = std::fs::read(fixture("small.fa")).unwrap();
    let gz = gzip(&plain);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("one byte", b">".to_vec()),
        ("binary", vec![0, 159, 146, 150, 255, 0, 1, 2]),
        ("text, not FASTA", b"hello world\nACGT\n".to_vec()),
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("gzip of nothing", gzip(b"")),
        ("gzip of binary", gzip(&[7, 8, 9, 0, 0])),
    ];
    for (what, bytes) in cases {
        let path = dir.join("input.fa");
        std::fs::write(&path, &bytes).unwrap();
        let err = read_fasta(&path).expect_err(what);
        match &err {
            Error::SequenceFile { file, location, .. } => {
                assert!(file.ends_with("input.fa"), "{what}: {err}");
                assert!(location.contains("line"), "{what}: {err}");
            }
            e => panic!("{what}: {e:?}"),
        }
    }
    assert!(matches!(
        read_fasta(dir.join("missing.fa")),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bed_skips_headers_and_keeps_columns() {
    let regions = read_bed(fixture("peaks.narrowPeak")).unwrap();
    assert_eq!(regions.len(), 3);
    let a = &regions[0];
    assert_eq!((a.chrom.as_str(), a.start, a.end, a.line), ("chr1", 10, 30, 5));
    assert_eq!(
        (a.name.as_deref(), a.strand, a.summit),
        (Some("peakA"), Some('+'), None)
    );
    assert_eq!(regions[1].strand, Some('-'));
    let c = &regions[2];
    assert_eq!((c.strand, c.summit, c.line), (None, Some(25), 7));
    // BED3 with Windows line ends
    let r = parse_bed(b"chrX\t0\t5\r\n", "x.bed").unwrap();
    assert_eq!(
        r,
        [BedRegion {
            line: 1,
            ..BedRegion::new("chrX", 0, 5)
        }]
    );
}

#[test]
fn bad_bed_lines_name_their_line() {
    let cases: [(&[u8], &str); 8] = [
        (b"chr1\t10\n", "column"),
        (b"# ok\nchr1 10 20\n", "column"),
        (b"chr1\tten\t20\n", "start"),
        (b"chr1\t10\t-20\n", "end"),
        (b"chr1\t30\t20\n", "before start"),
        (b"\t1\t2\n", "empty"),
        (b"chr1\t1\t2\tn\t0\t*\n", "strand"),
        (b"chr1\t10\t20\tn\t0\t.\t1\t1\t1\t11\n", "summit"),
    ];
    for (text, needle) in cases {
        let err = parse_bed(text, "p.bed").unwrap_err();
        let line = text.split(|b| *b == b'\n').count() - 1;
        match &err {
            Error::SequenceFile {
                file,
                location,
                reason,
            } => {
                assert_eq!(file, "p.bed");
                assert_eq!(location, &format!("line {line}"), "{err}");
                assert!(reason.contains(needle), "{err}");
            }
            e => panic!("{e:?}"),
        }
    }
    assert!(matches!(
        parse_bed(b"chr1\t\xff\t2\n", "p.bed"),
        Err(Error::SequenceFile { .. })
    ));
}

#[test]
fn windows_centre_on_summit_or_midpoint_and_stay_in_bounds() {
    let genome = Genome::read(fixture("genome.fa")).unwrap();
    assert_eq!(
        (genome.len("chr1"), genome.len("chr2"), genome.len("chr3")),
        (Some(48), Some(20), None)
    );
    let regions = read_bed(fixture("peaks.narrowPeak")).unwrap();
    let windows = centred(&regions, 8).unwrap();
    // chr1 10-30: midpoint 20 → [16, 24); chr2 4-12: midpoint 8 → [4, 12); summit 0+25 → [21, 29)
    let spans: Vec<_> = windows.iter().map(|w| (w.start, w.end)).collect();
    assert_eq!(spans, [(16, 24), (4, 12), (21, 29)]);
    assert_eq!(windows[0].name.as_deref(), Some("peakA"));
    let records = genome.extract(&windows).unwrap();
    assert_eq!(names(&records), ["chr1:16-24", "chr2:4-12", "chr1:21-29"]);
    assert_eq!(records[0].sequence, b"AAAACCCC");
    assert_eq!(records[1].sequence, b"acgtacgt");
    // odd width: the window starts width / 2 before the centre
    let w = BedRegion::new("chr1", 10, 20).centred(5).unwrap();
    assert_eq!((w.start, w.end, w.summit), (13, 18, Some(2)));

    // past the end, named by its BED line and chromosome
    let far = centred(
        &parse_bed(b"chr1\t10\t30\n#\nchr2\t10\t20\n", "far.bed").unwrap(),
        16,
    )
    .unwrap();
    assert_eq!(
        (far[0].start, far[0].end, far[1].start, far[1].end),
        (12, 28, 7, 23)
    );
    let err = genome.extract(&far).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("line 3") && text.contains("chr2") && text.contains("past the end"),
        "{text}"
    );
    let err = centred(&regions, 100).unwrap_err();
    assert!(
        err.to_string().contains("line 5") && err.to_string().contains("before"),
        "{err}"
    );
    let err = genome.extract(&[BedRegion::new("chrUn", 0, 1)]).unwrap_err();
    assert!(err.to_string().contains("chrUn is not in the genome"), "{err}");
    assert!(err.to_string().contains("region chrUn:0-1"), "{err}");
    let backwards = BedRegion::new("chr1", 5, 2);
    assert!(genome.extract(&[backwards]).is_err());
    assert!(BedRegion::new("chr1", 5, 9).centred(0).is_err());
    let twice = Genome::from_records([FastaRecord::new("a", "AC"), FastaRecord::new("a", "GT")]);
    assert!(twice.unwrap_err().to_string().contains("twice"));
}

/// The members of a zip archive as (name, data), read from its central directory (ZIP64
/// fields included) without any zip library.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as u64;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as u64;
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let eocd = bytes.len() - 22;
    assert_eq!(u32_at(eocd), 0x0605_4b50);
    let (mut count, mut cd) = (u16_at(eocd + 10), u32_at(eocd + 16));
    if cd == 0xFFFF_FFFF {
        let locator = eocd - 20;
        assert_eq!(u32_at(locator), 0x0706_4b50);
        let record = u64_at(locator + 8) as usize;
        assert_eq!(u32_at(record), 0x0606_4b50);
        count = u64_at(record + 32);
        cd = u64_at(record + 48);
    }
    let mut out = Vec::new();
    let mut p = cd as usize;
    for _ in 0..count {
        assert_eq!(u32_at(p), 0x0201_4b50);
        assert_eq!(u16_at(p + 10), 0, "stored");
        let crc = u32_at(p + 16) as u32;
        let (mut size, mut offset) = (u32_at(p + 24), u32_at(p + 42));
        let (name_len, extra_len, comment_len) = (
            u16_at(p + 28) as usize,
            u16_at(p + 30) as usize,
            u16_at(p + 32) as usize,
        );
        let name = String::from_utf8(bytes[p + 46..p + 46 + name_len].to_vec()).unwrap();
        let mut e = p + 46 + name_len;
        if extra_len > 0 {
            assert_eq!(u16_at(e), 1, "ZIP64 extra field");
            e += 4;
            if size == 0xFFFF_FFFF {
                size = u64_at(e);
                e += 16;
            }
            if offset == 0xFFFF_FFFF {
                offset = u64_at(e);
            }
        }
        let l = offset as usize;
        assert_eq!(u32_at(l), 0x0403_4b50);
        assert_eq!(u32_at(l + 14) as u32, crc);
        let data = l + 30 + u16_at(l + 26) as usize + u16_at(l + 28) as usize;
        let member = bytes[data..data + size as usize].to_vec();
        assert_eq!(crc32(&member), crc, "{name}");
        out.push((name, member));
        p += 46 + name_len + extra_len + comment_len;
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn npz_members_are_npy_arrays_with_their_names() {
    let dir = scratch("npz");
    let a = ArrayD::from_shape_fn(vec![2, 4, 5], |i| (i[0] * 100 + i[1] * 10 + i[2]) as f32 - 7.5);
    let b = array![1.0_f64, -2.0].into_dyn();
    let a64 = a.mapv(f64::from);
    write_npz(dir.join("x.npz"), &[("arr_0", &a64), ("gap", &b)]).unwrap();
    write_npz_zip64(dir.join("x64.npz"), &[("arr_0", &a64), ("gap", &b)]).unwrap();
    for file in ["x.npz", "x64.npz"] {
        let members = unzip(&std::fs::read(dir.join(file)).unwrap());
        assert_eq!(
            members.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
            ["arr_0.npy", "gap.npy"]
        );
        assert_eq!(read_npy::<f64>(&members[0].1).unwrap(), a64);
        assert_eq!(read_npy::<f64>(&members[1].1).unwrap(), b);
    }
    // f32 arrays are stored as <f4, a transposed view in C order
    let t = a.clone().permuted_axes(vec![2, 1, 0]);
    write_npz(dir.join("t.npz"), &[("arr_0", &t)]).unwrap();
    let member = &unzip(&std::fs::read(dir.join("t.npz")).unwrap())[0].1;
    assert_eq!(relevance::io::npy_element_type(member).unwrap(), "<f4");
    assert_eq!(read_npy::<f32>(member).unwrap(), t);
    // names
    for bad in [&[("", &b)][..], &[("a/b", &b)], &[("g", &b), ("g", &b)]] {
        assert!(matches!(
            write_npz(dir.join("bad.npz"), bad),
            Err(Error::InvalidParameter { .. })
        ));
    }
    assert!(!dir.join("bad.npz").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn modisco_inputs_are_arr_0_of_n_4_l() {
    let dir = scratch("modisco");
    let x = one_hot_batch::<f32>(&read_fasta(fixture("small.fa")).unwrap())
        .unwrap()
        .into_dyn();
    let hyp = x.mapv(|v| v * 0.5 - 0.1);
    write_modisco_inputs(dir.join("ohe.npz"), dir.join("shap.npz"), &x, &hyp).unwrap();
    for (file, array) in [("ohe.npz", &x), ("shap.npz", &hyp)] {
        let members = unzip(&std::fs::read(dir.join(file)).unwrap());
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].0, "arr_0.npy");
        assert_eq!(&read_npy::<f32>(&members[0].1).unwrap(), array);
    }
    let wrong = ArrayD::<f32>::zeros(vec![3, 5, 12]);
    assert!(matches!(
        write_modisco_inputs(dir.join("a.npz"), dir.join("b.npz"), &wrong, &wrong),
        Err(Error::Shape { .. })
    ));
    let flat = ArrayD::<f32>::zeros(vec![3, 48]);
    assert!(matches!(
        write_modisco_inputs(dir.join("a.npz"), dir.join("b.npz"), &flat, &flat),
        Err(Error::Rank { .. })
    ));
    assert!(matches!(
        write_modisco_inputs(
            dir.join("a.npz"),
            dir.join("b.npz"),
            &x,
            &hyp.slice_axis(Axis(2), (0..4).into()).to_owned()
        ),
        Err(Error::Shape { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_error_midway_leaves_no_file() {
    let dir = scratch("atomic");
    let x = ArrayD::<f32>::zeros(vec![2, 4, 1000]);
    let mut hyp = x.clone();
    hyp[[1, 3, 999]] = f32::NAN; // the very last value of the second file
    std::fs::write(dir.join("shap.npz"), b"old").unwrap();
    let err = write_modisco_inputs(dir.join("ohe.npz"), dir.join("shap.npz"), &x, &hyp).unwrap_err();
    assert!(matches!(err, Error::NonFinite { index: 7999, .. }), "{err:?}");
    // neither the first (complete) file nor a temporary is left; the old file is untouched
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["shap.npz"]);
    assert_eq!(std::fs::read(dir.join("shap.npz")).unwrap(), b"old");
    // a directory that does not exist: an Io error, nothing created
    let err = write_npz(dir.join("no/such/dir.npz"), &[("a", &x)]).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn summary_has_one_line_per_window() {
    let dir = scratch("summary");
    let genome = Genome::read(fixture("genome.fa")).unwrap();
    let windows = centred(&read_bed(fixture("peaks.narrowPeak")).unwrap(), 8).unwrap();
    let x = one_hot_batch::<f64>(&genome.extract(&windows).unwrap())
        .unwrap()
        .into_dyn();
    let w = Array3::from_shape_fn((2, 4, 3), |(o, c, k)| ((o + 2 * c + k) % 5) as f64 - 2.0);
    let net = Network::<f64>::new(
        &[4, 8],
        vec![
            Box::new(Conv1d::new(w, None, Conv1dConfig::default().same()).unwrap()) as Box<dyn Layer<f64>>,
            Box::new(Relu),
            Box::new(AvgPool1d::global()),
            Box::new(Flatten),
        ],
    )
    .unwrap();
    let refs = x.mapv(|_| 0.25).insert_axis(Axis(1));
    let r = deep_lift_shap(&net, &x, &refs, &Target::Class(1)).unwrap();
    write_summary(dir.join("s.bed"), &windows, &r).unwrap();
    let text = std::fs::read_to_string(dir.join("s.bed")).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 3);
    for (i, (cols, w)) in lines.iter().zip(&windows).enumerate() {
        assert_eq!(cols.len(), 8);
        assert_eq!(
            cols[..4],
            [
                w.chrom.as_str(),
                &w.start.to_string(),
                &w.end.to_string(),
                w.name.as_deref().unwrap_or(".")
            ]
        );
        let per_base = r.attributions.index_axis(Axis(0), i).sum_axis(Axis(0));
        let total: f64 = cols[4].parse().unwrap();
        assert!((total - per_base.sum()).abs() < 1e-12);
        assert!(cols[5].parse::<f64>().unwrap().abs() < 1e-9, "gap");
        let peak: u64 = cols[6].parse().unwrap();
        let value: f64 = cols[7].parse().unwrap();
        assert_eq!(value, per_base[(peak - w.start) as usize]);
        assert!(per_base.iter().all(|v| v.abs() <= value.abs()));
    }
    assert_eq!(lines[2][3], "peakC");
    let err = write_summary(dir.join("t.bed"), &windows[..2], &r).unwrap_err();
    assert!(matches!(err, Error::BatchMismatch { .. }));
    let mut wide = windows.clone();
    wide[1].end += 1;
    assert!(matches!(
        write_summary(dir.join("t.bed"), &wide, &r),
        Err(Error::Shape { .. })
    ));
    assert!(!dir.join("t.bed").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes (also behind gzip's magic), and the FASTA fixtures (plain and gzip) cut
    /// short or with a byte changed, read to records or a typed error, never a panic.
    #[test]
    fn fasta_input_never_panics(
        random in proptest::collection::vec(any::<u8>(), 0..200),
        cut in 0.0..1.0_f64,
        flip in any::<(usize, u8)>(),
        zipped in any::<bool>(),
    ) {
        let plain = std::fs::read(fixture("small.fa")).unwrap();
        let base = if zipped { gzip(&plain) } else { plain };
        let mut flipped = base.clone();
        let i = flip.0 % flipped.len();
        flipped[i] = flip.1;
        let truncated = base[..(base.len() as f64 * cut) as usize].to_vec();
        let mut fake_gzip = vec![0x1f, 0x8b]; // gzip's magic, then anything
        fake_gzip.extend_from_slice(&random);
        for bytes in [random, truncated, flipped, fake_gzip] {
            let reader = FastaReader::new(std::io::Cursor::new(bytes));
            if let Ok(reader) = reader {
                for record in reader {
                    match record {
                        Ok(r) => { let _ = r.one_hot::<f32>(); }
                        Err(e) => prop_assert!(matches!(e, Error::SequenceFile { .. }), "{e:?}"),
                    }
                }
            }
        }
    }

    /// Random text never makes the BED parser panic.
    #[test]
    fn bed_input_never_panics(text in "[a-z0-9\t\n #.+-]{0,120}") {
        let _ = parse_bed(text.as_bytes(), "random.bed");
    }
}
