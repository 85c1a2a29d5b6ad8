//! Nodes that act on data, mapped onto the crate's layers: convolutions and dense layers
//! (with a following constant `Add` taken as their bias), elementwise arithmetic with
//! per-channel constants (an affine per-channel layer, e.g. an input normalisation inside
//! the model), sums, products and concatenations of computed tensors, activations, pools,
//! batch norm, reshapes and padding.

use super::attrs::Attrs;
use super::import::{unsupported, Importer};
use super::proto::NodeProto;
use super::values::{self, Const, Data, Value};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::io::{Op, MAX_DIM};
use crate::layers::{
    Add, AvgPool2d, BatchNorm2d, Clip, Concat, Conv2dConfig, Elu, Gelu, HardSigmoid, HardSwish, Layer,
    LeakyRelu, LocalResponseNorm, MaxPool2d, Mul, Narrow, Permute, Relu, Reshape, Sigmoid, Softmax, Tanh,
};
use ndarray::{ArcArray, ArcArray2, Array1, Axis, Ix4, IxDyn};

impl<'a, F: Float> Importer<'a, F> {
    /// A node with at least one input that depends on the network input.
    pub(super) fn data_node(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<()> {
        let op = node.op_type.as_str();
        let out = match op {
            "Conv" => self.conv(label, node, attrs)?,
            "Gemm" => self.gemm(label, node, attrs)?,
            "MatMul" => self.matmul(label, node)?,
            "Add" | "Sub" | "Mul" | "Div" | "Sum" => self.arithmetic(label, node)?,
            "Relu" | "Sigmoid" | "Tanh" | "HardSwish" | "LeakyRelu" | "HardSigmoid" | "Elu" | "Gelu"
            | "Clip" => {
                let layer = self.activation(label, node, attrs)?;
                let x = self.data(node, 0, label)?;
                match layer {
                    Some(l) => self.layer(label, Op::Layer(l), &[x])?,
                    None => self.alias(node, 0, label)?,
                }
            }
            "MaxPool" | "AveragePool" => self.pool(label, node, attrs)?,
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let d = self.data_value(node, 0, label)?;
                let x = self.materialize(&d, label)?;
                let layer: Box<dyn Layer<F>> = match (op, d.shape.as_slice()) {
                    ("GlobalAveragePool", [_, _, _]) => Box::new(AvgPool2d::global()),
                    ("GlobalMaxPool", [_, h, w]) => Box::new(MaxPool2d::new((*h, *w), (*h, *w), (0, 0))?),
                    _ => {
                        return Err(unsupported(
                            label,
                            op,
                            format!("input of per-sample shape {:?} (2-D images only)", d.shape),
                        ))
                    }
                };
                self.layer(label, Op::Layer(layer), &[x])?
            }
            "ReduceMean" => self.reduce_mean(label, node, attrs)?,
            "Flatten" => self.flatten(label, node, attrs)?,
            "Reshape" => {
                let target = self
                    .constant(node, 1, label)?
                    .ok_or_else(|| unsupported(label, op, "no target shape"))?;
                let target = values::per_sample_target(&target.ints()?, self.batch)?;
                let d = self.data_value(node, 0, label)?;
                let shape = values::resolve_reshape(&d.shape, &target, attrs.int("allowzero", 0)? != 0)
                    .map_err(|e| unsupported(label, op, e.to_string()))?;
                self.reshape_to(label, node, &d, &shape)?
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = if self.opset < 13 {
                    attrs.get("axes").map(|a| a.ints.clone())
                } else {
                    self.constant(node, 1, label)?
                        .map(|c| c.int_list(64))
                        .transpose()?
                };
                let d = self.data_value(node, 0, label)?;
                let mut full = vec![1usize];
                full.extend_from_slice(&d.shape);
                let shape = if op == "Unsqueeze" {
                    let axes = axes.unwrap_or_default();
                    let shape = values::unsqueeze_shape(&full, &axes)?;
                    if axes.iter().any(|&a| values::axis(a, shape.len()).ok() == Some(0)) {
                        return Err(unsupported(label, op, "a new axis before the batch"));
                    }
                    shape
                } else {
                    if axes
                        .as_ref()
                        .is_none_or(|a| a.iter().any(|&a| values::axis(a, full.len()).ok() == Some(0)))
                    {
                        if axes.is_some() {
                            return Err(unsupported(label, op, "squeezing the batch axis"));
                        }
                        // no axes: every 1 but the batch's
                        let shape: Vec<usize> = std::iter::once(1)
                            .chain(d.shape.iter().copied().filter(|&v| v != 1))
                            .collect();
                        let out = self.finish_reshape(label, node, &d, &shape[1..])?;
                        self.set(node, 0, Value::Data(out));
                        return Ok(());
                    }
                    values::squeeze_shape(&full, axes.as_deref())?
                };
                self.reshape_to(label, node, &d, &shape[1..])?
            }
            "Transpose" => {
                let d = self.data_value(node, 0, label)?;
                let rank = d.shape.len() + 1;
                let perm: Vec<usize> = match attrs.get("perm") {
                    Some(a) => a
                        .ints
                        .iter()
                        .map(|&p| values::axis(p, rank))
                        .collect::<Result<_>>()?,
                    None => (0..rank).rev().collect(),
                };
                if perm.first() != Some(&0) {
                    return Err(unsupported(
                        label,
                        op,
                        format!("perm {perm:?} moves the batch axis"),
                    ));
                }
                let per: Vec<usize> = perm[1..].iter().map(|p| p.saturating_sub(1)).collect();
                if per.iter().enumerate().all(|(i, &p)| i == p) {
                    self.alias(node, 0, label)?
                } else {
                    let x = self.materialize(&d, label)?;
                    self.layer(label, Op::Layer(Box::new(Permute::new(&per)?)), &[x])?
                }
            }
            "Concat" => {
                let rank = self.data_value(node, 0, label).map(|d| d.shape.len() + 1);
                let ax = values::axis(attrs.int("axis", 0)?, rank.unwrap_or(2))?;
                if ax == 0 {
                    return Err(unsupported(label, op, "concatenation along the batch axis"));
                }
                let mut ids = Vec::new();
                for pos in 0..node.input.len() {
                    ids.push(self.data(node, pos, label)?);
                }
                self.layer(label, Op::Merge(Box::new(Concat::new(ax - 1))), &ids)?
            }
            "Pad" => self.pad(label, node, attrs)?,
            "Slice" => self.slice(label, node, attrs)?,
            "Split" => return self.split(label, node, attrs),
            "BatchNormalization" => self.batch_norm(label, node, attrs)?,
            "LRN" => {
                attrs.only(&["size", "alpha", "beta", "bias"])?;
                let size = usize::try_from(attrs.int("size", 0)?)
                    .map_err(|_| unsupported(label, op, "a negative size"))?;
                let lrn = LocalResponseNorm::onnx(
                    size,
                    f64::from(attrs.float("alpha", 1e-4)?),
                    f64::from(attrs.float("beta", 0.75)?),
                    f64::from(attrs.float("bias", 1.0)?),
                )?;
                let x = self.data(node, 0, label)?;
                self.layer(label, Op::Layer(Box::new(lrn)), &[x])?
            }
            "ImageScaler" => {
                let d = self.data_value(node, 0, label)?;
                let scale = attrs.float("scale", 1.0)?;
                let bias = attrs.get("bias").map(|a| a.floats.clone()).unwrap_or_default();
                let c = d.shape.first().copied().unwrap_or(0);
                if bias.len() != c {
                    return Err(unsupported(
                        label,
                        op,
                        format!("{} biases for {c} channels", bias.len()),
                    ));
                }
                let layer = BatchNorm2d::from_scale_shift(
                    Array1::from_elem(c, F::lit(f64::from(scale))),
                    bias.iter().map(|&b| F::lit(f64::from(b))).collect(),
                )?;
                let x = self.materialize(&d, label)?;
                self.layer(label, Op::Layer(Box::new(layer)), &[x])?
            }
            "Dropout" | "Identity" => {
                if op == "Dropout" && self.used(node, 1) {
                    return Err(unsupported(label, op, "the dropout mask output is used"));
                }
                self.alias(node, 0, label)?
            }
            "Cast" => match attrs.int("to", 1)? {
                1 | 10 | 11 | 16 => self.alias(node, 0, label)?,
                to => return Err(unsupported(label, op, format!("cast of data to type {to}"))),
            },
            "Softmax" | "LogSoftmax" => {
                if !self.trailing(node) {
                    return Err(unsupported(
                        label,
                        op,
                        "a softmax inside the network (only one at the output is supported: it is removed)",
                    ));
                }
                if self.opts.keep_softmax {
                    if op == "LogSoftmax" {
                        return Err(unsupported(
                            label,
                            op,
                            "keeping a LogSoftmax (OnnxOptions::keep_softmax) is not supported (captum has no \
                             DeepLIFT rule for it): explain the logits",
                        ));
                    }
                    let d = self.data_value(node, 0, label)?;
                    let rank = d.shape.len() + 1;
                    let default = if self.opset < 13 { 1 } else { -1 };
                    let ax = values::axis(attrs.int("axis", default)?, rank)?;
                    // before opset 13 the softmax runs over all axes from `axis` on, flattened
                    if ax == 0 || (self.opset < 13 && ax + 1 != rank) {
                        return Err(unsupported(
                            label,
                            op,
                            format!(
                                "a softmax over axis {ax} of a rank-{rank} tensor (only one per-sample axis)"
                            ),
                        ));
                    }
                    let x = self.materialize(&d, label)?;
                    let out = self.layer(label, Op::Layer(Box::new(Softmax::new(ax - 1))), &[x])?;
                    self.set(node, 0, Value::Data(out));
                    return Ok(());
                }
                self.notes.push(format!(
                    "removed the trailing {op} node {label:?}: the network explains the logits before it, as zennit \
                     and captum users do"
                ));
                self.alias(node, 0, label)?
            }
            other => return Err(unsupported(label, other, "not supported on data")),
        };
        self.set(node, 0, Value::Data(out));
        Ok(())
    }

