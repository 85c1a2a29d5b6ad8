//! `.npy` bytes → `read_npy` in both float types, and back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use relevance::io::{read_npy, write_npy};

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = read_npy::<f32>(data) {
        let _ = read_npy::<f32>(&write_npy(&a));
    }
    let _ = read_npy::<f64>(data);
});
