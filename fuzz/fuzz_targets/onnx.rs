//! ONNX bytes → `from_onnx_with` (with and without an input shape); a network that loads
//! must run and explain.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ndarray::ArrayD;
use relevance::io::{from_onnx_with, OnnxOptions};
use relevance::{Composite, Target};

fuzz_target!(|data: &[u8]| {
    for options in [OnnxOptions::default(), OnnxOptions::default().with_input_shape(&[3, 8, 8])] {
        if let Ok(m) = from_onnx_with::<f32>(data, &options) {
            let mut shape = vec![1];
            shape.extend(m.network.input_shape());
            if shape.iter().product::<usize>() <= 1 << 16 {
                let x = ArrayD::<f32>::from_elem(shape, 0.5);
                let _ = m.network.attribute(&x, &Target::Class(0), &Composite::epsilon_plus());
            }
        }
    }
});
