//! Sentence embeddings from a sentence-transformer ONNX model, the way
//! sentence-transformers computes them: WordPiece tokens in, last hidden
//! state out, mean pooling over the attention mask, L2 normalisation.

use std::path::Path;

use ndarray::Array2;
use tokenizers::{Tokenizer, TruncationParams};
use tract_onnx::prelude::*;

use super::{l2_normalize, onnx};
use fedmr_core::{Error, Result};

/// The files [`TextEncoder::load`] expects in a model folder.
pub const MODEL_FILE: &str = "model.onnx";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Sentences per model run: bounds the attention's batch x len x len memory.
const SENTENCES_PER_RUN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEncoderOptions {
    /// Tokens per sentence, [CLS] and [SEP] included; longer sentences are
    /// truncated.
    pub max_len: usize,
    /// For models tract can only run with a fixed sequence length (such as
    /// the int8 all-MiniLM-L6-v2 export, whose attention mask fails to
    /// broadcast with a symbolic length): every sentence is padded to it,
    /// masked out so the embedding is unchanged. `None`: each run is padded
    /// to its longest sentence.
    pub fixed_len: Option<usize>,
}

impl Default for TextEncoderOptions {
    fn default() -> Self {
        Self {
            max_len: 128,
            fixed_len: None,
        }
    }
}

/// What the model wants in each of its inputs, in the model's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextInput {
    TokenIds,
    AttentionMask,
    /// BERT's segment ids: all zeros for a single sentence.
    TokenTypeIds,
}

impl TextInput {
    fn from_name(name: &str) -> Result<Self> {
        match name {
            "input_ids" => Ok(Self::TokenIds),
            "attention_mask" => Ok(Self::AttentionMask),
            "token_type_ids" => Ok(Self::TokenTypeIds),
            other => Err(Error::Encoder(format!(
                "unexpected model input {other:?}: a sentence encoder takes input_ids, \
                 attention_mask and optionally token_type_ids"
            ))),
        }
    }
}

