//! What a node's relevance pass is given: [`Step`] for a node with one input, [`MergeStep`]
//! for one with several.

#[cfg(doc)]
use super::{Layer, LinearMap, Merge};
use ndarray::ArrayViewD; // doc links

/// What a layer's relevance pass is given: the recorded forward pass of the layer and the
/// relevance arriving at its output.
///
/// # Shapes
/// `input` is `[N, in...]`, `output` and `relevance` are `[N, out...]`. The baseline
/// fields, when present, have the shapes of `input` and `output`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Step<'a, F> {
    /// Position of the node in the network (0 = first node).
    pub index: usize,
    /// The layer's recorded input.
    pub input: ArrayViewD<'a, F>,
    /// The layer's recorded output (for affine layers: the pre-activation z = Wx + b).
    pub output: ArrayViewD<'a, F>,
    /// Relevance at the layer's output.
    pub relevance: ArrayViewD<'a, F>,
    /// The layer's input on the baseline (reference) pass, for rules that need one.
    pub baseline_input: Option<ArrayViewD<'a, F>>,
    /// The layer's output on the baseline (reference) pass, for rules that need one.
    pub baseline_output: Option<ArrayViewD<'a, F>>,
}

impl<'a, F> Step<'a, F> {
    /// A step without a baseline pass.
    pub fn new(
        index: usize,
        input: ArrayViewD<'a, F>,
        output: ArrayViewD<'a, F>,
        relevance: ArrayViewD<'a, F>,
    ) -> Self {
        Step {
            index,
            input,
            output,
            relevance,
            baseline_input: None,
            baseline_output: None,
        }
    }

    /// Adds the layer's input and output on the baseline pass.
    pub fn with_baseline(mut self, input: ArrayViewD<'a, F>, output: ArrayViewD<'a, F>) -> Self {
        self.baseline_input = Some(input);
        self.baseline_output = Some(output);
        self
    }
}

/// What a node with several inputs ([`Merge`]) — or a [`LinearMap`] of one input — is
/// given for its relevance pass.
///
/// # Shapes
/// `inputs[k]` is `[N, in_k...]`; `output` and `relevance` are `[N, out...]`. Baselines,
/// when present, have the shapes of `inputs` and `output`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MergeStep<'a, F> {
    /// Position of the node in the network (0 = first node).
    pub index: usize,
    /// The node's recorded inputs, in the order they were given to the node.
    pub inputs: Vec<ArrayViewD<'a, F>>,
    /// The node's recorded output.
    pub output: ArrayViewD<'a, F>,
    /// Relevance (or DeepLIFT multipliers) at the node's output.
    pub relevance: ArrayViewD<'a, F>,
    /// The inputs on the baseline (reference) pass, for rules that need one.
    pub baseline_inputs: Option<Vec<ArrayViewD<'a, F>>>,
    /// The output on the baseline (reference) pass, for rules that need one.
    pub baseline_output: Option<ArrayViewD<'a, F>>,
    /// For each input, whether it comes out of a gating activation ([`Layer::is_gate`],
    /// e.g. a sigmoid): a product sends no relevance to a gate.
    pub gates: Vec<bool>,
}

impl<'a, F> MergeStep<'a, F> {
    /// A step without a baseline pass and with no gate among the inputs.
    pub fn new(
        index: usize,
        inputs: Vec<ArrayViewD<'a, F>>,
        output: ArrayViewD<'a, F>,
        relevance: ArrayViewD<'a, F>,
    ) -> Self {
        let gates = vec![false; inputs.len()];
        MergeStep {
            index,
            inputs,
            output,
            relevance,
            baseline_inputs: None,
            baseline_output: None,
            gates,
        }
    }

    /// Adds the inputs and the output on the baseline pass.
    pub fn with_baseline(mut self, inputs: Vec<ArrayViewD<'a, F>>, output: ArrayViewD<'a, F>) -> Self {
        self.baseline_inputs = Some(inputs);
        self.baseline_output = Some(output);
        self
    }

    /// Marks which inputs come out of a gating activation.
    pub fn with_gates(mut self, gates: Vec<bool>) -> Self {
        self.gates = gates;
        self
    }
}

impl<'a, F: Clone> MergeStep<'a, F> {
    /// The step of a one-input layer as a merge step with one input (for layers that are a
    /// [`LinearMap`], such as average pooling).
    pub fn from_step(step: &Step<'a, F>) -> Self {
        MergeStep {
            index: step.index,
            inputs: vec![step.input.clone()],
            output: step.output.clone(),
            relevance: step.relevance.clone(),
            baseline_inputs: step.baseline_input.clone().map(|b| vec![b]),
            baseline_output: step.baseline_output.clone(),
            gates: vec![false],
        }
    }
}
