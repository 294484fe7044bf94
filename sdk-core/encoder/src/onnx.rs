//! What both encoders need from tract: load an ONNX file, fix its inputs,
//! keep one output, and read f32 results back as plain slices (tract has its
//! own ndarray version, so nothing of its array types leaks out).

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use fedmr_core::{Error, Result};

/// An optimised model ready to run; cheap to share between threads.
pub(super) type Plan = Arc<TypedRunnableModel>;

/// Maps a tract error, with its whole chain of causes, to `Error::Encoder`.
pub(super) fn tract_error(context: impl Display) -> impl FnOnce(TractError) -> Error {
    move |err| Error::Encoder(format!("{context}: {err:#}"))
}

/// Parses `path` without fixing any input yet.
pub(super) fn load(path: &Path) -> Result<InferenceModel> {
    if !path.is_file() {
        return Err(Error::Encoder(format!(
            "model file {} not found",
            path.display()
        )));
    }
    // value_info entries are the exporter's shape hints, in its own symbols
    // ("sequence"); they clash with the dimensions the encoders fix.
    tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_path(path)
        .map_err(tract_error(format!(
            "cannot load ONNX model {}",
            path.display()
        )))
}

/// The model's input names, in the order `run` takes them.
pub(super) fn input_names(model: &InferenceModel) -> Result<Vec<String>> {
    let outlets = model.input_outlets().map_err(tract_error("model inputs"))?;
    Ok(outlets
        .iter()
        .map(|outlet| model.node(outlet.node).name.clone())
        .collect())
}

/// Keeps only `output` (so tract drops what only the other outputs need),
/// optimises and plans the model.
pub(super) fn plan(mut model: TypedModel, output: OutletId) -> Result<Plan> {
    model
        .select_output_outlets(&[output])
        .map_err(tract_error("selecting the output"))?;
    model
        .into_optimized()
        .and_then(|optimized| optimized.into_runnable())
        .map_err(tract_error("optimising the model"))
}

/// Runs the plan and returns its single output as a shape and row-major values.
pub(super) fn run(plan: &Plan, inputs: TVec<TValue>) -> Result<(Vec<usize>, Vec<f32>)> {
    let outputs = plan.run(inputs).map_err(tract_error("running the model"))?;
    let output = outputs
        .first()
        .ok_or_else(|| Error::Encoder("the model returned no output".into()))?;
    let view = output
        .to_plain_array_view::<f32>()
        .map_err(tract_error("reading the model output as f32"))?;
    // The outputs die with this call: copy, in logical (row-major) order.
    Ok((view.shape().to_vec(), view.iter().copied().collect()))
}

/// An i64 tensor of `shape` from row-major `values`, ready to feed.
pub(super) fn i64_input(shape: [usize; 2], values: &[i64]) -> Result<TValue> {
    Tensor::from_shape(&shape, values)
        .map(IntoTValue::into_tvalue)
        .map_err(tract_error("building an input tensor"))
}
