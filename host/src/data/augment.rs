//! Data augmentation, a training-only regularizer: Gaussian noise on the standardized inputs and
//! random translations of image-shaped rows, drawn fresh for every batch from the run's seed.
//!
//! Like dropout it changes only what the training steps see: validation, test and every inference
//! use the rows as they are, and the artifact has no way to express it.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::data::split::Standardization;

/// Rows that are images, `width × height` pixels in row-major order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Pixels per image row.
    pub width: usize,
    /// Image rows.
    pub height: usize,
}

impl ImageShape {
    /// The bundled digits: 8 × 8 pixels.
    pub const DIGITS: Self = Self { width: 8, height: 8 };

    /// Parses `WxH` (`8x8`, `28x28`).
    pub fn parse(text: &str) -> Result<Self, AugmentError> {
        let bad = || AugmentError::Image(text.to_string());
        let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
        let (width, height): (usize, usize) =
            (w.trim().parse().map_err(|_| bad())?, h.trim().parse().map_err(|_| bad())?);
        if width == 0 || height == 0 {
            return Err(bad());
        }
        // rows are at most MAX_WIDTH features: a larger image fits no data set
        match width.checked_mul(height) {
            Some(pixels) if pixels <= crate::limits::MAX_WIDTH => Ok(Self { width, height }),
            _ => Err(AugmentError::ImageTooLarge { image: text.to_string(), max: crate::limits::MAX_WIDTH }),
        }
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// The largest noise level: 100 standard deviations of a standardized input is already pure
/// noise; far larger ones overflow f32 in training.
const MAX_NOISE: f32 = 100.0;

/// What augmentation a run trains with (none by default).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    /// Standard deviation of the Gaussian noise added to each standardized input (0: none).
    pub noise: f32,
    /// Largest translation in pixels, each direction, zero fill (0: none); needs `image`.
    pub shift: usize,
    /// The image shape the shift works on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageShape>,
}

/// An `--augment` or `--image` value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AugmentError {
    #[error("--augment: `{0}` is not a setting (use noise=SIGMA and/or shift=PIXELS, e.g. noise=0.1,shift=1)")]
    Setting(String),
    #[error("--augment noise={0}: the noise level must be a number from 0 to 100 (standard deviations of the standardized inputs)")]
    Noise(String),
    #[error("--augment shift={0}: the shift must be a whole number of pixels")]
    Shift(String),
    #[error("--image {0}: give the image shape as WIDTHxHEIGHT, e.g. 8x8")]
    Image(String),
    #[error("--image {image}: more pixels than a row can have features ({max})")]
    ImageTooLarge { image: String, max: usize },
    #[error("--augment shift needs image-shaped rows: give --image WIDTHxHEIGHT (the bundled digits are 8x8)")]
    NoImage,
    #[error("--image {image} has {pixels} pixels, the data has {features} features")]
    ImageWidth { image: ImageShape, pixels: usize, features: usize },
    #[error("--augment shift={shift} moves a {image} image entirely out of view: use at most {max}")]
    ShiftTooLarge { shift: usize, image: ImageShape, max: usize },
}

impl Augment {
    /// Parses `--augment` (`noise=0.1`, `shift=1`, or both, comma-separated) with `--image`.
    pub fn parse(settings: &[String], image: Option<ImageShape>) -> Result<Self, AugmentError> {
        let mut augment = Augment { image, ..Augment::default() };
        for setting in settings {
            let (key, value) = setting.split_once('=').ok_or_else(|| AugmentError::Setting(setting.clone()))?;
            match key.trim() {
                "noise" => {
                    augment.noise = value
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|s| (0.0..=MAX_NOISE).contains(s))
                        .ok_or_else(|| AugmentError::Noise(value.to_string()))?
                }
                "shift" => {
                    augment.shift = value.trim().parse().map_err(|_| AugmentError::Shift(value.to_string()))?;
                }
                _ => return Err(AugmentError::Setting(setting.clone())),
            }
        }
        Ok(augment)
    }

    /// True when training rows are changed at all.
    pub fn is_active(&self) -> bool {
        self.noise > 0.0 || self.shift > 0
    }

    /// Checks the settings against rows of `features` values.
    pub fn validate(&self, features: usize) -> Result<(), AugmentError> {
        if self.shift == 0 {
            return Ok(());
        }
        let image = self.image.ok_or(AugmentError::NoImage)?;
        if image.pixels() != features {
            return Err(AugmentError::ImageWidth { image, pixels: image.pixels(), features });
        }
        let max = image.width.min(image.height) - 1;
        if self.shift > max {
            return Err(AugmentError::ShiftTooLarge { shift: self.shift, image, max });
        }
        Ok(())
    }

    /// Augments a batch of standardized rows in place: a random translation per row (zero fill in
    /// the raw pixels, so the background stays background), then Gaussian noise per value.
    pub fn apply(&self, batch: &mut [f32], standardization: &Standardization, rng: &mut ChaCha8Rng) {
        let width = standardization.mean.len();
        if width == 0 {
            return;
        }
        if let (Some(image), true) = (self.image, self.shift > 0) {
            let mut shifted = vec![0.0; width];
            let span = self.shift as i64;
            for row in batch.chunks_exact_mut(width) {
                let (dx, dy) = (rng.random_range(-span..=span), rng.random_range(-span..=span));
                translate(row, &mut shifted, image, dx, dy, standardization);
                row.copy_from_slice(&shifted);
            }
        }
        if self.noise > 0.0 {
            if let Ok(normal) = Normal::new(0.0f32, self.noise) {
                batch.iter_mut().for_each(|x| *x += normal.sample(rng));
            }
        }
    }
}

