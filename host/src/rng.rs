//! The project's seeded random streams: one `--seed` reproduces a run bit for bit.
//!
//! candle's CPU generator cannot be seeded, so every random draw (initial weights, the split,
//! batch order, dropout masks) comes from here. Each use has its own stream, so that, for example,
//! a dropout model and a base model with one seed get the same initial weights and batch order.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is used for.
#[derive(Clone, Copy, Debug)]
pub enum Stream {
    /// The train/val/test split.
    Split = 1,
    /// Initial weights.
    Init = 2,
    /// Batch order, one new shuffle per epoch.
    Shuffle = 3,
    /// Dropout masks.
    Dropout = 4,
    /// Data augmentation (noise, shifts).
    Augment = 5,
}

/// A generator for `seed` and `use_`, independent of every other stream.
pub fn stream(seed: u64, use_: Stream) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(use_ as u64);
    rng
}
