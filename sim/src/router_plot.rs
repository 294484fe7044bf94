//! A per-user view of the private routers: after training, how are the
//! softmax weights over the fusion experts spread across users?
//!
//! The question it answers is "does each user really prefer a different
//! fusion strategy?". Two things can look alike and must be told apart:
//!
//! * routers that are *decisive* (each user puts most weight on one expert):
//!   [`RouterSummary::mean_top_weight`] near 1, [`RouterSummary::mean_entropy`]
//!   near 0;
//! * routers that *differ between users*: per expert a wide spread
//!   ([`ExpertSpread::std`], p10..p90), several experts that are the top one
//!   for a real share of users ([`ExpertSpread::top_share`]), and a large
//!   [`RouterSummary::mean_distance`] from the average router.
//!
//! Every user putting all weight on the same expert is decisive but not
//! personal; that shows as one expert with `top_share` 1 and `mean_distance` 0.
//!
//! Outputs: [`spread`] and [`summary`] as numbers, [`spread_markdown`] as a
//! table, [`write_csv`] for the raw weights and [`write_png`] for a figure.
//! Text in the figure is drawn with DejaVu Sans embedded in the binary
//! (`sim/assets/`, license beside it), so no system font is needed; it is
//! registered as plotters' `sans-serif` family for the whole process.

use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::register_font;

/// How far a user's weights may sum from 1 (f32 softmax outputs are much closer).
pub const SUM_TOLERANCE: f64 = 1e-3;
/// The size [`write_png`] draws at, in pixels (width, height).
pub const DEFAULT_PNG_SIZE: (u32, u32) = (1200, 900);
/// The smallest figure [`write_png_sized`] accepts: below it the text no longer fits.
pub const MIN_PNG_SIZE: (u32, u32) = (480, 360);
/// The largest figure [`write_png_sized`] accepts (per side).
pub const MAX_PNG_SIDE: u32 = 8192;

const FONT: &str = "sans-serif";
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Expert colours (Tableau 20: the ten strong ones first, then their light
/// variants); more than twenty experts repeat them.
const COLORS: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// Expert names longer than this are cut (with an ellipsis) in the figure.
const MAX_LABEL_CHARS: usize = 24;

fn short(name: &str) -> String {
    if name.chars().count() <= MAX_LABEL_CHARS {
        name.to_string()
    } else {
        let mut cut: String = name.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

fn color(expert: usize) -> RGBColor {
    COLORS[expert % COLORS.len()]
}

/// What can go wrong: bad weights, a file that cannot be written, or drawing.
#[derive(Debug)]
pub enum RouterPlotError {
    /// The weights (or the figure size) are not usable; the message says why.
    Invalid(String),
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Drawing or encoding the figure failed.
    Plot(String),
}

impl fmt::Display for RouterPlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(msg) => write!(f, "invalid router weights: {msg}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Plot(msg) => write!(f, "router plot: {msg}"),
        }
    }
}

impl std::error::Error for RouterPlotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for RouterPlotError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        Self::Plot(e.to_string())
    }
}