    /// Input `pos` as data (its pending padding kept).
    pub(super) fn data_value(&mut self, node: &'a NodeProto, pos: usize, label: &str) -> Result<Data> {
        match self.required(node, pos, label)?.as_ref() {
            Value::Data(d) => Ok(d.clone()),
            Value::Const(_) => Err(unsupported(
                label,
                &node.op_type,
                format!("input {pos} is a constant where computed data is expected"),
            )),
        }
    }

    /// Input `pos` as a network node (pending padding applied).
    fn data(&mut self, node: &'a NodeProto, pos: usize, label: &str) -> Result<crate::network::NodeId> {
        let d = self.data_value(node, pos, label)?;
        self.materialize(&d, label)
    }

    /// Output 0 is input 0 (no layer).
    fn alias(&mut self, node: &'a NodeProto, pos: usize, label: &str) -> Result<Data> {
        self.data_value(node, pos, label)
    }

    /// Whether a node's output is the explained output, directly or through identities.
    fn trailing(&self, node: &NodeProto) -> bool {
        let mut t = match node.output.first() {
            Some(t) => t.as_str(),
            None => return false,
        };
        for _ in 0..8 {
            if t == self.output {
                return true;
            }
            let readers = self.readers.get(t).map(Vec::as_slice).unwrap_or_default();
            match readers {
                [r] if matches!(
                    self.graph.node[*r].op_type.as_str(),
                    "Identity" | "Cast" | "Flatten" | "Reshape"
                ) =>
                {
                    t = match self.graph.node[*r].output.first() {
                        Some(o) => o.as_str(),
                        None => return false,
                    };
                }
                _ => return false,
            }
        }
        false
    }

