//! Maximally activating patches (Zeiler & Fergus 2014; Yosinski et al.'s deep visualization
//! toolbox): for every channel of a layer, the images of a dataset whose largest activation in
//! that channel (over positions) is highest, each cropped to the receptive field of the unit where
//! it peaks.
//!
//! - The receptive field of every layer comes from the spec: each kind says which input positions
//!   an output position reads ([`Window`]: a sliding window, the same position, or all of them),
//!   and the field's offset, spacing and size follow through the layers (a layer reading several
//!   takes the union of their fields).
//! - A crop is the field's square in the network's input, zero-padded where it leaves the image
//!   (as the toolbox shows it), so every patch of a layer has one size; along an axis where the
//!   field spans the whole image or more (deep layers), the crop is the whole image.
//! - The images go through the network in blocks of [`BLOCK`] (the fused CPU path where it runs,
//!   else Burn), always the same blocks of the split however the search is chunked or split (a
//!   GEMM's rounding can depend on a row's place in its batch); each channel keeps its top `k` as (value, image, y, x), ties going to the earlier image and,
//!   within an image, to the first position in row-major order.
//! - A search splits into parts (the page's worker pool): part k of n searches its own run of
//!   whole blocks, and [`Top::absorb`] puts the parts' tops together. The order is total (value, then
//!   image) and each image is in one part, so the result is one search's, bit for bit.

use std::rc::Rc;

use burn::tensor::{Tensor, TensorData};
use serde_json::{Map, Value};

use crate::cpu_train::CpuTrainer;
use crate::data::Dataset;
use crate::layers::Window;
use crate::settings::{Field as SettingField, Resolved, Schema};
use crate::spec::{Limits, NetSpec};
use crate::{Error, Net};

/// The settings list (see [`crate::settings`]).
pub fn schema() -> Schema {
    Schema::new(
        "patches",
        vec![
            SettingField::layer("layer", "layer").help("The layer whose channels are shown (default: the last conv layer)"),
            SettingField::choice("split", "images", vec!["train", "test"], "train"),
            SettingField::integer("images", "how many", 60000, 1, 1_000_000)
                .help("Images searched, from the start of the split (at most all)"),
            SettingField::integer("top", "per channel", 9, 1, 64).help("Patches kept per channel (the toolbox shows 9)"),
        ],
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub layer: usize,
    pub split: String,
    pub images: usize,
    pub top: usize,
}

impl Settings {
    pub fn from_values(v: &Map<String, Value>, spec: &NetSpec) -> Result<Settings, Error> {
        let layer = match v.layer("layer", spec)? {
            Some(l) => l,
            None => default_layer(spec),
        };
        Ok(Settings { layer, split: v.text("split").to_string(), images: v.int("images"), top: v.int("top") })
    }
}

/// The last convolutional layer's output after its activation (the layer the lecture's examples
/// show), else the score layer.
pub fn default_layer(spec: &NetSpec) -> usize {
    // A conv layer with a spatial map (MobileNet's classifier is a 1x1 conv on a 1x1 map).
    let spatial = |l: &&crate::spec::Layer| l.kind.type_name() == "conv" && l.out_shape[1] * l.out_shape[2] > 1;
    let Some(conv) = spec.layers.iter().rev().find(spatial) else { return spec.score_layer() };
    // An activation layer of its own right after it (Keras models: conv, then relu).
    match spec.layers.get(conv.index + 1) {
        Some(next) if next.inputs == [conv.index] && matches!(next.kind, crate::layers::LayerKind::Act(_)) => next.index,
        _ => conv.index,
    }
}

/// One axis of a receptive field: output position `u` reads input pixels
/// `offset + u·jump .. offset + u·jump + size` (`jump` 0: every position reads the same span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    pub offset: i64,
    pub jump: i64,
    pub size: i64,
}

impl Axis {
    /// The span output position `u` reads.
    pub fn span(&self, u: usize) -> (i64, i64) {
        let a = self.offset + u as i64 * self.jump;
        (a, a + self.size)
    }

    fn union(&self, o: &Axis) -> Axis {
        let offset = self.offset.min(o.offset);
        let end = (self.offset + self.size).max(o.offset + o.size);
        Axis { offset, jump: self.jump.max(o.jump), size: end - offset }
    }
}

