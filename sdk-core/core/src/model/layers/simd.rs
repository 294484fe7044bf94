//! Element-wise loops compiled three times on x86_64: for the baseline
//! target (SSE2, four lanes), for AVX2 (8) and for AVX-512 (16), picked at
//! run time. The baseline is what a portable library must assume; the wider
//! versions cut the loops the compiler vectorises (layer norm and the
//! gate's sigmoid: 5% of a local round on an AVX-512 machine). Other
//! targets (a phone's aarch64, whose NEON is its baseline) compile the loop
//! once. No FMA is enabled and no sum is reordered (Rust does not contract
//! a * b + c): every version does the same operations in the same order.

/// `fn name(args) body` defined with the run-time dispatch described above
/// (`is_x86_feature_detected!` caches what it finds).
macro_rules! dispatch_simd {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the feature `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has the feature `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use dispatch_simd;