    /// Reshapes data to a per-sample shape (no layer if it is already that shape).
    fn reshape_to(&mut self, label: &str, node: &'a NodeProto, d: &Data, shape: &[usize]) -> Result<Data> {
        self.finish_reshape(label, node, d, shape)
    }

    fn finish_reshape(
        &mut self,
        label: &str,
        _node: &'a NodeProto,
        d: &Data,
        shape: &[usize],
    ) -> Result<Data> {
        if shape == d.shape.as_slice() {
            return Ok(d.clone());
        }
        let x = self.materialize(d, label)?;
        if shape.len() == 1 {
            return self.layer(label, Op::Flatten, &[x]);
        }
        self.layer(label, Op::Layer(Box::new(Reshape::new(shape))), &[x])
    }

    /// A constant `Add` right after `node` (its only reader) whose operand is one value per
    /// output channel: returns the bias and marks the `Add` as handled, its output an alias.
    fn bias_after(
        &mut self,
        node: &'a NodeProto,
        channels: usize,
        rank: usize,
    ) -> Result<Option<(Array1<F>, &'a NodeProto)>> {
        let Some(out) = node.output.first() else {
            return Ok(None);
        };
        if out == self.output {
            return Ok(None);
        }
        let readers = self.readers.get(out.as_str()).cloned().unwrap_or_default();
        let [r] = readers.as_slice() else { return Ok(None) };
        let add = &self.graph.node[*r];
        if add.op_type != "Add" || add.input.len() != 2 || !(add.domain.is_empty() || add.domain == "ai.onnx")
        {
            return Ok(None);
        }
        let other = if add.input[0] == *out { 1 } else { 0 };
        if add.input[1 - other] != *out || add.input[other] == *out {
            return Ok(None);
        }
        let label = add.name.clone();
        let Ok(v) = self.get(add.input[other].as_str(), &label) else {
            return Ok(None);
        };
        let Value::Const(c) = v.as_ref() else {
            return Ok(None);
        };
        let Ok(b) = c.floats() else { return Ok(None) };
        // [C], [1, C] for dense; [C, 1, 1], [1, C, 1, 1] for convolutions
        let shape = b.shape().to_vec();
        let fits = match rank {
            1 => matches!(shape.as_slice(), [c] | [1, c] if *c == channels),
            _ => {
                let mut s: Vec<usize> = shape.clone();
                if s.len() == rank + 1 && s[0] == 1 {
                    s.remove(0);
                }
                s.len() == rank && s[0] == channels && s[1..].iter().all(|&d| d == 1)
            }
        };
        if !fits {
            return Ok(None);
        }
        self.absorbed.insert(*r);
        let bias = b.into_shape_with_order(channels).expect("one value per channel");
        Ok(Some((bias, add)))
    }

    /// Sets the output of an `Add` absorbed as a bias.
    fn finish_bias(&mut self, add: Option<&'a NodeProto>, d: &Data) {
        if let Some(add) = add {
            self.set(add, 0, Value::Data(d.clone()));
        }
    }

