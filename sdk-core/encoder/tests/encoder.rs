//! The encoders against onnxruntime (fixtures from
//! scripts/make-encoder-fixture.py), their semantics, batching, and errors
//! on bad input.
//!
//! The sentence models come from scripts/fetch-models into $FEDMR_MODELS
//! (default target/models). Without them the model tests say SKIPPED and
//! pass, except under CI=true, where they fail. The bad-input and image
//! tests need no download.
//!
//! Run: cargo test -p fedmr-core --features encoder --test encoder

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fedmr_core::Error;
use fedmr_encoder::{ImageEncoder, ImageEncoderOptions, TextEncoder, TextEncoderOptions};
use ndarray::{Array2, ArrayView1};
use serde::Deserialize;

const PARAPHRASE_L3: &str = "paraphrase-minilm-l3";
const INT8_L6: &str = "all-minilm-l6-int8";
const MIN_COSINE: f32 = 0.9999;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    text_models: std::collections::BTreeMap<String, TextReference>,
    image: ImageReference,
}

#[derive(Deserialize)]
struct TextReference {
    max_len: usize,
    fixed_len: Option<usize>,
    token_counts: Vec<usize>,
    embeddings: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct ImageReference {
    model: String,
    size: (u32, u32),
    mean: [f32; 3],
    std: [f32; 3],
    input_name: String,
    output_name: String,
    picture: PictureReference,
    constant_colours: Vec<ColourReference>,
}

#[derive(Deserialize)]
struct PictureReference {
    file: String,
    embedding: Vec<f32>,
}

#[derive(Deserialize)]
struct ColourReference {
    rgb: [u8; 3],
    embedding: Vec<f32>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("encoder_reference.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

/// The folder of model `name`, or `None` after a SKIPPED line when it has
/// not been fetched. Under CI=true a missing model fails the test instead.
fn model_dir(name: &str) -> Option<PathBuf> {
    let dir = fedmr_test_support::models_dir().join(name);
    if dir.join("model.onnx").is_file() && dir.join("tokenizer.json").is_file() {
        return Some(dir);
    }
    let message = format!(
        "sentence model {name} not found in {}: run scripts/fetch-models",
        dir.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{message} (required when CI=true)");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// Each model is loaded once per test binary, with the fixture's options.
fn text_encoder(name: &str) -> Option<&'static TextEncoder> {
    static PARAPHRASE: OnceLock<TextEncoder> = OnceLock::new();
    static INT8: OnceLock<TextEncoder> = OnceLock::new();
    let cell = match name {
        PARAPHRASE_L3 => &PARAPHRASE,
        INT8_L6 => &INT8,
        other => panic!("no such test model {other}"),
    };
    let dir = model_dir(name)?;
    Some(cell.get_or_init(|| {
        let expected = &reference().text_models[name];
        let options = TextEncoderOptions {
            max_len: expected.max_len,
            fixed_len: expected.fixed_len,
        };
        TextEncoder::load(dir, options).unwrap()
    }))
}

fn cosine(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    a.dot(&b) / (a.dot(&a).sqrt() * b.dot(&b).sqrt())
}

fn max_abs_diff(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn sentences() -> Vec<&'static str> {
    reference().sentences.iter().map(String::as_str).collect()
}

fn check_against_onnxruntime(name: &str) {
    let Some(encoder) = text_encoder(name) else {
        return;
    };
    let expected = &reference().text_models[name];
    let sentences = sentences();
    assert_eq!(encoder.dim(), 384);

    let counts: Vec<usize> = sentences
        .iter()
        .map(|s| encoder.token_ids(s).unwrap().len())
        .collect();
    assert_eq!(
        counts, expected.token_counts,
        "tokenisation differs from the reference"
    );

    // One batch: the padded path, checked against one run per sentence.
    let embeddings = encoder.encode(&sentences).unwrap();
    assert_eq!(embeddings.dim(), (sentences.len(), 384));
    let mut lowest = f32::INFINITY;
    for (i, sentence) in sentences.iter().enumerate() {
        let row = embeddings.row(i);
        assert!(row.iter().all(|v| v.is_finite()), "{sentence:?}");
        assert!(
            (row.dot(&row).sqrt() - 1.0).abs() < 1e-4,
            "{sentence:?} is not unit length"
        );
        let cos = cosine(row, ArrayView1::from(&expected.embeddings[i]));
        assert!(
            cos >= MIN_COSINE,
            "{name}: cosine {cos} < {MIN_COSINE} for {sentence:?}"
        );
        lowest = lowest.min(cos);
    }
    eprintln!(
        "{name}: lowest cosine to onnxruntime over {} sentences: {lowest:.7} (1 - cos = {:.1e})",
        sentences.len(),
        1.0 - lowest
    );
}

#[test]
fn paraphrase_l3_matches_onnxruntime() {
    check_against_onnxruntime(PARAPHRASE_L3);
}

#[test]
fn int8_l6_matches_onnxruntime() {
    check_against_onnxruntime(INT8_L6);
}

fn check_semantics(name: &str) {
    let Some(encoder) = text_encoder(name) else {
        return;
    };
    // (sentence, its paraphrase, unrelated text)
    let triples = [
        (
            "wireless noise cancelling headphones",
            "Bluetooth headphones that block outside noise",
            "organic green tea, 100 bags",
        ),
        (
            "a detective novel set in Oslo",
            "crime fiction book about a Norwegian investigator",
            "stainless steel kitchen knife set",
        ),
        (
            "running shoes for kids",
            "children's sneakers for jogging",
            "a history of the Roman empire",
        ),
    ];
    for (sentence, paraphrase, unrelated) in triples {
        let e = encoder.encode(&[sentence, paraphrase, unrelated]).unwrap();
        let close = cosine(e.row(0), e.row(1));
        let far = cosine(e.row(0), e.row(2));
        assert!(
            close > far + 0.2,
            "{name}: {sentence:?} ~ paraphrase {close}, ~ unrelated {far}"
        );
    }
}

#[test]
fn paraphrase_l3_puts_paraphrases_closer_than_unrelated_text() {
    check_semantics(PARAPHRASE_L3);
}

#[test]
fn int8_l6_puts_paraphrases_closer_than_unrelated_text() {
    check_semantics(INT8_L6);
}

fn check_batch_equals_one_by_one(name: &str) {
    let Some(encoder) = text_encoder(name) else {
        return;
    };
    let sentences = sentences();
    let batch = encoder.encode(&sentences).unwrap();
    for (i, sentence) in sentences.iter().enumerate() {
        let alone = encoder.encode(&[sentence]).unwrap();
        let diff = max_abs_diff(alone.row(0), batch.row(i));
        assert!(
            diff < 1e-5,
            "{name}: {sentence:?} alone differs from in a batch by {diff}"
        );
    }
}

#[test]
fn paraphrase_l3_batch_equals_one_by_one() {
    check_batch_equals_one_by_one(PARAPHRASE_L3);
}

/// More sentences than one model run takes: the runs are stitched in order.
/// One model is enough (the split does not depend on it), and the int8
/// model's fixed 128-token runs are slow in the debug profile.
#[test]
fn many_sentences_span_several_runs() {
    let Some(encoder) = text_encoder(PARAPHRASE_L3) else {
        return;
    };
    let sentences = sentences();
    let batch = encoder.encode(&sentences).unwrap();
    let many: Vec<&str> = sentences.iter().copied().cycle().take(70).collect();
    let many_embeddings = encoder.encode(&many).unwrap();
    assert_eq!(many_embeddings.nrows(), 70);
    for (i, row) in many_embeddings.rows().into_iter().enumerate() {
        let diff = max_abs_diff(row, batch.row(i % sentences.len()));
        assert!(diff < 1e-5, "row {i} of 70 differs by {diff}");
    }
}

#[test]
fn int8_l6_batch_equals_one_by_one() {
    check_batch_equals_one_by_one(INT8_L6);
}

#[test]
fn empty_input_gives_an_empty_matrix_and_long_text_is_truncated() {
    for name in [PARAPHRASE_L3, INT8_L6] {
        let Some(encoder) = text_encoder(name) else {
            return;
        };
        assert_eq!(encoder.encode(&[]).unwrap().dim(), (0, 384));
        let long = "word ".repeat(1000);
        assert_eq!(
            encoder.token_ids(&long).unwrap().len(),
            encoder.options().max_len
        );
        assert_eq!(encoder.token_ids("").unwrap().len(), 2, "[CLS] [SEP]");
    }
}

#[test]
fn encoders_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TextEncoder>();
    assert_send_sync::<ImageEncoder>();
}

/// A scratch folder for one test, emptied first.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fedmr-encoder-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A minimal valid WordPiece tokenizer.json, so the model checks run
/// without the fetched models.
const TINY_TOKENIZER: &str = r###"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",
"max_input_chars_per_word":100,"vocab":{"[UNK]":0,"hello":1}}}"###;

fn assert_encoder_error<T: std::fmt::Debug>(result: fedmr_core::Result<T>, what: &str) {
    match result {
        Err(Error::Encoder(message)) => eprintln!("{what}: {message}"),
        other => panic!("{what}: expected Error::Encoder, got {other:?}"),
    }
}

#[test]
fn bad_text_model_files_are_encoder_errors() {
    let options = TextEncoderOptions::default();
    assert_encoder_error(
        TextEncoder::load(scratch("missing").join("nowhere"), options.clone()),
        "missing dir",
    );

    let dir = scratch("garbage-tokenizer");
    std::fs::write(dir.join("tokenizer.json"), b"{ not a tokenizer").unwrap();
    std::fs::write(dir.join("model.onnx"), b"not a model").unwrap();
    assert_encoder_error(
        TextEncoder::load(&dir, options.clone()),
        "garbage tokenizer",
    );

    std::fs::write(dir.join("tokenizer.json"), TINY_TOKENIZER).unwrap();
    assert_encoder_error(TextEncoder::load(&dir, options.clone()), "garbage model");

    let missing_model = dir.join("absent.onnx");
    assert_encoder_error(
        TextEncoder::load_files(&missing_model, dir.join("tokenizer.json"), options.clone()),
        "missing model file",
    );

    // A valid ONNX model of the wrong kind (an image model).
    let image_model = fixtures().join(&reference().image.model);
    assert_encoder_error(
        TextEncoder::load_files(image_model, dir.join("tokenizer.json"), options),
        "image model as a text model",
    );
}

#[test]
fn bad_text_options_are_config_errors() {
    let dir = scratch("options");
    std::fs::write(dir.join("tokenizer.json"), TINY_TOKENIZER).unwrap();
    for options in [
        TextEncoderOptions {
            max_len: 1,
            fixed_len: None,
        },
        TextEncoderOptions {
            max_len: 128,
            fixed_len: Some(64),
        },
    ] {
        let err = TextEncoder::load(&dir, options.clone()).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{options:?}: {err}");
    }
}

fn image_options() -> ImageEncoderOptions {
    let image = &reference().image;
    ImageEncoderOptions {
        size: image.size,
        mean: image.mean,
        std: image.std,
        input_name: image.input_name.clone(),
        output_name: image.output_name.clone(),
    }
}

fn image_encoder() -> ImageEncoder {
    ImageEncoder::load(fixtures().join(&reference().image.model), image_options()).unwrap()
}

fn encoded(rgb: &image::RgbImage, format: image::ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    rgb.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn assert_close(actual: ArrayView1<f32>, expected: &[f32], min_cosine: f32, what: &str) {
    let cos = cosine(actual, ArrayView1::from(expected));
    assert!(cos >= min_cosine, "{what}: cosine {cos} < {min_cosine}");
}

#[test]
fn image_encoder_matches_onnxruntime() {
    let reference = &reference().image;
    let encoder = image_encoder();
    assert_eq!(encoder.dim(), reference.picture.embedding.len());

    let picture = std::fs::read(fixtures().join(&reference.picture.file)).unwrap();
    let embeddings: Array2<f32> = encoder.encode(&[&picture]).unwrap();
    assert_close(
        embeddings.row(0),
        &reference.picture.embedding,
        MIN_COSINE,
        "picture",
    );
    let diff = max_abs_diff(
        embeddings.row(0),
        ArrayView1::from(&reference.picture.embedding),
    );
    assert!(diff < 1e-4, "picture differs from onnxruntime by {diff}");

    // A constant picture stays constant when resized: drawn at other sizes,
    // as PNG (lossless) and JPEG (lossy, so a looser bound).
    for colour in &reference.constant_colours {
        let large = image::RgbImage::from_pixel(40, 30, image::Rgb(colour.rgb));
        let small = image::RgbImage::from_pixel(9, 7, image::Rgb(colour.rgb));
        let png_large = encoded(&large, image::ImageFormat::Png);
        let png_small = encoded(&small, image::ImageFormat::Png);
        let jpeg = encoded(&large, image::ImageFormat::Jpeg);
        let rows = encoder.encode(&[&png_large, &png_small, &jpeg]).unwrap();
        let what = format!("colour {:?}", colour.rgb);
        assert_close(
            rows.row(0),
            &colour.embedding,
            MIN_COSINE,
            &format!("{what} png 40x30"),
        );
        assert_close(
            rows.row(1),
            &colour.embedding,
            MIN_COSINE,
            &format!("{what} png 9x7"),
        );
        assert_close(
            rows.row(2),
            &colour.embedding,
            0.99,
            &format!("{what} jpeg"),
        );
    }
    assert_eq!(encoder.encode(&[]).unwrap().dim(), (0, encoder.dim()));
}

#[test]
fn bad_images_and_image_models_are_encoder_errors() {
    let encoder = image_encoder();
    let picture = std::fs::read(fixtures().join(&reference().image.picture.file)).unwrap();
    assert_encoder_error(
        encoder.encode(&[b"definitely not an image"]),
        "garbage bytes",
    );
    assert_encoder_error(
        encoder.encode(&[&picture, &picture[..picture.len() / 2]]),
        "truncated png",
    );
    assert_encoder_error(encoder.encode(&[&[]]), "no bytes");

    let model = fixtures().join(&reference().image.model);
    assert_encoder_error(
        ImageEncoder::load(scratch("img").join("absent.onnx"), image_options()),
        "missing model",
    );
    let wrong_output = ImageEncoderOptions {
        output_name: "no_such_output".into(),
        ..image_options()
    };
    assert_encoder_error(ImageEncoder::load(&model, wrong_output), "unknown output");
    let wrong_input = ImageEncoderOptions {
        input_name: "input_ids".into(),
        ..image_options()
    };
    assert_encoder_error(ImageEncoder::load(&model, wrong_input), "unknown input");
}