/// A layer's receptive field in the input, per axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceptiveField {
    pub y: Axis,
    pub x: Axis,
}

impl ReceptiveField {
    /// The input rectangle unit (`y`, `x`) reads: (top, left, height, width), possibly reaching
    /// outside the image.
    pub fn rect(&self, y: usize, x: usize) -> (i64, i64, usize, usize) {
        let ((y0, y1), (x0, x1)) = (self.y.span(y), self.x.span(x));
        (y0, x0, (y1 - y0) as usize, (x1 - x0) as usize)
    }

    /// The patch shown for unit (`y`, `x`) of an `h` x `w` image: the field's rectangle (zeros
    /// where it leaves the image, as the toolbox shows it), or the whole image along an axis where
    /// the field is as large as the image or larger (deep layers).
    pub fn patch(&self, y: usize, x: usize, h: usize, w: usize) -> (i64, i64, usize, usize) {
        let (y0, x0, fh, fw) = self.rect(y, x);
        let (y0, fh) = if fh >= h { (0, h) } else { (y0, fh) };
        let (x0, fw) = if fw >= w { (0, w) } else { (x0, fw) };
        (y0, x0, fh, fw)
    }

    /// The patch's size in an `h` x `w` image.
    pub fn patch_size(&self, h: usize, w: usize) -> (usize, usize) {
        ((self.y.size as usize).min(h), (self.x.size as usize).min(w))
    }
}

/// Every layer's receptive field, from the spec.
pub fn receptive_fields(spec: &NetSpec) -> Vec<ReceptiveField> {
    let [_, h, w] = spec.input_shape();
    let whole = ReceptiveField { y: Axis { offset: 0, jump: 0, size: h as i64 }, x: Axis { offset: 0, jump: 0, size: w as i64 } };
    let mut fields: Vec<ReceptiveField> = Vec::with_capacity(spec.layers.len());
    for l in &spec.layers {
        if l.index == 0 {
            fields.push(ReceptiveField { y: Axis { offset: 0, jump: 1, size: 1 }, x: Axis { offset: 0, jump: 1, size: 1 } });
            continue;
        }
        let input = l.inputs.iter().map(|&i| fields[i]).reduce(|a, b| ReceptiveField { y: a.y.union(&b.y), x: a.x.union(&b.x) });
        let input = input.unwrap_or(whole);
        let slide = |a: Axis, size: usize, stride: usize, pad: usize| {
            if a.jump == 0 {
                return a;
            }
            Axis { offset: a.offset - pad as i64 * a.jump, jump: a.jump * stride as i64, size: a.size + (size as i64 - 1) * a.jump }
        };
        let f = match l.kind.ops().window() {
            Window::Pointwise => input,
            Window::Whole => whole,
            Window::Slide { size, stride, pad } => {
                ReceptiveField { y: slide(input.y, size, stride, pad), x: slide(input.x, size, stride, pad) }
            }
        };
        fields.push(f);
    }
    fields
}

/// The `h` x `w` crop of a CHW `image` (`shape`) whose top-left is (`y0`, `x0`), zeros outside.
pub fn crop(image: &[f32], shape: [usize; 3], y0: i64, x0: i64, h: usize, w: usize) -> Vec<f32> {
    let [c, ih, iw] = shape;
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        for r in 0..h {
            let sy = y0 + r as i64;
            if sy < 0 || sy >= ih as i64 {
                continue;
            }
            for col in 0..w {
                let sx = x0 + col as i64;
                if sx >= 0 && sx < iw as i64 {
                    out[(ch * h + r) * w + col] = image[(ch * ih + sy as usize) * iw + sx as usize];
                }
            }
        }
    }
    out
}

/// One image's peak in one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub value: f32,
    /// Its index in the split.
    pub image: usize,
    pub y: usize,
    pub x: usize,
}

/// Whether `a` ranks before `b`: a higher value, then an earlier image.
fn before(a: &Hit, b: &Hit) -> bool {
    a.value > b.value || (a.value == b.value && a.image < b.image)
}

/// Every channel's best `k` so far, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Top {
    pub k: usize,
    pub channels: Vec<Vec<Hit>>,
}

impl Top {
    pub fn new(channels: usize, k: usize) -> Top {
        Top { k, channels: vec![Vec::with_capacity(k + 1); channels] }
    }

