//! `relevance inspect`: the model's nodes with shapes and parameters, and the rule each
//! composite gives its dense and convolutional nodes.

use crate::model::load_model;
use crate::{Failure, ModelArgs};
use relevance::image::Preprocess;
use relevance::{Method, MethodName};
use std::fmt::Write as _;

pub fn inspect(args: &ModelArgs) -> Result<(), Failure> {
    let model = load_model(args, None)?;
    let net = &model.net;
    println!(
        "model {}: input {:?}, output {:?}, {} nodes",
        args.model.display(),
        net.input_shape(),
        net.output_shape(),
        net.nodes().len()
    );
    for note in &model.notes {
        println!("importer note: {note}");
    }
    let shapes = net.shapes();
    println!(
        "\n{:>4}  {:<24} {:<36} {:<12} {:<18} {:>10}",
        "#", "name", "operation", "category", "output shape", "parameters"
    );
    let name_of = |v: usize| {
        if v == 0 {
            "input"
        } else {
            net.nodes()[v - 1].name()
        }
    };
    for (k, node) in net.nodes().iter().enumerate() {
        // inputs shown where they are not simply the node before
        let from = match node.inputs() {
            [v] if *v == k => String::new(),
            inputs => format!(
                "  ← {}",
                inputs.iter().map(|&v| name_of(v)).collect::<Vec<_>>().join(", ")
            ),
        };
        println!(
            "{:>4}  {:<24} {:<36} {:<12} {:<18} {:>10}{from}",
            k,
            node.name(),
            node.describe(),
            format!("{:?}", node.category()),
            format!("{:?}", shapes.get(k + 1).map(Vec::as_slice).unwrap_or(&[])),
            node.parameter_count()
        );
    }
    let total: usize = net.nodes().iter().map(|n| n.parameter_count()).sum();
    println!("total parameters: {total}");
    composite_table(net)
}

/// The rule each composite gives the affine nodes (z^B bounds: pixels in [0, 1]).
fn composite_table(net: &relevance::Network<f32>) -> Result<(), Failure> {
    let infos = net.node_infos();
    let bounds = Preprocess::none()
        .bounds::<f32>(net.input_shape())
        .map_err(|e| Failure::Run(e.to_string()))?;
    let affine: Vec<usize> = (0..infos.len())
        .filter(|&k| infos[k].category.is_affine())
        .collect();
    println!(
        "\nRules per composite on the dense and convolutional nodes (the others pass, split or route relevance alike under every LRP rule):"
    );
    let mut columns: Vec<(String, Vec<String>)> = Vec::new();
    for info in MethodName::all().iter().filter(|i| i.composite) {
        let name: MethodName = info
            .name
            .parse()
            .map_err(|e: relevance::Error| Failure::Run(e.to_string()))?;
        let Method::Lrp(rules) = name
            .method(Some(bounds.clone()), relevance::Baseline::Zero)
            .map_err(|e| Failure::Run(e.to_string()))?
        else {
            continue;
        };
        columns.push((
            name.to_string(),
            rules.resolve(&infos).iter().map(|r| r.name()).collect(),
        ));
    }
    let name_width = affine
        .iter()
        .map(|&k| infos[k].name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let widths: Vec<usize> = columns
        .iter()
        .map(|(name, rules)| {
            affine
                .iter()
                .map(|&k| rules[k].chars().count())
                .fold(name.len(), usize::max)
        })
        .collect();
    let mut header = format!("{:<name_width$}", "node");
    for ((name, _), w) in columns.iter().zip(&widths) {
        let _ = write!(header, "  {name:<w$}");
    }
    println!("{}", header.trim_end());
    for &k in &affine {
        let mut line = format!("{:<name_width$}", infos[k].name);
        for ((_, rules), w) in columns.iter().zip(&widths) {
            let _ = write!(line, "  {:<w$}", rules[k]);
        }
        println!("{}", line.trim_end());
    }
    if affine.is_empty() {
        println!("(no dense or convolutional node)");
    }
    Ok(())
}
