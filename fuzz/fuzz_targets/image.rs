//! Image bytes (PNG, JPEG or anything) → `decode_image` as a grey 28×28 and an RGB 32×32
//! input (resized and cropped), and a `.npy` model input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use relevance::image::{decode_image, read_npy_input, Preprocess};

fuzz_target!(|data: &[u8]| {
    let pre = Preprocess::none();
    let _ = decode_image::<f32>(data, &[1, 28, 28], &pre);
    let _ = decode_image::<f32>(data, &[3, 32, 32], &pre);
    let _ = read_npy_input::<f32>(data, &Preprocess::mnist());
});
