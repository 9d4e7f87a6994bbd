//! The one call into `gemm`: a product of matrices given by their strides, on the thread count
//! candle is set to (the Dense layers' first product, every convolution and its gradients).

/// `dst (m × n) = lhs (m × k) · rhs (k × n)`, each given by its row and column strides.
pub fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n, "gemm destination");
    assert!(m == 0 || k == 0 || (m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "gemm left operand");
    assert!(k == 0 || n == 0 || (k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "gemm right operand");
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the assertions above keep every element gemm reads (`lhs[i*lhs_rs + l*lhs_cs]` for
    // i < m, l < k; `rhs[l*rhs_rs + j*rhs_cs]` for l < k, j < n) and writes (`dst[i*n + j]`) inside
    // the three slices; `dst` is not read (`read_dst` false) and does not overlap the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}