    fn conv(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        attrs.only(&[
            "kernel_shape",
            "strides",
            "pads",
            "dilations",
            "group",
            "auto_pad",
        ])?;
        let d = self.data_value(node, 0, label)?;
        let w = self
            .weight(node, 1, label, false)?
            .ok_or_else(|| unsupported(label, "Conv", "no weight"))?;
        let wshape = w.shape().to_vec();
        let w: ArcArray<F, Ix4> = w.into_dimensionality().map_err(|_| {
            unsupported(
                label,
                "Conv",
                format!("weight of shape {wshape:?}: only 2-D convolutions are supported"),
            )
        })?;
        if let Some(k) = attrs.ints("kernel_shape")? {
            if k.as_slice() != &wshape[2..] {
                return Err(Error::Shape {
                    what: "Conv kernel_shape (must match the weight)".into(),
                    expected: wshape[2..].to_vec(),
                    got: k,
                });
            }
        }
        let groups = attrs.int("group", 1)?;
        if groups < 1 || groups as u64 > MAX_DIM as u64 {
            return Err(attrs.bad(format!("group {groups}")));
        }
        let stride = attrs.pair("strides", 1)?;
        let dilation = attrs.pair("dilations", 1)?;
        if d.shape.len() != 3 {
            return Err(unsupported(
                label,
                "Conv",
                format!("input of per-sample shape {:?} (images [C, H, W] only)", d.shape),
            ));
        }
        let kernel = (wshape[2], wshape[3]);
        let (mut begin, mut end) =
            self.pads_of(label, "Conv", attrs, &d.shape[1..], kernel, stride, dilation)?;
        // a zero Pad right before, folded into the convolution's own padding
        let mut input = d.clone();
        if let Some(p) = d.pad.as_ref() {
            if p.len() == 3 && p[0] == (0, 0) {
                begin = (begin.0 + p[1].0, begin.1 + p[2].0);
                end = (end.0 + p[1].1, end.1 + p[2].1);
                input.pad = None;
                self.notes
                    .push(format!("folded a zero Pad into the padding of Conv {label:?}"));
            }
        }
        let x = self.materialize(&input, label)?;
        let mut bias = self
            .constant(node, 2, label)?
            .map(|b| b.floats().map(|b| b.iter().copied().collect::<Array1<F>>()))
            .transpose()?;
        let mut add = None;
        if bias.is_none() {
            if let Some((b, a)) = self.bias_after(node, wshape[0], 3)? {
                bias = Some(b);
                add = Some(a);
            }
        }
        let config = Conv2dConfig {
            stride,
            dilation,
            groups: groups as usize,
            ..Conv2dConfig::default().pads(begin, end)
        };
        let out = self.layer(
            label,
            Op::Conv {
                weight: w,
                bias: bias.map(Array1::into_shared),
                config,
            },
            &[x],
        )?;
        self.finish_bias(add, &out);
        Ok(out)
    }

    /// `pads` `[top, left, bottom, right]` or `auto_pad` of a 2-D window, as (begin, end).
    #[allow(clippy::too_many_arguments)]
    fn pads_of(
        &self,
        label: &str,
        op: &str,
        attrs: &Attrs<'_>,
        spatial: &[usize],
        kernel: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
    ) -> Result<((usize, usize), (usize, usize))> {
        let auto_pad = attrs.string("auto_pad")?;
        match auto_pad.as_str() {
            "" | "NOTSET" => match attrs.ints("pads")?.as_deref() {
                None => Ok(((0, 0), (0, 0))),
                Some([t, l, b, r]) => Ok(((*t, *l), (*b, *r))),
                Some(v) => Err(unsupported(label, op, format!("pads {v:?} are not 2-D"))),
            },
            "VALID" => Ok(((0, 0), (0, 0))),
            "SAME_UPPER" | "SAME_LOWER" => {
                // the output is ⌈in / stride⌉; the extra padding goes at the end (UPPER) or
                // at the beginning (LOWER)
                let total = |len: usize, k: usize, s: usize, d: usize| {
                    let out = len.div_ceil(s);
                    ((out - 1) * s + (k - 1) * d + 1).saturating_sub(len)
                };
                let (th, tw) = (
                    total(spatial[0], kernel.0, stride.0.max(1), dilation.0),
                    total(spatial[1], kernel.1, stride.1.max(1), dilation.1),
                );
                let split = |t: usize| {
                    if auto_pad == "SAME_UPPER" {
                        (t / 2, t - t / 2)
                    } else {
                        (t - t / 2, t / 2)
                    }
                };
                let ((hb, he), (wb, we)) = (split(th), split(tw));
                Ok(((hb, wb), (he, we)))
            }
            other => Err(unsupported(label, op, format!("auto_pad {other}"))),
        }
    }

    fn gemm(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        attrs.only(&["alpha", "beta", "transA", "transB"])?;
        if attrs.int("transA", 0)? != 0 {
            return Err(unsupported(
                label,
                "Gemm",
                "transA = 1 on data (it would transpose the batch)",
            ));
        }
        let alpha = F::lit(f64::from(attrs.float("alpha", 1.0)?));
        let beta = F::lit(f64::from(attrs.float("beta", 1.0)?));
        // [out, in]: B itself with transB, else its transpose
        let w = self.matrix(node, 1, label, attrs.int("transB", 0)? == 0)?;
        let w = if alpha == F::one() {
            w
        } else {
            w.mapv(|v| v * alpha).into_shared()
        };
        let out_features = w.nrows();
        let mut bias = match self.constant(node, 2, label)? {
            Some(c) => {
                let c = c.floats()?;
                let v: Vec<F> = c.iter().map(|&v| v * beta).collect();
                Some(match (c.shape(), v.len()) {
                    (_, n) if n == out_features && c.shape().iter().filter(|&&d| d != 1).count() <= 1 => {
                        Array1::from(v)
                    }
                    (_, 1) => Array1::from_elem(out_features, v[0]),
                    (s, _) => {
                        return Err(unsupported(
                            label,
                            "Gemm",
                            format!("C of shape {s:?} (a bias per output expected)"),
                        ))
                    }
                })
            }
            None => None,
        };
        let x = self.data(node, 0, label)?;
        let mut add = None;
        if bias.is_none() {
            if let Some((b, a)) = self.bias_after(node, out_features, 1)? {
                bias = Some(b);
                add = Some(a);
            }
        }
        let bias = bias.map(Array1::into_shared);
        let out = self.layer(label, Op::Dense { weight: w, bias }, &[x])?;
        self.finish_bias(add, &out);
        Ok(out)
    }