/// A sentence encoder. `Send + Sync`: one can serve several threads.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    plan: onnx::Plan,
    inputs: Vec<TextInput>,
    dim: usize,
    options: TextEncoderOptions,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("inputs", &self.inputs)
            .field("dim", &self.dim)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl TextEncoder {
    /// Loads `model.onnx` and `tokenizer.json` from `dir`.
    pub fn load(dir: impl AsRef<Path>, options: TextEncoderOptions) -> Result<Self> {
        let dir = dir.as_ref();
        Self::load_files(dir.join(MODEL_FILE), dir.join(TOKENIZER_FILE), options)
    }

    /// Loads a model and a Hugging Face `tokenizer.json` from any paths.
    pub fn load_files(
        model_path: impl AsRef<Path>,
        tokenizer_path: impl AsRef<Path>,
        options: TextEncoderOptions,
    ) -> Result<Self> {
        check_options(&options)?;
        let tokenizer = load_tokenizer(tokenizer_path.as_ref(), options.max_len)?;
        let mut model = onnx::load(model_path.as_ref())?;
        let inputs = onnx::input_names(&model)?
            .iter()
            .map(|name| TextInput::from_name(name))
            .collect::<Result<Vec<_>>>()?;
        for required in [TextInput::TokenIds, TextInput::AttentionMask] {
            if !inputs.contains(&required) {
                return Err(Error::Encoder(format!(
                    "the model has no {required:?} input"
                )));
            }
        }

        let batch = model.sym("batch").to_dim();
        let sequence = match options.fixed_len {
            Some(len) => len.to_dim(),
            None => model.sym("sequence").to_dim(),
        };
        let fact = InferenceFact::dt_shape(i64::datum_type(), tvec![batch, sequence]);
        for ix in 0..inputs.len() {
            model
                .set_input_fact(ix, fact.clone())
                .map_err(onnx::tract_error("setting the input shapes"))?;
        }
        let model = model.into_typed().map_err(onnx::tract_error(
            "analysing the model (a model with fixed dimensions needs fixed_len)",
        ))?;
        let (output, dim) = token_embeddings_output(&model)?;
        let plan = onnx::plan(model, output)?;
        Ok(Self {
            tokenizer,
            plan,
            inputs,
            dim,
            options,
        })
    }

    /// Length of each embedding.
    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn options(&self) -> &TextEncoderOptions {
        &self.options
    }

    /// The token ids the model sees for `sentence`: [CLS] ... [SEP],
    /// truncated to `max_len`.
    pub fn token_ids(&self, sentence: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(sentence, true)
            .map_err(|err| Error::Encoder(format!("tokenising {sentence:?}: {err}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// One L2-normalised row per sentence (`sentences.len() x dim()`).
    pub fn encode(&self, sentences: &[&str]) -> Result<Array2<f32>> {
        let mut embeddings = Array2::zeros((sentences.len(), self.dim));
        let row_chunks = embeddings.axis_chunks_iter_mut(ndarray::Axis(0), SENTENCES_PER_RUN);
        for (chunk, mut rows) in sentences.chunks(SENTENCES_PER_RUN).zip(row_chunks) {
            let batch = self.tokenize(chunk)?;
            let pooled = self.run_and_pool(&batch)?;
            let pooled = ndarray::ArrayView2::from_shape((batch.rows, self.dim), &pooled)
                .map_err(|err| Error::Encoder(format!("pooled embeddings: {err}")))?;
            rows.assign(&pooled);
        }
        Ok(embeddings)
    }

    fn tokenize(&self, sentences: &[&str]) -> Result<TokenBatch> {
        let ids = sentences
            .iter()
            .map(|sentence| self.token_ids(sentence))
            .collect::<Result<Vec<_>>>()?;
        let longest = ids.iter().map(Vec::len).max().unwrap_or(0);
        let len = self.options.fixed_len.unwrap_or(longest);
        let mut batch = TokenBatch {
            rows: sentences.len(),
            len,
            ids: Vec::with_capacity(sentences.len() * len),
            mask: Vec::with_capacity(sentences.len() * len),
        };
        for sentence_ids in &ids {
            let padding = len - sentence_ids.len();
            batch
                .ids
                .extend(sentence_ids.iter().map(|&id| i64::from(id)));
            // Padded positions are masked out, so their id does not matter;
            // 0 is [PAD] in BERT vocabularies.
            batch.ids.extend(std::iter::repeat_n(0, padding));
            batch
                .mask
                .extend(std::iter::repeat_n(1, sentence_ids.len()));
            batch.mask.extend(std::iter::repeat_n(0, padding));
        }
        Ok(batch)
    }

    /// Mean of the last hidden state over unmasked tokens, then L2
    /// normalisation: `rows x dim`, row-major.
    fn run_and_pool(&self, batch: &TokenBatch) -> Result<Vec<f32>> {
        let shape = [batch.rows, batch.len];
        let zeros = vec![0i64; batch.ids.len()];
        let feeds = self
            .inputs
            .iter()
            .map(|input| match input {
                TextInput::TokenIds => onnx::i64_input(shape, &batch.ids),
                TextInput::AttentionMask => onnx::i64_input(shape, &batch.mask),
                TextInput::TokenTypeIds => onnx::i64_input(shape, &zeros),
            })
            .collect::<Result<TVec<_>>>()?;
        let (out_shape, hidden) = onnx::run(&self.plan, feeds)?;
        if out_shape != [batch.rows, batch.len, self.dim] {
            return Err(Error::Encoder(format!(
                "the model returned shape {out_shape:?}, expected {:?}",
                [batch.rows, batch.len, self.dim]
            )));
        }

        let mut pooled = vec![0f32; batch.rows * self.dim];
        for (row, sum) in pooled.chunks_exact_mut(self.dim).enumerate() {
            let mut tokens = 0usize;
            for position in 0..batch.len {
                let token = row * batch.len + position;
                if batch.mask[token] == 0 {
                    continue;
                }
                tokens += 1;
                let state = &hidden[token * self.dim..(token + 1) * self.dim];
                sum.iter_mut().zip(state).for_each(|(s, h)| *s += h);
            }
            let scale = 1.0 / tokens.max(1) as f32;
            sum.iter_mut().for_each(|s| *s *= scale);
            l2_normalize(sum);
        }
        Ok(pooled)
    }
}

/// Token ids and attention mask of one run, `rows x len`, row-major.
struct TokenBatch {
    rows: usize,
    len: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
}

fn check_options(options: &TextEncoderOptions) -> Result<()> {
    if options.max_len < 2 {
        return Err(Error::InvalidConfig(format!(
            "text encoder max_len {} leaves no room for [CLS] and [SEP]",
            options.max_len
        )));
    }
    if let Some(fixed_len) = options.fixed_len
        && fixed_len < options.max_len
    {
        return Err(Error::InvalidConfig(format!(
            "text encoder fixed_len {fixed_len} is shorter than max_len {}",
            options.max_len
        )));
    }
    Ok(())
}

/// The tokenizer as the encoder uses it: truncation to `max_len`, and no
/// padding of its own (a tokenizer.json may ask for some; we pad per run).
fn load_tokenizer(path: &Path, max_len: usize) -> Result<Tokenizer> {
    if !path.is_file() {
        return Err(Error::Encoder(format!(
            "tokenizer file {} not found",
            path.display()
        )));
    }
    let mut tokenizer = Tokenizer::from_file(path).map_err(|err| {
        Error::Encoder(format!("cannot load tokenizer {}: {err}", path.display()))
    })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_len,
            ..Default::default()
        }))
        .map_err(|err| Error::Encoder(format!("tokenizer truncation: {err}")))?;
    Ok(tokenizer)
}

/// The `[batch, sequence, hidden]` f32 output (the last hidden state) and
/// its hidden size. Some exports also output the inputs or a pooled vector.
fn token_embeddings_output(model: &TypedModel) -> Result<(OutletId, usize)> {
    let outlets = model
        .output_outlets()
        .map_err(onnx::tract_error("model outputs"))?;
    for &outlet in outlets {
        let fact = model
            .outlet_fact(outlet)
            .map_err(onnx::tract_error("model outputs"))?;
        if fact.datum_type == f32::datum_type()
            && fact.rank() == 3
            && let Ok(dim) = fact.shape[2].to_i64()
        {
            return Ok((outlet, dim as usize));
        }
    }
    Err(Error::Encoder(
        "the model has no [batch, sequence, hidden] f32 output (its last hidden state)".into(),
    ))
}
