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

    /// The taps of the window at output position `(row, col)` that fall inside the input, in
    /// kernel order (row by row): `(kernel tap index, input position index)`.
    #[inline(always)]
    pub fn taps(&self, row: usize, col: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let [kh, kw] = self.window.size;
        let [sh, sw] = self.window.stride;
        // the first tap's input row and column, possibly before the input (negative)
        let top = (row * sh) as isize - self.rows.before as isize;
        let left = (col * sw) as isize - self.cols.before as isize;
        let (height, width) = (self.input.height as isize, self.input.width as isize);
        (0..kh).flat_map(move |ky| {
            let iy = top + ky as isize;
            let row_inside = iy >= 0 && iy < height;
            (0..kw).filter_map(move |kx| {
                let ix = left + kx as isize;
                (row_inside && ix >= 0 && ix < width).then(|| (ky * kw + kx, (iy * width + ix) as usize))
            })
        })
    }
}