    /// Input `pos` as a shared matrix, `transposed` or as stored.
    fn matrix(
        &mut self,
        node: &'a NodeProto,
        pos: usize,
        label: &str,
        transposed: bool,
    ) -> Result<ArcArray2<F>> {
        let c = self
            .weight(node, pos, label, transposed)?
            .ok_or_else(|| unsupported(label, &node.op_type, format!("input {pos} is missing")))?;
        let mut shape = c.shape().to_vec();
        c.into_dimensionality().map_err(|_| {
            if transposed {
                shape.reverse(); // the stored shape
            }
            Error::Rank {
                what: format!("{} weight", node.op_type),
                expected: 2,
                got: shape.len(),
                shape,
            }
        })
    }

    fn matmul(&mut self, label: &str, node: &'a NodeProto) -> Result<Data> {
        let d = self.data_value(node, 0, label)?;
        if d.shape.len() != 1 {
            return Err(unsupported(
                label,
                "MatMul",
                format!(
                    "data of per-sample shape {:?} (a matrix product per sample of features [K] only)",
                    d.shape
                ),
            ));
        }
        let w = self.matrix(node, 1, label, true)?; // Bᵀ of B [K, M]
        let x = self.materialize(&d, label)?;
        let (bias, add) = match self.bias_after(node, w.nrows(), 1)? {
            Some((b, a)) => (Some(b), Some(a)),
            None => (None, None),
        };
        let bias = bias.map(Array1::into_shared);
        let out = self.layer(label, Op::Dense { weight: w, bias }, &[x])?;
        self.finish_bias(add, &out);
        Ok(out)
    }

    /// `Add`, `Sub`, `Mul`, `Div` with data on at least one side; `Sum` of any number of
    /// computed tensors (older exporters' residual additions).
    fn arithmetic(&mut self, label: &str, node: &'a NodeProto) -> Result<Data> {
        let op = node.op_type.as_str();
        if op == "Sum" && node.input.len() != 2 {
            let mut ids = Vec::with_capacity(node.input.len());
            for pos in 0..node.input.len() {
                ids.push(self.data(node, pos, label)?);
            }
            return match ids.as_slice() {
                [] => Err(unsupported(label, op, "no inputs")),
                [_] => self.alias(node, 0, label),
                _ => self.layer(label, Op::Merge(Box::new(Add::new())), &ids),
            };
        }
        let op = if op == "Sum" { "Add" } else { op };
        if node.input.len() != 2 {
            return Err(unsupported(label, op, format!("{} inputs", node.input.len())));
        }
        let (a, b) = (self.required(node, 0, label)?, self.required(node, 1, label)?);
        match (a.as_ref(), b.as_ref()) {
            (Value::Data(_), Value::Data(_)) => {
                let merge: Box<dyn crate::layers::Merge<F>> = match op {
                    "Add" => Box::new(Add::new()),
                    "Mul" => Box::new(Mul::new()),
                    _ => {
                        return Err(unsupported(
                            label,
                            op,
                            "of two computed tensors (only Add and Mul are)",
                        ))
                    }
                };
                let (x, y) = (self.data(node, 0, label)?, self.data(node, 1, label)?);
                self.layer(label, Op::Merge(merge), &[x, y])
            }
            (Value::Data(d), Value::Const(c)) | (Value::Const(c), Value::Data(d)) => {
                let data_first = matches!(a.as_ref(), Value::Data(_));
                let v = per_channel(c, &d.shape).ok_or_else(|| {
                    unsupported(
                        label,
                        op,
                        format!(
                            "with a constant of shape {:?} that is not one value per channel of the data {:?}",
                            c.shape(),
                            d.shape
                        ),
                    )
                })?;
                let one = F::one();
                let (scale, shift): (Vec<F>, Vec<F>) = match (op, data_first) {
                    ("Add", _) => (vec![one; v.len()], v),
                    ("Sub", true) => (vec![one; v.len()], v.iter().map(|&x| -x).collect()),
                    ("Sub", false) => (vec![-one; v.len()], v),
                    ("Mul", _) => (v.clone(), vec![F::zero(); v.len()]),
                    ("Div", true) => {
                        if v.iter().any(|&x| x == F::zero()) {
                            return Err(unsupported(label, op, "division by zero"));
                        }
                        (v.iter().map(|&x| one / x).collect(), vec![F::zero(); v.len()])
                    }
                    _ => return Err(unsupported(label, op, "a constant divided by data")),
                };
                let layer = BatchNorm2d::from_scale_shift(Array1::from(scale), Array1::from(shift))?;
                let x = self.materialize(d, label)?;
                self.layer(label, Op::Layer(Box::new(layer)), &[x])
            }
            _ => unreachable!("a node with only constant inputs is folded"),
        }
    }

