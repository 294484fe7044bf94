//! Image embeddings from an ONNX model a user brings: decode (PNG or JPEG),
//! resize, normalise per channel, NCHW, run, read the named output, L2
//! normalise.

use std::path::Path;

use ::image::imageops::{self, FilterType};
use ndarray::Array2;
use tract_onnx::prelude::*;

use super::{l2_normalize, onnx};
use fedmr_core::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct ImageEncoderOptions {
    /// The model's input width and height in pixels.
    pub size: (u32, u32),
    /// Per-channel (R, G, B) mean and standard deviation applied to pixel
    /// values scaled to [0, 1].
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// The model input that takes the `[1, 3, height, width]` f32 pixels.
    pub input_name: String,
    /// The model output to use as the embedding (all but its first,
    /// batch axis are flattened).
    pub output_name: String,
}

impl ImageEncoderOptions {
    /// ImageNet's mean and std, which most vision backbones were trained with.
    pub fn imagenet(size: (u32, u32), input_name: &str, output_name: &str) -> Self {
        Self {
            size,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            input_name: input_name.into(),
            output_name: output_name.into(),
        }
    }
}

/// An image encoder. `Send + Sync`: one can serve several threads.
pub struct ImageEncoder {
    plan: onnx::Plan,
    dim: usize,
    options: ImageEncoderOptions,
}

impl std::fmt::Debug for ImageEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageEncoder")
            .field("dim", &self.dim)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl ImageEncoder {
    pub fn load(model_path: impl AsRef<Path>, options: ImageEncoderOptions) -> Result<Self> {
        let (width, height) = options.size;
        if width == 0 || height == 0 || options.std.contains(&0.0) {
            return Err(Error::InvalidConfig(format!(
                "image encoder needs a non-empty size and non-zero std, got {options:?}"
            )));
        }
        let mut model = onnx::load(model_path.as_ref())?;
        let inputs = onnx::input_names(&model)?;
        if inputs != [options.input_name.as_str()] {
            return Err(Error::Encoder(format!(
                "the model's inputs are {inputs:?}; expected only {:?}",
                options.input_name
            )));
        }
        // One image per run: works for models exported with a fixed batch of 1.
        let fact = InferenceFact::dt_shape(
            f32::datum_type(),
            tvec![1, 3, height as usize, width as usize],
        );
        model
            .set_input_fact(0, fact)
            .map_err(onnx::tract_error("setting the input shape"))?;
        model
            .select_outputs_by_name([&options.output_name])
            .map_err(onnx::tract_error(format!(
                "model output {:?}",
                options.output_name
            )))?;
        let model = model
            .into_typed()
            .map_err(onnx::tract_error("analysing the model"))?;
        let output = model
            .output_outlets()
            .map_err(onnx::tract_error("model outputs"))?[0];
        let dim = embedding_len(
            model
                .outlet_fact(output)
                .map_err(onnx::tract_error("model output"))?,
        )?;
        let plan = onnx::plan(model, output)?;
        Ok(Self { plan, dim, options })
    }

    /// Length of each embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn options(&self) -> &ImageEncoderOptions {
        &self.options
    }

    /// One L2-normalised row per encoded image (PNG or JPEG bytes).
    pub fn encode(&self, images: &[&[u8]]) -> Result<Array2<f32>> {
        let mut embeddings = Array2::zeros((images.len(), self.dim));
        for (index, (bytes, mut row)) in images.iter().zip(embeddings.rows_mut()).enumerate() {
            let pixels = self
                .pixels(bytes)
                .map_err(|err| Error::Encoder(format!("image {index}: {err}")))?;
            let (_, mut values) = onnx::run(&self.plan, tvec![pixels.into_tvalue()])?;
            if values.len() != self.dim {
                return Err(Error::Encoder(format!(
                    "the model returned {} values, expected {}",
                    values.len(),
                    self.dim
                )));
            }
            l2_normalize(&mut values);
            row.iter_mut().zip(values).for_each(|(r, v)| *r = v);
        }
        Ok(embeddings)
    }

    /// Decoded, resized and normalised pixels as a `[1, 3, height, width]` tensor.
    fn pixels(&self, bytes: &[u8]) -> std::result::Result<Tensor, String> {
        let (width, height) = self.options.size;
        let decoded =
            ::image::load_from_memory(bytes).map_err(|err| format!("cannot decode: {err}"))?;
        let mut rgb = decoded.to_rgb8();
        if rgb.dimensions() != (width, height) {
            rgb = imageops::resize(&rgb, width, height, FilterType::Triangle);
        }
        let plane = (width * height) as usize;
        let mut nchw = vec![0f32; 3 * plane];
        for (position, pixel) in rgb.pixels().enumerate() {
            for channel in 0..3 {
                let value = f32::from(pixel.0[channel]) / 255.0;
                nchw[channel * plane + position] =
                    (value - self.options.mean[channel]) / self.options.std[channel];
            }
        }
        Tensor::from_shape(&[1, 3, height as usize, width as usize], &nchw)
            .map_err(|err| format!("{err:#}"))
    }
}

/// Values per image of an output fact `[1, ...]` whose other axes are known.
fn embedding_len(fact: &TypedFact) -> Result<usize> {
    let dims = fact
        .shape
        .as_concrete()
        .ok_or_else(|| Error::Encoder(format!("the output shape {:?} is not fixed", fact.shape)))?;
    if fact.datum_type != f32::datum_type() || dims.first() != Some(&1) {
        return Err(Error::Encoder(format!(
            "the output is {:?} {dims:?}; expected f32 [1, ...]",
            fact.datum_type
        )));
    }
    Ok(dims.iter().product())
}