    pub fn offer(&mut self, channel: usize, hit: Hit) {
        let list = &mut self.channels[channel];
        if list.len() == self.k && !before(&hit, list.last().expect("k >= 1")) {
            return;
        }
        let at = list.iter().position(|h| before(&hit, h)).unwrap_or(list.len());
        list.insert(at, hit);
        list.truncate(self.k);
    }

    /// Offers each image's peak in each channel of a batch of layer outputs (`[n, c, h, w]`
    /// flat; the images are `first..first + n`).
    pub fn offer_batch(&mut self, out: &[f32], n: usize, shape: [usize; 3], first: usize) {
        let [c, h, w] = shape;
        let hw = h * w;
        for i in 0..n {
            for ch in 0..c {
                let plane = &out[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                let (mut best, mut at) = (f32::NEG_INFINITY, 0);
                for (p, &v) in plane.iter().enumerate() {
                    if v > best {
                        best = v;
                        at = p;
                    }
                }
                self.offer(ch, Hit { value: best, image: first + i, y: at / w, x: at % w });
            }
        }
    }

    /// Offers every hit of `other` (a search of other images): the top of both searches.
    pub fn absorb(&mut self, other: &Top) {
        for (ch, hits) in other.channels.iter().enumerate() {
            for &h in hits {
                self.offer(ch, h);
            }
        }
    }

    /// The lists as `[channels, k]` arrays, best first: values, images, ys, xs (image -1 and value
    /// NaN where a channel has fewer hits).
    pub fn lists(&self) -> (Vec<f32>, Vec<i32>, Vec<i32>, Vec<i32>) {
        let (c, k) = (self.channels.len(), self.k);
        let (mut values, mut images, mut ys, mut xs) = (vec![f32::NAN; c * k], vec![-1; c * k], vec![-1; c * k], vec![-1; c * k]);
        for (ch, hits) in self.channels.iter().enumerate() {
            for (r, h) in hits.iter().enumerate() {
                let at = ch * k + r;
                values[at] = h.value;
                images[at] = h.image as i32;
                ys[at] = h.y as i32;
                xs[at] = h.x as i32;
            }
        }
        (values, images, ys, xs)
    }

    /// The top of `[channels, k]` arrays as [`Top::lists`] gives them (a part's state, back from
    /// the page); entries with image -1 are none.
    pub fn from_lists(channels: usize, k: usize, values: &[f32], images: &[i32], ys: &[i32], xs: &[i32]) -> Result<Top, Error> {
        let n = channels * k;
        if k == 0 || [values.len(), images.len(), ys.len(), xs.len()] != [n; 4] {
            return Err(Error::Input(format!("patches: expected {channels} channels x {k} hits in each list")));
        }
        let mut top = Top::new(channels, k);
        for at in 0..n {
            if images[at] < 0 {
                continue;
            }
            if ys[at] < 0 || xs[at] < 0 || values[at].is_nan() {
                return Err(Error::Input(format!("patches: hit {at} has no unit or value")));
            }
            let hit = Hit { value: values[at], image: images[at] as usize, y: ys[at] as usize, x: xs[at] as usize };
            top.offer(at / k, hit);
        }
        Ok(top)
    }
}

/// The tops of several parts (`[parts, channels, k]` arrays each, the parts' images disjoint)
/// put together: one search's top over all their images, as `[channels, k]` arrays.
pub fn merge_lists(
    channels: usize,
    k: usize,
    values: &[f32],
    images: &[i32],
    ys: &[i32],
    xs: &[i32],
) -> Result<(Vec<f32>, Vec<i32>, Vec<i32>, Vec<i32>), Error> {
    let per = channels * k;
    if per == 0 || !values.len().is_multiple_of(per) {
        return Err(Error::Input(format!("patches merge: the lists are not whole parts of {channels} channels x {k} hits")));
    }
    let mut top = Top::new(channels, k);
    for p in 0..values.len() / per {
        let r = p * per..(p + 1) * per;
        let get = |a: &[i32]| a.get(r.clone()).map(<[i32]>::to_vec).unwrap_or_default();
        top.absorb(&Top::from_lists(channels, k, &values[r.clone()], &get(images), &get(ys), &get(xs))?);
    }
    Ok(top.lists())
}

/// Layer `layer`'s output for `n` inputs `x` (CHW each), flat: on the fused CPU path (`fused`,
/// which holds `net`'s weights) where it reaches that layer, else through Burn.
pub async fn layer_output(net: &Net, fused: Option<&mut CpuTrainer>, x: Vec<f32>, n: usize, layer: usize) -> Result<Vec<f32>, Error> {
    if layer == 0 {
        return Ok(x);
    }
    match fused {
        Some(f) if layer <= net.spec.score_layer() + 1 => f.layer_output(&x, n, layer),
        _ => {
            let [d, h, w] = net.spec.input_shape();
            let t = Tensor::<4>::from_data(TensorData::new(x, [n, d, h, w]), &net.device);
            let y = net.forward_upto(t, layer, &net.params).pop().expect("layer 0 at least");
            crate::read(y.flatten::<1>(0, 3)).await
        }
    }
}

/// Images per block: a step searches one.
pub const BLOCK: usize = 64;

/// A search in progress, or done.
#[derive(Debug, Clone)]
pub struct Patches {
    pub settings: Settings,
    pub data: Rc<Dataset>,
    /// The images this search (or part of one) covers, of the split's first `settings.images`.
    pub range: std::ops::Range<usize>,
    /// The next image to search (`range.start..=range.end`).
    pub next: usize,
    /// How many the whole search covers (all parts).
    pub total: usize,
    /// Whether this is one part of a split search.
    pub split: bool,
    pub top: Top,
    pub field: ReceptiveField,
    /// The layer's output shape.
    pub shape: [usize; 3],
    /// The network's input shape (the images the fields are in).
    pub input: [usize; 3],
}

impl Patches {
    /// Part `k` of `n` (`(0, 1)`: the whole search) of a search with `settings`.
    pub fn new(net: &Net, data: Rc<Dataset>, settings: Settings, (k, n): (usize, usize)) -> Result<Patches, Error> {
        data.check_input(net.spec.input_shape())?;
        let layer = net.spec.layers.get(settings.layer).ok_or_else(|| Error::Input(format!("there is no layer {}", settings.layer)))?;
        if settings.layer == 0 {
            return Err(Error::Input("pick a layer after the input: the input's channels are its pixels".into()));
        }
        let shape = layer.out_shape;
        let total = settings.images.min(data.len());
        if total == 0 {
            return Err(Error::Input(format!("the {} split has no images", settings.split)));
        }
        let field = receptive_fields(&net.spec)[settings.layer];
        let block = Self::block_for(net);
        let blocks = total.div_ceil(block);
        let range = (blocks * k / n * block).min(total)..(blocks * (k + 1) / n * block).min(total);
        let top = Top::new(shape[0], settings.top);
        Ok(Patches { top, field, shape, input: net.spec.input_shape(), next: range.start, range, total, split: n > 1, data, settings })
    }

