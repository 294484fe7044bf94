//! The layers' matrix products, through the `gemm` family's f32 crate
//! (what `gemm::gemm` calls for f32) rather than ndarray's `dot`
//! (matrixmultiply): it picks AVX-512, AVX2 or NEON kernels at run time,
//! and on the local round's shapes (400 x 512 · 512 x 64 and smaller) it
//! measured 2.4x matrixmultiply's rate on an AVX-512 machine and 1.2x with
//! AVX2 alone (`cargo bench -p fedmr-core --bench local_round` prints the
//! first). One thread: a phone's training runs in the background and
//! should not take every core.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// a · b.
pub fn matmul(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Array2<f32> {
    let (m, k, n) = check_shapes(a, b);
    if k == 0 {
        return Array2::zeros((m, n));
    }
    // Zeroed though `gemm` overwrites it: with `read_dst` false it still
    // scales the old contents by zero, and an uninitialised buffer made a
    // local round 8% slower (likely denormal garbage); zeros are also safe.
    let mut c = Array2::<f32>::zeros((m, n));
    let strides = [c.strides()[0], c.strides()[1]];
    // SAFETY: `c` is m x n with these strides and owned here, so it aliases
    // neither input.
    unsafe { gemm_raw(c.as_mut_ptr(), strides, a, b, false) }
    c
}

/// c += a · b.
pub fn matmul_add(c: &mut ArrayViewMut2<f32>, a: &ArrayView2<f32>, b: &ArrayView2<f32>) {
    let (m, k, n) = check_shapes(a, b);
    assert_eq!(c.dim(), (m, n), "output shape of a matrix product");
    if k == 0 || m == 0 || n == 0 {
        return;
    }
    let strides = [c.strides()[0], c.strides()[1]];
    // SAFETY: `c` is an m x n view with these strides, borrowed mutably, so
    // it aliases neither `a` nor `b`.
    unsafe { gemm_raw(c.as_mut_ptr(), strides, a, b, true) }
}

fn check_shapes(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> (usize, usize, usize) {
    assert_eq!(
        b.nrows(),
        a.ncols(),
        "inner dimensions of a matrix product differ"
    );
    (a.nrows(), a.ncols(), b.ncols())
}

/// dst = a · b, or dst += a · b when `accumulate`. Any strides (transposed
/// views included): `gemm` reads them as given.
///
/// # Safety
/// `dst` with `dst_strides` must address a writable a.nrows() x b.ncols()
/// matrix (initialised when `accumulate`) that overlaps neither input.
unsafe fn gemm_raw(
    dst: *mut f32,
    dst_strides: [isize; 2],
    a: &ArrayView2<f32>,
    b: &ArrayView2<f32>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    if m == 0 || n == 0 {
        return;
    }
    let (a_strides, b_strides) = (a.strides(), b.strides());
    // SAFETY: the caller's contract for `dst`; `a` and `b` are views, whose
    // strides address only their own elements.
    unsafe {
        gemm_f32::gemm::f32::get_gemm_fn()(
            m,
            n,
            k,
            dst,
            dst_strides[1],
            dst_strides[0],
            accumulate,
            a.as_ptr(),
            a_strides[1],
            a_strides[0],
            b.as_ptr(),
            b_strides[1],
            b_strides[0],
            1.0,
            1.0,
            false,
            false,
            false,
            gemm_common::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::gradcheck::random_matrix;
    use crate::rng::Rng;

    fn close(x: &Array2<f32>, y: &Array2<f32>) -> bool {
        x.dim() == y.dim()
            && x.iter()
                .zip(y)
                .all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + b.abs()))
    }

    #[test]
    fn products_equal_ndarray_on_every_layout() {
        let mut rng = Rng::new(7);
        // Shapes around the kernels' block sizes, plain and transposed.
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 2),
            (17, 33, 9),
            (64, 64, 64),
            (130, 70, 129),
        ] {
            let a = random_matrix(m, k, &mut rng);
            let at = random_matrix(k, m, &mut rng);
            let b = random_matrix(k, n, &mut rng);
            assert!(
                close(&matmul(&a.view(), &b.view()), &a.dot(&b)),
                "{m}x{k}x{n}"
            );
            assert!(
                close(&matmul(&at.t(), &b.view()), &at.t().dot(&b)),
                "{m}x{k}x{n} transposed"
            );
            let mut c = random_matrix(m, n, &mut rng);
            let expected = &c + &a.dot(&b);
            matmul_add(&mut c.view_mut(), &a.view(), &b.view());
            assert!(close(&c, &expected), "{m}x{k}x{n} accumulated");
        }
    }

    #[test]
    fn empty_inner_dimension_gives_zeros_or_leaves_the_sum() {
        let a = Array2::<f32>::zeros((3, 0));
        let b = Array2::<f32>::zeros((0, 2));
        assert_eq!(matmul(&a.view(), &b.view()), Array2::zeros((3, 2)));
        let mut c = Array2::from_elem((3, 2), 5.0f32);
        matmul_add(&mut c.view_mut(), &a.view(), &b.view());
        assert_eq!(c, Array2::from_elem((3, 2), 5.0));
    }
}