    /// The activation a node describes (`None`: the identity, e.g. an unbounded `Clip`).
    fn activation(
        &mut self,
        label: &str,
        node: &'a NodeProto,
        attrs: &Attrs<'_>,
    ) -> Result<Option<Box<dyn Layer<F>>>> {
        let f = |name: &str, default: f32| attrs.float(name, default).map(f64::from);
        Ok(Some(match node.op_type.as_str() {
            "Relu" => Box::new(Relu),
            "Sigmoid" => Box::new(Sigmoid),
            "Tanh" => Box::new(Tanh),
            "HardSwish" => Box::new(HardSwish),
            "LeakyRelu" => Box::new(LeakyRelu::new(f("alpha", 0.01)?)?),
            "Elu" => Box::new(Elu::new(f("alpha", 1.0)?)?),
            "HardSigmoid" => {
                let (a, b) = (f("alpha", 0.2)?, f("beta", 0.5)?);
                // PyTorch's Hardsigmoid exports as alpha = 1/6 in float32
                if (a - 1.0 / 6.0).abs() < 1e-7 && b == 0.5 {
                    Box::new(HardSigmoid::default())
                } else {
                    Box::new(HardSigmoid::new(a, b)?)
                }
            }
            "Gelu" => match attrs.string("approximate")?.as_str() {
                "" | "none" => Box::new(Gelu::new()),
                "tanh" => Box::new(Gelu::tanh()),
                other => return Err(unsupported(label, "Gelu", format!("approximate {other:?}"))),
            },
            "Clip" => {
                let (lo, hi) = if self.opset < 11 {
                    (f("min", f32::MIN)?, f("max", f32::MAX)?)
                } else {
                    let bound = |imp: &mut Self, pos: usize, default: f64| -> Result<f64> {
                        Ok(match imp.constant(node, pos, label)? {
                            Some(c) => c.floats()?.iter().next().map_or(default, |v| v.as_f64()),
                            None => default,
                        })
                    };
                    (bound(self, 1, f64::NEG_INFINITY)?, bound(self, 2, f64::INFINITY)?)
                };
                let (lo, hi) = (
                    if lo <= f64::from(f32::MIN) {
                        f64::NEG_INFINITY
                    } else {
                        lo
                    },
                    if hi >= f64::from(f32::MAX) {
                        f64::INFINITY
                    } else {
                        hi
                    },
                );
                match (lo, hi) {
                    (l, h) if l == f64::NEG_INFINITY && h == f64::INFINITY => return Ok(None),
                    (0.0, h) if h == f64::INFINITY => Box::new(Relu),
                    (l, h) => Box::new(Clip::new(l, h)?),
                }
            }
            other => return Err(unsupported(label, other, "not an activation")),
        }))
    }

    fn pool(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        let op = node.op_type.as_str();
        attrs.only(&[
            "kernel_shape",
            "strides",
            "pads",
            "dilations",
            "ceil_mode",
            "auto_pad",
            "storage_order",
            "count_include_pad",
        ])?;
        if op == "MaxPool" && self.used(node, 1) {
            return Err(unsupported(label, op, "the indices output is used"));
        }
        let d = self.data_value(node, 0, label)?;
        if d.shape.len() != 3 {
            return Err(unsupported(
                label,
                op,
                format!("input of per-sample shape {:?} (images [C, H, W] only)", d.shape),
            ));
        }
        let kernel = match attrs.ints("kernel_shape")?.as_deref() {
            Some([h, w]) => (*h, *w),
            k => return Err(unsupported(label, op, format!("kernel_shape {k:?} is not 2-D"))),
        };
        if attrs.pair("dilations", 1)? != (1, 1) {
            return Err(unsupported(label, op, "dilations other than 1"));
        }
        let stride = attrs.pair("strides", 1)?;
        let ceil = attrs.int("ceil_mode", 0)? != 0;
        let (begin, end) = self.pads_of(label, op, attrs, &d.shape[1..], kernel, stride, (1, 1))?;
        let x = self.materialize(&d, label)?;
        let layer: Box<dyn Layer<F>> = if op == "MaxPool" {
            if begin != end {
                return Err(unsupported(
                    label,
                    op,
                    format!("asymmetric pads {begin:?}/{end:?}"),
                ));
            }
            Box::new(MaxPool2d::new(kernel, stride, begin)?.with_ceil_mode(ceil))
        } else {
            let include = attrs.int("count_include_pad", 0)? != 0;
            Box::new(
                AvgPool2d::new(kernel, stride, (0, 0))?
                    .with_pads(begin, end)?
                    .with_ceil_mode(ceil)
                    .with_count_include_pad(include),
            )
        };
        self.layer(label, Op::Layer(layer), &[x])
    }

