//! The architecture JSON and the safetensors bytes, split at the first byte's position.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ndarray::ArrayD;
use relevance::io::{from_safetensors, Architecture};

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |&b| (b as usize * data.len()) / 256);
    let (json, weights) = data.split_at(cut.min(data.len()));
    let Ok(text) = std::str::from_utf8(json) else { return };
    let Ok(arch) = Architecture::from_json(text) else { return };
    if let Ok(net) = from_safetensors::<f32>(&arch, weights) {
        let mut shape = vec![1];
        shape.extend(net.input_shape());
        if shape.iter().product::<usize>() <= 1 << 16 {
            let _ = net.forward(&ArrayD::<f32>::from_elem(shape, 0.5));
        }
    }
});
