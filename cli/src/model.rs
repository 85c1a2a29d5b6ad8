//! Loading the model: ONNX, or safetensors with its JSON architecture, with the CLI's
//! messages.

use crate::{Failure, ModelArgs};
use relevance::io::{load_onnx_with, load_safetensors, FixedInput, OnnxOptions};
use relevance::Network;

/// A loaded model and the importer's notes.
pub struct Model {
    pub net: Network<f32>,
    pub notes: Vec<String>,
}

pub fn load_model(args: &ModelArgs, fallback_shape: Option<Vec<usize>>) -> Result<Model, Failure> {
    let path = &args.model;
    let shown = path.display();
    if !path.exists() {
        return Err(Failure::Run(format!("the model file {shown} does not exist")));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "onnx" => {
            let mut options = OnnxOptions::default();
            if let Some(output) = &args.output {
                options = options.with_output(output);
            }
            for (name, value) in &args.fix {
                options = options.with_fixed_input(name, FixedInput::Fill(*value));
            }
            let shape = args.input_shape.clone().map(|s| s.0);
            let first = shape
                .as_ref()
                .map_or(options.clone(), |s| options.clone().with_input_shape(s));
            let loaded = match load_onnx_with::<f32>(path, &first) {
                Err(e)
                    if shape.is_none() && e.to_string().contains("symbolic") && fallback_shape.is_some() =>
                {
                    load_onnx_with::<f32>(
                        path,
                        &options.with_input_shape(fallback_shape.as_deref().unwrap_or(&[])),
                    )
                }
                other => other,
            };
            let model = loaded.map_err(|e| {
                let hint = if e.to_string().contains("symbolic") {
                    "; give the input shape with --input-shape C,H,W"
                } else {
                    ""
                };
                Failure::Run(format!("cannot load the model {shown}: {e}{hint}"))
            })?;
            Ok(Model {
                net: model.network,
                notes: model.notes,
            })
        }
        "safetensors" => {
            let arch = args.arch.clone().unwrap_or_else(|| path.with_extension("json"));
            if !arch.exists() {
                return Err(Failure::Usage(format!(
                    "the architecture {} of the safetensors model {shown} does not exist; give it with --arch FILE.json",
                    arch.display()
                )));
            }
            let net = load_safetensors::<f32>(&arch, path).map_err(|e| {
                Failure::Run(format!(
                    "cannot load the model {shown} with the architecture {}: {e}",
                    arch.display()
                ))
            })?;
            Ok(Model {
                net,
                notes: Vec::new(),
            })
        }
        _ => Err(Failure::Usage(format!(
            "{shown}: unknown model type; give an .onnx file, or a .safetensors file with --arch FILE.json"
        ))),
    }
}