    pub fn done(&self) -> bool {
        self.next >= self.range.end
    }

    /// The block size for `net`: [`BLOCK`] images, fewer where a batch of them would not fit.
    fn block_for(net: &Net) -> usize {
        BLOCK.min(Limits::here().max_batch(&net.spec)).max(1)
    }

    /// Searches the next block of images: their layer output on the fused CPU path (`fused`) or
    /// through Burn.
    pub async fn run(&mut self, net: &Net, fused: Option<&mut CpuTrainer>) -> Result<(), Error> {
        let block = Self::block_for(net);
        let n = ((self.next / block + 1) * block).min(self.range.end) - self.next.min(self.range.end);
        if n == 0 {
            return Ok(());
        }
        let input = net.spec.input_shape();
        let idx: Vec<usize> = (self.next..self.next + n).collect();
        let (x, _) = self.data.batch(&idx, input, None);
        let layer = self.settings.layer;
        let out = layer_output(net, fused, x, n, layer).await?;
        if let Some(i) = out.iter().position(|v| v.is_nan()) {
            return Err(Error::Input(format!(
                "layer {layer}'s output is not a number (NaN) for image {}",
                self.next + i / (out.len() / n)
            )));
        }
        self.top.offer_batch(&out, n, self.shape, self.next);
        self.next += n;
        Ok(())
    }
}

/// The crops of the units (`image`, `y`, `x` per hit; image -1: none, zeros) of layer `layer`'s
/// receptive field in images of `data`, `[hits, D, h, w]`, and the crop shape.
pub fn crops(
    data: &Dataset,
    spec: &NetSpec,
    layer: usize,
    images: &[i32],
    ys: &[i32],
    xs: &[i32],
) -> Result<(Vec<f32>, [usize; 3]), Error> {
    data.check_input(spec.input_shape())?;
    let l = spec.layers.get(layer).ok_or_else(|| Error::Input(format!("there is no layer {layer}")))?;
    let field = receptive_fields(spec)[layer];
    let input = spec.input_shape();
    let [_, oh, ow] = l.out_shape;
    let (ph, pw) = field.patch_size(input[1], input[2]);
    let shape = [input[0], ph, pw];
    let per = shape.iter().product::<usize>();
    if images.len() != ys.len() || images.len() != xs.len() {
        return Err(Error::Input("patch crops: images, ys and xs differ in length".into()));
    }
    let limits = Limits::here();
    if images.len() as u64 * per as u64 > limits.batch_values {
        return Err(Error::Input(format!(
            "{} patches of {per} values are more than this engine makes at once ({} {}): ask for fewer channels at a time",
            images.len(),
            limits.batch_values,
            limits.what
        )));
    }
    let mut out = Vec::with_capacity(images.len() * per);
    let mut image = vec![];
    for ((&i, &y), &x) in images.iter().zip(ys).zip(xs) {
        if i < 0 {
            out.extend(std::iter::repeat_n(0.0, per));
            continue;
        }
        let (i, y, x) = (i as usize, y.max(0) as usize, x.max(0) as usize);
        if i >= data.len() || y >= oh || x >= ow {
            return Err(Error::Input(format!("patch crops: no unit ({y}, {x}) of layer {layer} in image {i} (of {})", data.len())));
        }
        image.clear();
        data.example(i, input, None, &mut image);
        let (y0, x0, h, w) = field.patch(y, x, input[1], input[2]);
        out.extend(crop(&image, input, y0, x0, h, w));
    }
    Ok((out, shape))
}

/// The deconvnet or guided-backprop picture of each hit's unit (Zeiler & Fergus's
/// reconstructions beside the patches, as the toolbox shows them): the gradient of the unit
/// (`channels[i]` at `ys[i]`, `xs[i]` of layer `layer`) with respect to image `images[i]` of
/// `data`, with `rule` at every ReLU, cropped like the patch. `[hits, D, h, w]` and the shape.
#[allow(clippy::too_many_arguments)]
pub async fn maps(
    at: &mut crate::vis::attribution::Attributor<'_>,
    data: &Dataset,
    layer: usize,
    channels: &[i32],
    images: &[i32],
    ys: &[i32],
    xs: &[i32],
    rule: crate::grad::ReluRule,
) -> Result<(Vec<f32>, [usize; 3]), Error> {
    let spec = &at.net.spec;
    if channels.len() != images.len() {
        return Err(Error::Input("patch maps: channels and images differ in length".into()));
    }
    let (_, shape) = crops(data, spec, layer, &[], &[], &[])?;
    let [c, oh, ow] = spec.layers[layer].out_shape;
    let input = spec.input_shape();
    let field = receptive_fields(spec)[layer];
    let per = shape.iter().product::<usize>();
    let mut out = Vec::with_capacity(images.len() * per);
    let mut image = vec![];
    for (((&i, &ch), &y), &x) in images.iter().zip(channels).zip(ys).zip(xs) {
        if i < 0 {
            out.extend(std::iter::repeat_n(0.0, per));
            continue;
        }
        let (i, ch, y, x) = (i as usize, ch.max(0) as usize, y.max(0) as usize, x.max(0) as usize);
        if i >= data.len() || ch >= c || y >= oh || x >= ow {
            return Err(Error::Input(format!("patch maps: no unit {ch} ({y}, {x}) of layer {layer} in image {i} (of {})", data.len())));
        }
        image.clear();
        data.example(i, input, None, &mut image);
        let objective = crate::grad::Objective::Neuron { layer, index: (ch * oh + y) * ow + x };
        let (_, g) = at.input_grads(&image, 1, &objective, rule).await?;
        let (y0, x0, h, w) = field.patch(y, x, input[1], input[2]);
        out.extend(crop(&g, input, y0, x0, h, w));
    }
    Ok((out, shape))
}