    /// `ReduceMean` over the spatial axes: global average pooling.
    fn reduce_mean(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        let d = self.data_value(node, 0, label)?;
        let rank = d.shape.len() + 1;
        let axes: Vec<i64> = match (attrs.get("axes"), self.constant(node, 1, label)?) {
            (Some(a), _) => a.ints.clone(),
            (None, Some(c)) => c.int_list(8)?,
            (None, None) => (0..rank as i64).collect(),
        };
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&a| values::axis(a, rank))
            .collect::<Result<_>>()?;
        axes.sort_unstable();
        if rank != 4 || axes != [2, 3] {
            return Err(unsupported(
                label,
                "ReduceMean",
                format!("over axes {axes:?} of a rank-{rank} tensor (only the spatial axes of an image)"),
            ));
        }
        let x = self.materialize(&d, label)?;
        let pooled = self.layer(label, Op::Layer(Box::new(AvgPool2d::global())), &[x])?;
        if attrs.int("keepdims", 1)? != 0 {
            return Ok(pooled);
        }
        self.layer(&format!("{label}/squeeze"), Op::Flatten, &[pooled.id])
    }

    fn flatten(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        let d = self.data_value(node, 0, label)?;
        let rank = d.shape.len() + 1;
        let ax = values::axis(attrs.int("axis", 1)?, rank + 1)?;
        let kept: usize = d.shape.iter().take(ax.saturating_sub(1)).product();
        if ax == 0 || kept != 1 {
            return Err(unsupported(
                label,
                "Flatten",
                format!("axis {ax} of per-sample shape {:?} mixes samples", d.shape),
            ));
        }
        let x = self.materialize(&d, label)?;
        self.layer(label, Op::Flatten, &[x])
    }

    fn pad(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        let mode = attrs.string("mode")?;
        if !matches!(mode.as_str(), "" | "constant") {
            return Err(unsupported(label, "Pad", format!("mode {mode}")));
        }
        let d = self.data_value(node, 0, label)?;
        let rank = d.shape.len() + 1;
        let (pads, value) = if self.opset < 11 {
            (
                attrs.get("pads").map(|a| a.ints.clone()).unwrap_or_default(),
                f64::from(attrs.float("value", 0.0)?),
            )
        } else {
            let pads = self
                .constant(node, 1, label)?
                .map(|c| c.int_list(16))
                .transpose()?
                .unwrap_or_default();
            let value = match self.constant(node, 2, label)? {
                Some(c) => c.floats()?.iter().next().map_or(0.0, |v| v.as_f64()),
                None => 0.0,
            };
            (pads, value)
        };
        if self.opset >= 18 && node.input.get(3).is_some_and(|a| !a.is_empty()) {
            return Err(unsupported(label, "Pad", "the axes input"));
        }
        if value != 0.0 {
            return Err(unsupported(
                label,
                "Pad",
                format!("constant value {value} (only zero padding)"),
            ));
        }
        if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0 || p as u64 > MAX_DIM as u64) {
            return Err(unsupported(
                label,
                "Pad",
                format!("pads {pads:?} for rank {rank}"),
            ));
        }
        if pads[0] != 0 || pads[rank] != 0 {
            return Err(unsupported(label, "Pad", "padding of the batch axis"));
        }
        let per: Vec<(usize, usize)> = (1..rank)
            .map(|a| (pads[a] as usize, pads[rank + a] as usize))
            .collect();
        // A pad read only by convolutions is folded into their padding (no layer).
        let readers = node
            .output
            .first()
            .and_then(|o| self.readers.get(o.as_str()))
            .cloned()
            .unwrap_or_default();
        let all_conv = !readers.is_empty()
            && readers.iter().all(|&r| {
                let n = &self.graph.node[r];
                n.op_type == "Conv" && n.input.first() == node.output.first()
            })
            && node.output.first().is_some_and(|o| o != self.output);
        if d.pad.is_none() && all_conv && per.len() == 3 && per[0] == (0, 0) {
            return Ok(Data { pad: Some(per), ..d });
        }
        let x = self.materialize(&d, label)?;
        self.layer(label, Op::Layer(Box::new(crate::layers::Pad::new(&per))), &[x])
    }

    /// `Slice` of data with step 1 along per-sample axes: one [`Narrow`] per axis cut.
    fn slice(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        let d = self.data_value(node, 0, label)?;
        let rank = d.shape.len() + 1;
        let (starts, ends, axes, steps) = if self.opset < 10 {
            let get = |n: &str| attrs.get(n).map(|a| a.ints.clone());
            (
                get("starts").unwrap_or_default(),
                get("ends").unwrap_or_default(),
                get("axes"),
                None,
            )
        } else {
            let mut list = |pos: usize| -> Result<Option<Vec<i64>>> {
                self.constant(node, pos, label)?
                    .map(|c| c.int_list(16))
                    .transpose()
            };
            (
                list(1)?.unwrap_or_default(),
                list(2)?.unwrap_or_default(),
                list(3)?,
                list(4)?,
            )
        };
        if starts.len() != ends.len() {
            return Err(unsupported(label, "Slice", "starts and ends differ in length"));
        }
        let mut out = d;
        for k in 0..starts.len() {
            let ax = match &axes {
                Some(a) => values::axis(
                    *a.get(k)
                        .ok_or_else(|| unsupported(label, "Slice", "too few axes"))?,
                    rank,
                )?,
                None => k,
            };
            let step = steps.as_ref().and_then(|s| s.get(k).copied()).unwrap_or(1);
            let dim = if ax == 0 {
                i64::MAX
            } else {
                out.shape[ax - 1] as i64
            };
            let clamp = |v: i64| if v < 0 { (v + dim).max(0) } else { v.min(dim) };
            let (s, e) = (clamp(starts[k]), clamp(ends[k]));
            if ax == 0 {
                if s == 0 && e == dim {
                    continue;
                }
                return Err(unsupported(label, "Slice", "a slice of the batch"));
            }
            if step != 1 {
                return Err(unsupported(
                    label,
                    "Slice",
                    format!("step {step} on data (only 1)"),
                ));
            }
            if s == 0 && e == dim {
                continue;
            }
            if s >= e {
                return Err(unsupported(label, "Slice", "an empty slice"));
            }
            let x = self.materialize(&out, label)?;
            let narrow = Narrow::new(ax - 1, s as usize, (e - s) as usize);
            out = self.layer(label, Op::Layer(Box::new(narrow)), &[x])?;
        }
        Ok(out)
    }

    /// `Split` of data: one [`Narrow`] per output.
    fn split(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<()> {
        let d = self.data_value(node, 0, label)?;
        let rank = d.shape.len() + 1;
        let ax = values::axis(attrs.int("axis", 0)?, rank)?;
        if ax == 0 {
            return Err(unsupported(label, "Split", "a split of the batch"));
        }
        let len = d.shape[ax - 1];
        let outs = node.output.len();
        let from_input = if self.opset >= 13 {
            self.constant(node, 1, label)?
                .map(|c| c.int_list(4096))
                .transpose()?
        } else {
            None
        };
        let sizes: Vec<i64> = match (attrs.get("split"), from_input) {
            (Some(a), _) => a.ints.clone(),
            (None, Some(v)) => v,
            (None, None) if outs > 0 => {
                // equal parts (the last one smaller with num_outputs, opset 18)
                let part = len.div_ceil(outs) as i64;
                let mut v = vec![part; outs];
                if let Some(last) = v.last_mut() {
                    *last = len as i64 - part * (outs as i64 - 1);
                }
                v
            }
            _ => return Err(unsupported(label, "Split", "no outputs")),
        };
        let total = sizes.iter().try_fold(0i64, |t, &s| t.checked_add(s));
        if sizes.len() != outs || sizes.iter().any(|&s| s <= 0) || total != Some(len as i64) {
            return Err(unsupported(
                label,
                "Split",
                format!("sizes {sizes:?} for length {len}"),
            ));
        }
        let x = self.materialize(&d, label)?;
        let mut start = 0usize;
        for (pos, &size) in sizes.iter().enumerate() {
            let narrow = Narrow::new(ax - 1, start, size as usize);
            start += size as usize;
            if !self.used(node, pos) {
                continue;
            }
            let part = self.layer(label, Op::Layer(Box::new(narrow)), &[x])?;
            self.set(node, pos, Value::Data(part));
        }
        Ok(())
    }

    fn batch_norm(&mut self, label: &str, node: &'a NodeProto, attrs: &Attrs<'_>) -> Result<Data> {
        attrs.only(&["epsilon", "momentum", "training_mode", "spatial"])?;
        if attrs.int("training_mode", 0)? != 0 || (1..node.output.len()).any(|p| self.used(node, p)) {
            return Err(unsupported(
                label,
                "BatchNormalization",
                "training mode (running statistics updated)",
            ));
        }
        let d = self.data_value(node, 0, label)?;
        let mut v = |pos: usize| -> Result<Array1<F>> {
            let c = self
                .constant(node, pos, label)?
                .ok_or_else(|| unsupported(label, "BatchNormalization", format!("input {pos} is missing")))?
                .floats()?;
            let n = c.len();
            c.into_shape_with_order(n)
                .map_err(|_| unsupported(label, "BatchNormalization", "a parameter that is not a vector"))
        };
        let (scale, bias, mean, var) = (v(1)?, v(2)?, v(3)?, v(4)?);
        let eps = f64::from(attrs.float("epsilon", 1e-5)?);
        let layer = BatchNorm2d::new(mean, var, scale, bias, eps)?;
        let x = self.materialize(&d, label)?;
        self.layer(label, Op::Layer(Box::new(layer)), &[x])
    }
}

/// The per-channel values of a constant that broadcasts against data of per-sample shape
/// `shape` (with the batch in front) and varies only along the channel axis (axis 1): a
/// scalar, `[C]` for features, `[C, 1, 1]` or `[1, C, 1, 1]` for images. `None` otherwise.
fn per_channel<F: Float>(c: &Const<F>, shape: &[usize]) -> Option<Vec<F>> {
    let a = c.floats().ok()?;
    let channels = *shape.first()?;
    let rank = shape.len() + 1;
    if a.ndim() > rank {
        return None;
    }
    // align to [1, C, ...]
    let mut full = vec![1usize; rank - a.ndim()];
    full.extend_from_slice(a.shape());
    if full[0] != 1 || full[2..].iter().any(|&d| d != 1) || !(full[1] == 1 || full[1] == channels) {
        return None;
    }
    let a = a.into_shape_with_order(IxDyn(&full)).ok()?;
    let per: Vec<F> = a.index_axis(Axis(0), 0).iter().copied().collect();
    Some(if per.len() == 1 {
        vec![per[0]; channels]
    } else {
        per
    })
}
