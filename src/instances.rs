//! Compile-time help for the crates that use this one in unoptimised and `opt-level = 1`
//! builds (the tests, the examples, the doc tests, the command-line tool's tests).
//!
//! rustc shares generic code between crates at opt-level 0 and 1 ("share-generics"): a
//! downstream crate links an instance of a generic function that this crate compiled
//! instead of compiling its own. The library is generic over the float type, so without
//! this module every test binary and example compiled the whole network, rule and loader
//! code for `f32` and `f64` again (an example took 10 s instead of 2.5 s). [`instantiate`]
//! names the main entry points for both types, so this crate compiles them once.
//!
//! Only with debug assertions on (the `dev` and `test` profiles): optimised builds do not
//! share generics, and there the instances would be compiled for nothing.

use crate::*;
use ndarray::ArrayD;

fn boxed<F: Float, L: Layer<F> + 'static>(layer: L) -> Box<dyn Layer<F>> {
    Box::new(layer)
}

fn lrp<F: Float, R: RuleSet<F> + 'static>(rules: R) -> Method<F> {
    Method::lrp(rules)
}

/// The addresses of the entry points for one float type (their values do not matter: taking
/// them makes the compiler build the functions).
fn entry_points<F: Float>() -> Vec<usize> {
    type Attribute<F, R> = fn(&Network<F>, &ArrayD<F>, &Target<F>, &R, Options) -> Result<Attribution<F>>;
    type Boxed<F, L> = fn(L) -> Box<dyn Layer<F>>;
    type Lrp<F, R> = fn(R) -> Method<F>;
    #[cfg_attr(not(any(feature = "onnx", feature = "safetensors")), allow(unused_mut))]
    let mut points = vec![
        Network::<F>::new as fn(&[usize], Vec<Box<dyn Layer<F>>>) -> Result<Network<F>> as usize,
        Network::<F>::forward as fn(&Network<F>, &ArrayD<F>) -> Result<ArrayD<F>> as usize,
        Network::<F>::trace as fn(&Network<F>, &ArrayD<F>) -> Result<Trace<F>> as usize,
        Network::<F>::explain_with
            as fn(&Network<F>, &ArrayD<F>, &Target<F>, &Method<F>, Options) -> Result<Attribution<F>>
            as usize,
        Network::<F>::attribute_with::<dyn RuleSet<F>> as Attribute<F, dyn RuleSet<F>> as usize,
        Network::<F>::attribute_with::<Composite<F>> as Attribute<F, Composite<F>> as usize,
        Network::<F>::deeplift_with
            as fn(
                &Network<F>,
                &ArrayD<F>,
                &Target<F>,
                &DeepLift,
                &Baseline<F>,
                DeepLiftOptions,
            ) -> Result<DeepLiftAttribution<F>> as usize,
        GraphBuilder::<F>::new as fn(&[usize]) -> Result<GraphBuilder<F>> as usize,
        GraphBuilder::<F>::add_boxed
            as fn(&mut GraphBuilder<F>, &str, Box<dyn Layer<F>>, NodeId) -> Result<NodeId> as usize,
        GraphBuilder::<F>::merge_boxed
            as fn(&mut GraphBuilder<F>, &str, Box<dyn Merge<F>>, &[NodeId]) -> Result<NodeId>
            as usize,
        GraphBuilder::<F>::build as fn(GraphBuilder<F>, NodeId) -> Result<Network<F>> as usize,
        boxed::<F, Dense<F>> as Boxed<F, Dense<F>> as usize,
        boxed::<F, Conv2d<F>> as Boxed<F, Conv2d<F>> as usize,
        boxed::<F, Relu> as Boxed<F, Relu> as usize,
        boxed::<F, Flatten> as Boxed<F, Flatten> as usize,
        boxed::<F, MaxPool2d> as Boxed<F, MaxPool2d> as usize,
        lrp::<F, Lrp0> as Lrp<F, Lrp0> as usize,
        lrp::<F, LrpEpsilon> as Lrp<F, LrpEpsilon> as usize,
        lrp::<F, LrpGamma> as Lrp<F, LrpGamma> as usize,
        lrp::<F, Composite<F>> as Lrp<F, Composite<F>> as usize,
        lrp::<F, AttnLrp> as Lrp<F, AttnLrp> as usize,
        lrp::<F, CpLrp> as Lrp<F, CpLrp> as usize,
        Method::<F>::deeplift as fn(DeepLift, Baseline<F>) -> Method<F> as usize,
        eval::RegionPerturbation::<F>::evaluate
            as fn(
                &eval::RegionPerturbation<F>,
                &Network<F>,
                &ArrayD<F>,
                &ArrayD<F>,
                &Target<F>,
            ) -> Result<eval::PerturbationCurves<F>> as usize,
    ];
    #[cfg(feature = "onnx")]
    points.push(io::from_onnx_with::<F> as fn(&[u8], &io::OnnxOptions) -> Result<io::OnnxModel<F>> as usize);
    #[cfg(feature = "safetensors")]
    points.push(
        io::from_safetensors_with::<F> as fn(&io::Architecture, &[u8], io::LoadOptions) -> Result<Network<F>>
            as usize,
    );
    points
}

/// Builds the entry points for `f32` and `f64`; returns how many there are. Not for use:
/// public only so that the compiler keeps it (and the instances it names).
#[doc(hidden)]
pub fn instantiate() -> usize {
    entry_points::<f32>().len() + entry_points::<f64>().len()
}