/// `out[y][x] = row[y - dy][x - dx]` in raw pixels, 0 where that falls outside the image; `row` and
/// `out` are standardized.
fn translate(row: &[f32], out: &mut [f32], image: ImageShape, dx: i64, dy: i64, s: &Standardization) {
    let (w, h) = (image.width as i64, image.height as i64);
    for y in 0..h {
        for x in 0..w {
            let target = (y * w + x) as usize;
            let (sx, sy) = (x - dx, y - dy);
            let raw = if (0..w).contains(&sx) && (0..h).contains(&sy) {
                let source = (sy * w + sx) as usize;
                row[source] * s.scale[source] + s.mean[source]
            } else {
                0.0
            };
            out[target] = (raw - s.mean[target]) / s.scale[target];
        }
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.noise > 0.0 {
            parts.push(format!("Gaussian noise σ={}", self.noise));
        }
        if let (Some(image), true) = (self.image, self.shift > 0) {
            parts.push(format!("shifts up to {} px of {image} images", self.shift));
        }
        if parts.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "augmentation: {}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Stream};

    fn identity(width: usize) -> Standardization {
        Standardization { mean: vec![0.0; width], scale: vec![1.0; width] }
    }

    #[test]
    fn settings_parse_and_bad_ones_are_refused_by_name() {
        let parse = |s: &[&str]| Augment::parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None);
        assert_eq!(parse(&["noise=0.1", "shift=1"]).unwrap(), Augment { noise: 0.1, shift: 1, image: None });
        assert_eq!(parse(&["blur=1"]).unwrap_err(), AugmentError::Setting("blur=1".into()));
        assert_eq!(parse(&["noise=-1"]).unwrap_err(), AugmentError::Noise("-1".into()));
        assert_eq!(parse(&["shift=0.5"]).unwrap_err(), AugmentError::Shift("0.5".into()));
        assert_eq!(ImageShape::parse("28x28").unwrap(), ImageShape { width: 28, height: 28 });
        assert!(ImageShape::parse("8by8").is_err() && ImageShape::parse("0x8").is_err());
        let shift = Augment { shift: 1, ..Augment::default() };
        assert_eq!(shift.validate(64), Err(AugmentError::NoImage));
        let digits = Augment { image: Some(ImageShape::DIGITS), ..shift };
        assert_eq!(digits.validate(64), Ok(()));
        assert!(matches!(digits.validate(63), Err(AugmentError::ImageWidth { pixels: 64, features: 63, .. })));
        let far = Augment { shift: 8, ..digits };
        assert!(matches!(far.validate(64), Err(AugmentError::ShiftTooLarge { max: 7, .. })));
    }

    #[test]
    fn a_shift_moves_pixels_and_fills_with_raw_zero() {
        // 3x2 image, raw pixels 1..6, standardized with mean 1 and scale 2 everywhere.
        let image = ImageShape { width: 3, height: 2 };
        let s = Standardization { mean: vec![1.0; 6], scale: vec![2.0; 6] };
        let raw = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let row: Vec<f32> = raw.iter().map(|x| (x - 1.0) / 2.0).collect();
        let mut out = vec![0.0; 6];
        translate(&row, &mut out, image, 1, 0, &s);
        let back: Vec<f32> = out.iter().map(|x| x * 2.0 + 1.0).collect();
        assert_eq!(back, [0.0, 1.0, 2.0, 0.0, 4.0, 5.0], "one pixel right, zero fill on the left");
        translate(&row, &mut out, image, 0, -1, &s);
        let back: Vec<f32> = out.iter().map(|x| x * 2.0 + 1.0).collect();
        assert_eq!(back, [4.0, 5.0, 6.0, 0.0, 0.0, 0.0], "one row up");
    }

    #[test]
    fn noise_has_the_given_spread_and_draws_are_reproducible_from_the_seed() {
        let augment = Augment { noise: 0.5, ..Augment::default() };
        let mut a = vec![0.0f32; 20_000];
        augment.apply(&mut a, &identity(100), &mut stream(7, Stream::Augment));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let std = (a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / a.len() as f32).sqrt();
        assert!(mean.abs() < 0.02 && (std - 0.5).abs() < 0.02, "mean {mean}, std {std}");
        let mut b = vec![0.0f32; 20_000];
        augment.apply(&mut b, &identity(100), &mut stream(7, Stream::Augment));
        assert_eq!(a, b, "the same seed draws the same noise");
        let none = Augment::default();
        let mut c = vec![1.5f32; 64];
        none.apply(&mut c, &identity(64), &mut stream(7, Stream::Augment));
        assert!(c.iter().all(|x| *x == 1.5) && !none.is_active());
    }
}