fn invalid(msg: impl Into<String>) -> RouterPlotError {
    RouterPlotError::Invalid(msg.into())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RouterPlotError + '_ {
    move |source| RouterPlotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Every user's router output: `users[u][e]` is user `u`'s weight on `experts[e]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterWeights {
    /// Expert names, in the routers' output order (e.g. `Sum`, `MLP`, `Gate`).
    pub experts: Vec<String>,
    /// One row per user, one weight per expert, each row summing to 1.
    pub users: Vec<Vec<f32>>,
}

impl RouterWeights {
    /// Checks what every function here needs: at least one expert and one
    /// user; names that are non-empty, distinct and CSV-safe (no comma, quote
    /// or line break); rows of one finite weight in [0, 1] per expert that sum
    /// to 1 within [`SUM_TOLERANCE`].
    pub fn validate(&self) -> Result<(), RouterPlotError> {
        if self.experts.is_empty() {
            return Err(invalid("no experts"));
        }
        for (i, name) in self.experts.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(invalid(format!("expert {i} has an empty name")));
            }
            if name.contains([',', '"', '\n', '\r']) {
                return Err(invalid(format!(
                    "expert name {name:?} has a comma, quote or line break"
                )));
            }
            if self.experts[..i].contains(name) {
                return Err(invalid(format!("expert name {name:?} appears twice")));
            }
        }
        if self.users.is_empty() {
            return Err(invalid("no users"));
        }
        let e = self.experts.len();
        for (u, row) in self.users.iter().enumerate() {
            if row.len() != e {
                return Err(invalid(format!(
                    "user {u} has {} weights for {e} experts",
                    row.len()
                )));
            }
            for (w, name) in row.iter().zip(&self.experts) {
                let w = f64::from(*w);
                if !w.is_finite() || !(-SUM_TOLERANCE..=1.0 + SUM_TOLERANCE).contains(&w) {
                    return Err(invalid(format!(
                        "user {u}: weight on {name} is {w}, not in [0, 1]"
                    )));
                }
            }
            let sum: f64 = row.iter().map(|&w| f64::from(w)).sum();
            if (sum - 1.0).abs() > SUM_TOLERANCE {
                return Err(invalid(format!("user {u}: weights sum to {sum:.6}, not 1")));
            }
        }
        Ok(())
    }
}

/// The index of a row's largest weight; ties go to the first expert.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &w) in row.iter().enumerate() {
        if w > row[best] {
            best = i;
        }
    }
    best
}

/// Linear interpolation between closest ranks (numpy's default):
/// position `q * (n - 1)` in the sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

/// How one expert's weight is spread over users.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpertSpread {
    pub expert: String,
    pub mean: f64,
    /// Population standard deviation over users (all users are the population).
    pub std: f64,
    pub min: f64,
    /// 10th percentile over users (linear interpolation between ranks).
    pub p10: f64,
    pub median: f64,
    /// 90th percentile over users.
    pub p90: f64,
    pub max: f64,
    /// Fraction of users whose largest weight is on this expert (ties go to
    /// the first expert). The shares of all experts add up to 1.
    pub top_share: f64,
}

/// Per expert, in the order of `weights.experts`: the spread of its weight over users.
pub fn spread(weights: &RouterWeights) -> Result<Vec<ExpertSpread>, RouterPlotError> {
    weights.validate()?;
    let n = weights.users.len() as f64;
    let mut tops = vec![0usize; weights.experts.len()];
    for row in &weights.users {
        tops[argmax(row)] += 1;
    }
    Ok(weights
        .experts
        .iter()
        .enumerate()
        .map(|(e, name)| {
            let mut col: Vec<f64> = weights.users.iter().map(|r| f64::from(r[e])).collect();
            col.sort_by(f64::total_cmp);
            let mean = col.iter().sum::<f64>() / n;
            let var = col.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / n;
            ExpertSpread {
                expert: name.clone(),
                mean,
                std: var.sqrt(),
                min: col[0],
                p10: percentile(&col, 0.1),
                median: percentile(&col, 0.5),
                p90: percentile(&col, 0.9),
                max: col[col.len() - 1],
                top_share: tops[e] as f64 / n,
            }
        })
        .collect())
}

/// Whole-population numbers: are routers decisive, and do users differ?
#[derive(Clone, Debug, PartialEq)]
pub struct RouterSummary {
    pub users: usize,
    pub experts: usize,
    /// Mean over users of their largest weight: 1/E for uniform routers, 1
    /// when every user puts all weight on one expert.
    pub mean_top_weight: f64,
    /// Mean over users of the entropy of their weights divided by ln E:
    /// 1 = uniform, 0 = one expert only (0 when there is a single expert).
    pub mean_entropy: f64,
    /// Mean over users of the total-variation distance (half the L1 distance)
    /// between the user's weights and the average user's weights: 0 when all
    /// routers agree, at most 1. This is the single number for "do users differ?".
    pub mean_distance: f64,
}

/// The [`RouterSummary`] of a set of routers.
pub fn summary(weights: &RouterWeights) -> Result<RouterSummary, RouterPlotError> {
    weights.validate()?;
    let e = weights.experts.len();
    let n = weights.users.len() as f64;
    let mut average = vec![0f64; e];
    for row in &weights.users {
        for (a, &w) in average.iter_mut().zip(row) {
            *a += f64::from(w) / n;
        }
    }
    let ln_e = (e as f64).ln();
    let (mut top, mut entropy, mut distance) = (0f64, 0f64, 0f64);
    for row in &weights.users {
        top += f64::from(row[argmax(row)]);
        if e > 1 {
            let h: f64 = row
                .iter()
                .map(|&w| f64::from(w))
                .filter(|&w| w > 0.0)
                .map(|w| -w * w.ln())
                .sum();
            entropy += h / ln_e;
        }
        distance += 0.5
            * row
                .iter()
                .zip(&average)
                .map(|(&w, a)| (f64::from(w) - a).abs())
                .sum::<f64>();
    }
    Ok(RouterSummary {
        users: weights.users.len(),
        experts: e,
        mean_top_weight: top / n,
        mean_entropy: entropy / n,
        mean_distance: distance / n,
    })
}

impl fmt::Display for RouterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} users, {} experts: mean top weight {:.3} (uniform would be {:.3}), \
             mean normalised entropy {:.3} (1 = uniform), \
             mean distance from the average router {:.3} (0 = all users alike)",
            self.users,
            self.experts,
            self.mean_top_weight,
            1.0 / self.experts as f64,
            self.mean_entropy,
            self.mean_distance
        )
    }
}

/// A Markdown table, one row per expert: weight statistics over users and the
/// share of users for whom the expert is the top one.
pub fn spread_markdown(spread: &[ExpertSpread]) -> String {
    let mut out = String::from(
        "| expert | mean | std | min | p10 | median | p90 | max | top for |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in spread {
        writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1}% |",
            s.expert,
            s.mean,
            s.std,
            s.min,
            s.p10,
            s.median,
            s.p90,
            s.max,
            100.0 * s.top_share
        )
        .expect("writing to a String");
    }
    out
}

fn create_parent(path: &Path) -> Result<(), RouterPlotError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::create_dir_all(dir).map_err(io_error(dir)),
        _ => Ok(()),
    }
}

/// The weights as CSV: header `user,<expert names...>`, then one row per user
/// (its index, then its weights). Creates the parent folder if needed; nothing
/// is written when the weights are invalid.
pub fn write_csv(weights: &RouterWeights, path: &Path) -> Result<(), RouterPlotError> {
    weights.validate()?;
    let mut csv = format!("user,{}\n", weights.experts.join(","));
    for (u, row) in weights.users.iter().enumerate() {
        write!(csv, "{u}").expect("writing to a String");
        for w in row {
            write!(csv, ",{w}").expect("writing to a String");
        }
        csv.push('\n');
    }
    create_parent(path)?;
    fs::write(path, csv).map_err(io_error(path))
}

/// The figure at [`DEFAULT_PNG_SIZE`]; see [`write_png_sized`].
pub fn write_png(weights: &RouterWeights, path: &Path, title: &str) -> Result<(), RouterPlotError> {
    write_png_sized(weights, path, title, DEFAULT_PNG_SIZE)
}

/// A PNG figure of `size` (width, height) pixels, titled `title`, in two panels:
///
/// * (a) per expert, every user's weight as a jittered dot on a 0..1 axis,
///   with the 10th–90th percentile as a black bar and the median as a black
///   tick; the row label gives the share of users for whom it is the top expert;
/// * (b) one stacked bar per user (its weights, bottom to top in expert order),
///   users grouped by their top expert and, within a group, sorted by that
///   top weight, largest first. With more users than pixel columns, each bar
///   averages consecutive users of that order.
///
/// The figure is drawn in memory first: invalid weights or size leave no file.
pub fn write_png_sized(
    weights: &RouterWeights,
    path: &Path,
    title: &str,
    size: (u32, u32),
) -> Result<(), RouterPlotError> {
    let png = render_png(weights, title, size)?;
    create_parent(path)?;
    fs::write(path, png).map_err(io_error(path))
}

fn register_embedded_font() -> Result<(), RouterPlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(RouterPlotError::Plot(
            "the embedded font could not be loaded".into(),
        ))
    }
}

/// The figure as PNG bytes.
fn render_png(
    weights: &RouterWeights,
    title: &str,
    (width, height): (u32, u32),
) -> Result<Vec<u8>, RouterPlotError> {
    weights.validate()?;
    if width < MIN_PNG_SIZE.0
        || height < MIN_PNG_SIZE.1
        || width > MAX_PNG_SIDE
        || height > MAX_PNG_SIDE
    {
        return Err(invalid(format!(
            "figure size {width}x{height} is outside {}x{} .. {MAX_PNG_SIDE}x{MAX_PNG_SIDE}",
            MIN_PNG_SIZE.0, MIN_PNG_SIZE.1
        )));
    }
    register_embedded_font()?;
    let spread = spread(weights)?;
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        // Text and margins scale with the figure; 1.0 at the default size.
        let scale = (f64::from(width) / f64::from(DEFAULT_PNG_SIZE.0))
            .min(f64::from(height) / f64::from(DEFAULT_PNG_SIZE.1));
        let body = root.titled(title, (FONT, 30.0 * scale.max(0.6)))?;
        let (top, bottom) = body.split_vertically((45).percent());
        draw_strips(&top, weights, &spread, scale)?;
        draw_bars(&bottom, weights, scale)?;
        root.present()?;
    }
    encode_png(&rgb, width, height)
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, RouterPlotError> {
    let plot_error = |e: png::EncodingError| RouterPlotError::Plot(format!("PNG encoding: {e}"));
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(plot_error)?;
    writer.write_image_data(rgb).map_err(plot_error)?;
    writer.finish().map_err(plot_error)?;
    Ok(out)
}

/// A deterministic jitter in [-0.5, 0.5) for (user, expert): splitmix64.
fn jitter(user: usize, expert: usize) -> f64 {
    let mut z = (user as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((expert as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

/// The y axis of panel (a): continuous from -0.5 to E - 0.5 (room for the
/// jitter), with its ticks and labels at the rows 0..E only.
struct Rows {
    inner: RangedCoordf64,
    rows: usize,
}

impl Rows {
    fn new(rows: usize) -> Self {
        Self {
            inner: (-0.5..rows as f64 - 0.5).into(),
            rows,
        }
    }
}

impl Ranged for Rows {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        (0..self.rows).map(|r| r as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Panel (a): a strip of jittered dots per expert, first expert on top.
fn draw_strips(
    area: &Area<'_>,
    weights: &RouterWeights,
    spread: &[ExpertSpread],
    scale: f64,
) -> Result<(), RouterPlotError> {
    let e = weights.experts.len();
    let n = weights.users.len();
    let font = |size: f64| (FONT, (size * scale).max(12.0));
    // Row of expert i (first expert on top).
    let row = move |i: usize| (e - 1 - i) as f64;
    let labels: Vec<String> = spread
        .iter()
        .map(|s| {
            format!(
                "{}  (top for {:.0}%)",
                short(&s.expert),
                100.0 * s.top_share
            )
        })
        .collect();
    let label_width = widest_text(area, &labels, scale)?;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "(a) each user's router weight on each expert (one dot per user)",
            font(20.0),
        )
        .margin((12.0 * scale) as u32 + 4)
        .x_label_area_size((50.0 * scale) as u32 + 12)
        .y_label_area_size(label_width + 16)
        .build_cartesian_2d(0f64..1f64, Rows::new(e))?;
    let label_of = |y: &f64| {
        let r = y.round();
        if (0.0..e as f64).contains(&r) {
            labels[e - 1 - r as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(11)
        .x_label_formatter(&|x| format!("{x:.1}"))
        .y_label_formatter(&label_of)
        .x_desc("router weight   (black bar: 10th–90th percentile of users, black tick: median)")
        .label_style(font(17.0))
        .axis_desc_style(font(17.0))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    // Dots fade as users get many, so that dense strips still show their shape.
    let alpha = (200.0 / n as f64).sqrt().clamp(0.08, 0.85);
    let radius = if n <= 2000 {
        (4.0 * scale).max(2.0)
    } else {
        (2.5 * scale).max(1.5)
    } as i32;
    for i in 0..e {
        let c = color(i);
        chart.draw_series(weights.users.iter().enumerate().map(|(u, r)| {
            let y = row(i) + 0.62 * jitter(u, i);
            Circle::new((f64::from(r[i]), y), radius, c.mix(alpha).filled())
        }))?;
    }
    let line = |w: f64| BLACK.stroke_width((w * scale).max(2.0) as u32);
    for (i, s) in spread.iter().enumerate() {
        let y = row(i);
        chart.draw_series([
            PathElement::new(vec![(s.p10, y), (s.p90, y)], line(4.0)),
            PathElement::new(vec![(s.median, y - 0.38), (s.median, y + 0.38)], line(3.0)),
        ])?;
    }
    Ok(())
}

/// Users in the order of panel (b): grouped by top expert (in expert order),
/// then by that top weight, largest first; ties by user index.
fn bar_order(weights: &RouterWeights) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.users.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (&weights.users[a], &weights.users[b]);
        let (ta, tb) = (argmax(ra), argmax(rb));
        ta.cmp(&tb).then(rb[tb].total_cmp(&ra[ta])).then(a.cmp(&b))
    });
    order
}

/// Panel (b): one stacked bar per user (or per run of users), legend on the right.
fn draw_bars(area: &Area<'_>, weights: &RouterWeights, scale: f64) -> Result<(), RouterPlotError> {
    let n = weights.users.len();
    let font = |size: f64| (FONT, (size * scale).max(12.0));
    let names: Vec<String> = weights.experts.iter().map(|n| short(n)).collect();
    let legend_width = legend_width(area, &names, scale)?;
    let (width, _) = area.dim_in_pixel();
    let (plot, legend) = area.split_horizontally(width.saturating_sub(legend_width));

    let order = bar_order(weights);
    let top_of = |u: usize| argmax(&weights.users[u]);
    // At most one bar per pixel column of the plot (roughly): runs of users beyond.
    let (plot_width, _) = plot.dim_in_pixel();
    let bars = n.min((plot_width as usize).saturating_sub(120).max(50));
    let caption = if bars == n {
        "(b) every user's router weights, stacked (one bar per user)".to_string()
    } else {
        format!(
            "(b) users' router weights, stacked (one bar per ~{:.0} consecutive users, averaged)",
            n as f64 / bars as f64
        )
    };
    let x_desc = format!("users ({n}), grouped by their top expert, then sorted by its weight");
    let mut chart = ChartBuilder::on(&plot)
        .caption(caption, font(20.0))
        .margin((12.0 * scale) as u32 + 4)
        .x_label_area_size((50.0 * scale) as u32 + 12)
        .y_label_area_size((70.0 * scale) as u32 + 16)
        .build_cartesian_2d(0f64..n as f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(10)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_labels(6)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .x_desc(x_desc)
        .y_desc("router weight")
        .label_style(font(17.0))
        .axis_desc_style(font(17.0))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;

    chart.draw_series(stacked_bars(weights, &order, bars))?;
    // A line where the top expert changes.
    let boundaries = (1..n).filter(|&k| top_of(order[k]) != top_of(order[k - 1]));
    chart.draw_series(boundaries.map(|k| {
        PathElement::new(
            vec![(k as f64, 0.0), (k as f64, 1.0)],
            BLACK.stroke_width((2.0 * scale).max(1.0) as u32),
        )
    }))?;

    draw_legend(&legend, &names, scale)
}

/// Width of the legend column: its longest name (or its title), a swatch
/// and margins.
fn legend_width(area: &Area<'_>, names: &[String], scale: f64) -> Result<u32, RouterPlotError> {
    let title = widest_text(area, &["expert".to_string()], scale)?;
    Ok(widest_text(area, names, scale)?.max(title) + (60.0 * scale) as u32 + 20)
}

/// Pixel width of the widest of `texts` in the plot's 17-point label font.
fn widest_text(area: &Area<'_>, texts: &[String], scale: f64) -> Result<u32, RouterPlotError> {
    let style = (FONT, (17.0 * scale).max(12.0)).into_text_style(area);
    Ok(texts
        .iter()
        .map(|t| area.estimate_text_size(t, &style))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(w, _)| w)
        .max()
        .unwrap_or(0))
}

/// Bar b covers users `order[b * n / bars..(b + 1) * n / bars]`, each
/// expert's mean weight stacked in expert order.
fn stacked_bars(
    weights: &RouterWeights,
    order: &[usize],
    bars: usize,
) -> Vec<Rectangle<(f64, f64)>> {
    let e = weights.experts.len();
    let n = weights.users.len();
    let gap = if bars <= 60 { 0.08 } else { 0.0 };
    let mut rects = Vec::with_capacity(bars * e);
    for b in 0..bars {
        let (start, end) = (b * n / bars, (b + 1) * n / bars);
        let members = &order[start..end];
        let mut bottom = 0f64;
        for i in 0..e {
            let w = members
                .iter()
                .map(|&u| f64::from(weights.users[u][i]))
                .sum::<f64>()
                / members.len() as f64;
            rects.push(Rectangle::new(
                [(start as f64 + gap, bottom), (end as f64 - gap, bottom + w)],
                color(i).filled(),
            ));
            bottom += w;
        }
    }
    rects
}

/// The legend: a swatch and the name per expert, shared by both panels.
fn draw_legend(legend: &Area<'_>, names: &[String], scale: f64) -> Result<(), RouterPlotError> {
    let e = names.len();
    // Rows (and their text) shrink to fit many experts into the panel's height.
    let size = (17.0 * scale).max(12.0);
    let (x0, y0) = (10, (90.0 * scale) as i32);
    legend.draw(&Text::new(
        "expert",
        (x0, y0 - (1.8 * size) as i32),
        (FONT, size),
    ))?;
    let room = f64::from(legend.dim_in_pixel().1) - f64::from(y0) - 10.0;
    let step = (1.8 * size).min(room / e as f64).max(1.0);
    let text = (step / 1.8 * 1.2).min(size).max(6.0);
    let swatch = (1.1 * text) as i32;
    for (i, name) in names.iter().enumerate() {
        let y = y0 + (step * i as f64) as i32;
        legend.draw(&Rectangle::new(
            [(x0, y), (x0 + swatch, y + swatch)],
            color(i).filled(),
        ))?;
        legend.draw(&Text::new(
            name.as_str(),
            (x0 + swatch + 8, y + swatch / 2 - (text * 0.4) as i32),
            (FONT, text),
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    /// Five users over three experts; user 4 ties A and B (the tie goes to A).
    fn hand_made() -> RouterWeights {
        RouterWeights {
            experts: names(&["A", "B", "C"]),
            users: vec![
                vec![0.5, 0.3, 0.2],
                vec![0.2, 0.6, 0.2],
                vec![0.1, 0.1, 0.8],
                vec![0.6, 0.2, 0.2],
                vec![0.4, 0.4, 0.2],
            ],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    fn assert_spread(s: &ExpertSpread, want: [f64; 8]) {
        let got = [
            s.mean,
            s.std,
            s.min,
            s.p10,
            s.median,
            s.p90,
            s.max,
            s.top_share,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!(close(*g, w), "{}: got {got:?}, want {want:?}", s.expert);
        }
    }

    #[test]
    fn spread_matches_hand_computed_values() {
        let s = spread(&hand_made()).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].expert, "A");
        // A = [.5 .2 .1 .6 .4], sorted [.1 .2 .4 .5 .6]: mean 1.8/5 = .36;
        // squared deviations .0196 .0256 .0676 .0576 .0016 sum .172, /5 = .0344;
        // p10 at rank .4: .1 + .4*.1 = .14; median .4; p90 at rank 3.6:
        // .5 + .6*.1 = .56. Top for users 0, 3 and 4 (tie) = 3/5.
        assert_spread(
            &s[0],
            [0.36, 0.0344f64.sqrt(), 0.1, 0.14, 0.4, 0.56, 0.6, 0.6],
        );
        // B = [.3 .6 .1 .2 .4], sorted [.1 .2 .3 .4 .6]: mean .32; squared
        // deviations .0484 .0144 .0004 .0064 .0784 sum .148, /5 = .0296;
        // p10 .14; median .3; p90 .4 + .6*.2 = .52. Top for user 1 = 1/5.
        assert_spread(
            &s[1],
            [0.32, 0.0296f64.sqrt(), 0.1, 0.14, 0.3, 0.52, 0.6, 0.2],
        );
        // C = [.2 .2 .8 .2 .2]: mean .32; squared deviations 4*.0144 + .2304
        // = .288, /5 = .0576 (std .24); p10 .2; median .2; p90 .2 + .6*.6 = .56.
        // Top for user 2 = 1/5.
        assert_spread(&s[2], [0.32, 0.24, 0.2, 0.2, 0.2, 0.56, 0.8, 0.2]);
    }

    #[test]
    fn summary_matches_hand_computed_values() {
        let s = summary(&hand_made()).unwrap();
        assert_eq!((s.users, s.experts), (5, 3));
        // Top weights .5 .6 .8 .6 .4: mean 2.9/5 = .58.
        assert!(close(s.mean_top_weight, 0.58), "{s:?}");
        // Average router [.36 .32 .32]; L1 distances .28 .56 .96 .48 .24,
        // halved .14 .28 .48 .24 .12, mean 1.26/5 = .252.
        assert!(close(s.mean_distance, 0.252), "{s:?}");
        // User 0's entropy alone: -(.5 ln .5 + .3 ln .3 + .2 ln .2) / ln 3.
        let h0 = -(0.5f64 * 0.5f64.ln() + 0.3 * 0.3f64.ln() + 0.2 * 0.2f64.ln()) / 3f64.ln();
        let one = RouterWeights {
            experts: names(&["A", "B", "C"]),
            users: vec![vec![0.5, 0.3, 0.2]],
        };
        assert!((summary(&one).unwrap().mean_entropy - h0).abs() < 1e-6);
        assert!(s.mean_entropy > 0.0 && s.mean_entropy < 1.0);
    }

    #[test]
    fn summary_tells_alike_users_from_different_ones() {
        let third = 1.0f32 / 3.0;
        let uniform = RouterWeights {
            experts: names(&["Sum", "MLP", "Gate"]),
            users: vec![vec![third; 3]; 4],
        };
        let s = summary(&uniform).unwrap();
        assert!(
            close(s.mean_entropy, 1.0) && close(s.mean_top_weight, 1.0 / 3.0),
            "{s:?}"
        );
        assert!(s.mean_distance < 1e-6, "{s:?}");

        // Everybody one-hot on the same expert: decisive but not personal.
        let same = RouterWeights {
            experts: names(&["Sum", "MLP", "Gate"]),
            users: vec![vec![0.0, 1.0, 0.0]; 4],
        };
        let s = summary(&same).unwrap();
        assert!(
            close(s.mean_entropy, 0.0) && close(s.mean_top_weight, 1.0),
            "{s:?}"
        );
        assert!(close(s.mean_distance, 0.0), "{s:?}");
        assert!(close(spread(&same).unwrap()[1].top_share, 1.0));

        // One-hot on different experts, two users each: average [1/3 1/3 1/3],
        // each user at distance (2/3 + 1/3 + 1/3) / 2 = 2/3.
        let personal = RouterWeights {
            experts: names(&["Sum", "MLP", "Gate"]),
            users: (0..6)
                .map(|u| {
                    let mut r = vec![0.0; 3];
                    r[u % 3] = 1.0;
                    r
                })
                .collect(),
        };
        let s = summary(&personal).unwrap();
        assert!(
            close(s.mean_entropy, 0.0) && close(s.mean_distance, 2.0 / 3.0),
            "{s:?}"
        );
        for e in spread(&personal).unwrap() {
            assert!(close(e.top_share, 1.0 / 3.0), "{e:?}");
        }
    }

    #[test]
    fn markdown_has_a_row_per_expert() {
        let md = spread_markdown(&spread(&hand_made()).unwrap());
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 5, "{md}");
        assert!(lines[0].starts_with("| expert | mean | std |"), "{md}");
        assert_eq!(
            lines[2],
            "| A | 0.360 | 0.185 | 0.100 | 0.140 | 0.400 | 0.560 | 0.600 | 60.0% |"
        );
        assert!(lines[4].starts_with("| C | 0.320 | 0.240 |"), "{md}");
    }

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("fedmr-router-plot-{}", std::process::id()))
            .join(name)
    }

    #[test]
    fn invalid_weights_are_errors() {
        let ok = hand_made();
        let cases: Vec<(&str, RouterWeights)> = vec![
            (
                "no experts",
                RouterWeights {
                    experts: vec![],
                    users: vec![vec![]],
                },
            ),
            (
                "no users",
                RouterWeights {
                    experts: ok.experts.clone(),
                    users: vec![],
                },
            ),
            (
                "has 2 weights for 3",
                RouterWeights {
                    experts: ok.experts.clone(),
                    users: vec![vec![0.5, 0.5]],
                },
            ),
            (
                "is NaN",
                RouterWeights {
                    experts: ok.experts.clone(),
                    users: vec![vec![f32::NAN, 0.5, 0.5]],
                },
            ),
            (
                "is inf",
                RouterWeights {
                    experts: ok.experts.clone(),
                    users: vec![vec![f32::INFINITY, 0.0, 0.0]],
                },
            ),
            (
                "not in [0, 1]",
                RouterWeights {
                    experts: ok.experts.clone(),
                    users: vec![vec![-0.5, 0.75, 0.75]],
                },
            ),
            (
                "sum to 0.900000",
                RouterWeights {
                    experts: ok.experts.clone(),
                    users: vec![vec![0.3, 0.3, 0.3]],
                },
            ),
            (
                "appears twice",
                RouterWeights {
                    experts: names(&["A", "B", "A"]),
                    users: vec![vec![0.2, 0.3, 0.5]],
                },
            ),
            (
                "comma",
                RouterWeights {
                    experts: names(&["A", "B,C", "D"]),
                    users: vec![vec![0.2, 0.3, 0.5]],
                },
            ),
            (
                "empty name",
                RouterWeights {
                    experts: names(&["A", "", "D"]),
                    users: vec![vec![0.2, 0.3, 0.5]],
                },
            ),
        ];
        for (want, w) in cases {
            let err = w.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
            assert!(spread(&w).is_err() && summary(&w).is_err());
            let (csv, png) = (tmp("bad.csv"), tmp("bad.png"));
            assert!(write_csv(&w, &csv).is_err());
            assert!(write_png(&w, &png, "bad").is_err());
            assert!(
                !csv.exists() && !png.exists(),
                "nothing is written for {want}"
            );
        }
        // Rounding in f32 softmax outputs is accepted.
        let third = 1.0f32 / 3.0;
        let near = RouterWeights {
            experts: ok.experts,
            users: vec![vec![third, third, third + 1e-6]],
        };
        near.validate().unwrap();
    }

    #[test]
    fn csv_has_a_header_and_a_row_per_user() {
        let path = tmp("csv/weights.csv");
        write_csv(&hand_made(), &path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[0], "user,A,B,C");
        assert_eq!(lines[1], "0,0.5,0.3,0.2");
        assert_eq!(lines[5], "4,0.4,0.4,0.2");
        fs::remove_file(&path).unwrap();
    }

    /// Width, height, colour type and pixels of a PNG, decoded.
    fn decode(path: &Path) -> (u32, u32, png::ColorType, Vec<u8>) {
        let bytes = fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        pixels.truncate(info.buffer_size());
        (info.width, info.height, info.color_type, pixels)
    }

    /// Users that lean to different experts, with a deterministic spread.
    fn varied(users: usize) -> RouterWeights {
        RouterWeights {
            experts: names(&["Sum", "MLP", "Gate"]),
            users: (0..users)
                .map(|u| {
                    // Salted so that the data do not follow the plot's jitter.
                    let noise = |e: usize| 2.0 * jitter(u + 1_000_003, e + 17);
                    let logits = [
                        noise(0) + if u % 3 == 0 { 1.5 } else { 0.0 },
                        noise(1) + if u % 3 == 1 { 1.0 } else { 0.0 },
                        noise(2),
                    ];
                    let z: f64 = logits.iter().map(|l| l.exp()).sum();
                    logits.iter().map(|l| (l.exp() / z) as f32).collect()
                })
                .collect(),
        }
    }

    #[test]
    fn png_is_written_at_the_requested_size_and_shows_the_weights() {
        let a = tmp("png/varied.png");
        write_png_sized(&varied(300), &a, "Router weights (varied)", (900, 700)).unwrap();
        let (w, h, color_type, pixels) = decode(&a);
        assert_eq!((w, h, color_type), (900, 700, png::ColorType::Rgb));
        // Something besides the white background was drawn, in the expert colours.
        let has = |c: RGBColor| pixels.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(color(0)) && has(color(1)) && has(color(2)));
        assert!(!has(color(3)), "only three experts, so no fourth colour");

        // Different weights, same title and size: a different picture.
        let b = tmp("png/same.png");
        let same = RouterWeights {
            experts: names(&["Sum", "MLP", "Gate"]),
            users: vec![vec![0.2, 0.5, 0.3]; 300],
        };
        write_png_sized(&same, &b, "Router weights (varied)", (900, 700)).unwrap();
        let (w2, h2, _, other) = decode(&b);
        assert_eq!((w2, h2), (900, 700));
        let differing = pixels.iter().zip(&other).filter(|(p, q)| p != q).count();
        assert!(differing > 10_000, "only {differing} bytes differ");

        // The default size; many users (bars average runs of users).
        let c = tmp("png/default.png");
        write_png(&varied(5000), &c, "Router weights, 5000 users").unwrap();
        assert_eq!(decode(&c).0, DEFAULT_PNG_SIZE.0);
        assert_eq!(decode(&c).1, DEFAULT_PNG_SIZE.1);
        for p in [a, b, c] {
            fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn png_size_out_of_range_is_an_error() {
        for size in [(100, 100), (479, 700), (900, 359), (9000, 700)] {
            let err = render_png(&hand_made(), "t", size).unwrap_err();
            assert!(
                matches!(err, RouterPlotError::Invalid(_)),
                "{size:?}: {err}"
            );
        }
        let one_expert = RouterWeights {
            experts: names(&["only"]),
            users: vec![vec![1.0]],
        };
        render_png(&one_expert, "one expert, one user", MIN_PNG_SIZE).unwrap();
    }

    #[test]
    fn many_experts_with_long_names_still_draw() {
        let experts: Vec<String> = (0..12)
            .map(|i| format!("a rather long expert name number {i}"))
            .collect();
        let users = (0..40)
            .map(|u| {
                let mut r = vec![0.5 / 11.0; 12];
                r[u % 12] = 0.5;
                r
            })
            .collect();
        let w = RouterWeights { experts, users };
        for size in [MIN_PNG_SIZE, DEFAULT_PNG_SIZE] {
            let png = render_png(&w, "twelve experts", size).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        }
    }

    #[test]
    fn bar_order_groups_by_top_expert_then_weight() {
        // Tops: u0 A .5, u1 B .6, u2 C .8, u3 A .6, u4 A .4 (tie).
        assert_eq!(bar_order(&hand_made()), vec![3, 0, 4, 1, 2]);
    }
}
