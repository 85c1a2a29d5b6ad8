//! The bundled digits file format.
#![no_main]
use libfuzzer_sys::fuzz_target;
use relevance::io::Digits;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Digits::from_bytes(data) {
        let _ = d.images::<f32>(&[0]);
    }
});
