//! Heatmap rendering of arbitrary relevance: the bytes are read as f32 values of a map
//! whose height is the first byte (the rest is the width).
#![no_main]
use libfuzzer_sys::fuzz_target;
use ndarray::Array2;
use relevance::heatmap::{normalize, Heatmap, Normalization};

fuzz_target!(|data: &[u8]| {
    let Some((&h, rest)) = data.split_first() else { return };
    let values: Vec<f32> = rest.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let h = (h as usize).max(1);
    if values.len() < h {
        return;
    }
    let w = values.len() / h;
    let Ok(map) = Array2::from_shape_vec((h, w), values[..h * w].to_vec()) else { return };
    for n in [Normalization::Symmetric, Normalization::Absolute, Normalization::Unaligned, Normalization::Percentile(1.0)] {
        let _ = normalize(&map.view(), n);
    }
    let _ = Heatmap::default().render(&map.into_dyn().view());
});
