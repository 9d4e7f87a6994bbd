//! Where a window lands on its input: the one walk over output positions and their taps that
//! every convolution and pooling operator shares, with Keras's padding ([`crate::layer::Window`]).
//!
//! Padded taps are not visited: a convolution adds nothing for them and a pooling window does
//! not count them, which is what Keras, TFLite and ONNX (`count_include_pad = 0`) compute.

use crate::layer::{Axis, Dims, Window};

/// A window over an input map, with the output map it makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The input map.
    pub input: Dims,
    /// The window.
    pub window: Window,
    rows: Axis,
    cols: Axis,
}

impl Placement {
    /// `window` over `input`; `None` if no output fits.
    pub const fn new(input: Dims, window: Window) -> Option<Self> {
        match (window.axis(0, input.height), window.axis(1, input.width)) {
            (Some(rows), Some(cols)) => Some(Self { input, window, rows, cols }),
            _ => None,
        }
    }

    /// Output rows and columns.
    pub const fn output_size(&self) -> (usize, usize) {
        (self.rows.outputs, self.cols.outputs)
    }

    /// Padded positions before the input's first along `axis` (0: rows, 1: columns).
    pub const fn before(&self, axis: usize) -> usize {
        if axis == 0 {
            self.rows.before
        } else {
            self.cols.before
        }
    }

    /// Output positions in the map's order (row by row).
    pub const fn positions(&self) -> usize {
        self.rows.outputs * self.cols.outputs
    }

    /// The part of the window at output position `(row, col)` that falls inside the input: a
    /// rectangle of taps, as padding only ever cuts whole rows and columns off a window.
    #[inline(always)]
    pub fn inside(&self, row: usize, col: usize) -> Inside {
        let [kh, kw] = self.window.size;
        let [sh, sw] = self.window.stride;
        let (top, left) = (row * sh, col * sw);
        // the first tap's input row and column are `top - before`, `left - before`
        let span = |start: usize, before: usize, size: usize, len: usize| {
            let first = before.saturating_sub(start);
            let last = (len + before).saturating_sub(start).min(size);
            (first, last.max(first))
        };
        let (row0, row1) = span(top, self.rows.before, kh, self.input.height);
        let (col0, col1) = span(left, self.cols.before, kw, self.input.width);
        Inside {
            rows: (row0, row1),
            cols: (col0, col1),
            // input row and column of tap (0, 0), offset by `before` so they stay unsigned
            origin: (top, left),
            before: (self.rows.before, self.cols.before),
            window_cols: kw,
            input_cols: self.input.width,
        }
    }

    /// The taps of the window at output position `(row, col)` that fall inside the input, in
    /// kernel order (row by row): `(kernel tap index, input position index)`.
    #[inline(always)]
    pub fn taps(&self, row: usize, col: usize) -> impl Iterator<Item = (usize, usize)> {
        let inside = self.inside(row, col);
        let (col0, col1) = inside.cols;
        (inside.rows.0..inside.rows.1)
            .flat_map(move |ky| (col0..col1).map(move |kx| (ky * inside.window_cols + kx, inside.pixel(ky, kx))))
    }
}

/// The taps of one window position inside the input: rows `rows.0..rows.1` and columns
/// `cols.0..cols.1` of the window ([`Placement::inside`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inside {
    /// The window rows inside the input.
    pub rows: (usize, usize),
    /// The window columns inside the input.
    pub cols: (usize, usize),
    origin: (usize, usize),
    before: (usize, usize),
    window_cols: usize,
    input_cols: usize,
}

impl Inside {
    /// The input position of the window's tap `(ky, kx)` (one inside the input).
    #[inline(always)]
    pub fn pixel(&self, ky: usize, kx: usize) -> usize {
        let iy = self.origin.0 + ky - self.before.0;
        let ix = self.origin.1 + kx - self.before.1;
        iy * self.input_cols + ix
    }

    /// The kernel tap index of `(ky, kx)`.
    #[inline(always)]
    pub fn tap(&self, ky: usize, kx: usize) -> usize {
        ky * self.window_cols + kx
    }
}
