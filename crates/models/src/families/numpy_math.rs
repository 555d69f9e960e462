//! `f32` elementary functions computed the way numpy computes them on float32 arrays on x86-64
//! with AVX2/FMA3, so that decoding reproduces the Python reference pipelines bit for bit.
//!
//! The reference decodes (`../shared/tools/reference/models.py`) call `np.exp` on float32
//! arrays. On x86-64 CPUs with AVX2 and FMA3 (the machines the references were made on),
//! numpy does not call the C library's `expf`: it runs its own vectorised kernel
//! (numpy `_core/src/umath/loops_exponent_log.dispatch.c.src::simd_exp_FLOAT`, constants in
//! `npy_math_internal.h`), whose results differ from a correctly rounded `expf` by up to 2.5 ulp.
//! One ulp in `exp(t_w)` moves a YOLOX box edge by a few micro-pixels, enough to break a
//! bit-exact comparison, so the kernel is reproduced here lane by lane.
//!
//! `np.tanh` on float32 likewise runs numpy's own kernel (`loops_hyperbolic.dispatch.cpp.src::
//! simd_tanh_f32`, converted by numpy from Intel SVML `svml_z0_tanh_s_la.s`): 32 subintervals of
//! |x|, each with a degree-6 polynomial in `|x| - b` evaluated with FMAs. It differs from glibc's
//! `tanhf` on about half of FastestDet's raw offsets. Its coefficient table is numeric data from
//! numpy (BSD-3-Clause), reproduced below with that attribution.
//!
//! Hand-written because no crate reproduces numpy's float32 kernels.

/// `NPY_LOG2Ef`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `NPY_RINT_CVT_MAGICf` = 0x1.8p23: adding and subtracting it rounds to the nearest integer.
const RINT_MAGIC: f32 = 12_582_912.0;
// The constants are written as numpy's header writes them (decimal `f` literals, which both C
// and Rust round once, directly to f32).
/// `NPY_CODY_WAITE_LOGE_2_HIGHf` / `_LOWf`: -ln 2 split in two for the range reduction.
#[allow(clippy::excessive_precision)]
const CODY_WAITE_HIGH: f32 = -6.931_457_52e-1;
#[allow(clippy::excessive_precision)]
const CODY_WAITE_LOW: f32 = -1.428_606_77e-6;
/// `NPY_COEFF_P{0..5}_EXPf`, `NPY_COEFF_Q{0..2}_EXPf`: exp(y) ~ P(y) / Q(y) on [0, ln 2].
#[allow(clippy::excessive_precision)]
const P: [f32; 6] = [
    9.999_999_999_980_870_924_916e-1,
    7.257_664_613_233_124_478_488e-1,
    2.473_615_434_895_520_810_817e-1,
    5.114_512_081_637_298_353_406e-2,
    6.757_896_990_527_504_603_057e-3,
    5.082_762_527_590_693_718_096e-4,
];
#[allow(clippy::excessive_precision)]
const Q: [f32; 3] = [
    1.0,
    -2.742_335_390_411_667_452_936e-1,
    2.159_509_375_685_829_852_307e-2,
];
/// The kernel's saturation limits.
const XMAX: f32 = f32::from_bits(0x42b1_7218); // 88.72283935546875f
const XMIN: f32 = f32::from_bits(0xc2cf_f1b5); // -103.97208404541015625f

/// `np.exp(x)` for one float32 lane of numpy's AVX2/FMA3 kernel.
pub fn exp_f32(x_in: f32) -> f32 {
    if x_in.is_nan() {
        return f32::NAN;
    }
    if x_in >= XMAX {
        return f32::INFINITY;
    }
    if x_in <= XMIN {
        return 0.0;
    }
    let x = x_in;
    let quadrant = (x * LOG2E + RINT_MAGIC) - RINT_MAGIC;
    // simd_range_reduction: three FMAs, the third with c3 = 0.
    let mut y = quadrant.mul_add(CODY_WAITE_HIGH, x);
    y = quadrant.mul_add(CODY_WAITE_LOW, y);
    y = quadrant.mul_add(0.0, y);
    let mut num = P[5].mul_add(y, P[4]);
    num = num.mul_add(y, P[3]);
    num = num.mul_add(y, P[2]);
    num = num.mul_add(y, P[1]);
    num = num.mul_add(y, P[0]);
    let mut den = Q[2].mul_add(y, Q[1]);
    den = den.mul_add(y, Q[0]);
    scale_by_power_of_two(num / den, quadrant)
}

/// `fma_scalef_ps`: `poly * 2^quadrant` by adding `quadrant` to the exponent bits, with the
/// kernel's split for results that become subnormal (`quadrant <= -125`).
fn scale_by_power_of_two(poly: f32, quadrant: f32) -> f32 {
    const MIN_QUADRANT: f32 = -125.0;
    if quadrant <= MIN_QUADRANT {
        let diff = -(quadrant - MIN_QUADRANT);
        let two_power_diff = 1i32.wrapping_shl(diff as i32 as u32);
        let exponent = (MIN_QUADRANT as i32).wrapping_shl(23);
        let scaled = f32::from_bits((poly.to_bits() as i32).wrapping_add(exponent) as u32);
        scaled / two_power_diff as f32
    } else {
        let exponent = (quadrant as i32).wrapping_shl(23);
        f32::from_bits((poly.to_bits() as i32).wrapping_add(exponent) as u32)
    }
}

/// numpy's `lut32x8` for `simd_tanh_f32`: per subinterval, `b` (the interval start subtracted
/// from |x|) and the coefficients c0..c6, as f32 bit patterns (numpy, BSD-3-Clause; from Intel
/// SVML).
const TANH_LUT: [[u32; 32]; 8] = [
    // b
    [
        0x0, 0x3d700000, 0x3d900000, 0x3db00000, 0x3dd00000, 0x3df00000, 0x3e100000, 0x3e300000,
        0x3e500000, 0x3e700000, 0x3e900000, 0x3eb00000, 0x3ed00000, 0x3ef00000, 0x3f100000,
        0x3f300000, 0x3f500000, 0x3f700000, 0x3f900000, 0x3fb00000, 0x3fd00000, 0x3ff00000,
        0x40100000, 0x40300000, 0x40500000, 0x40700000, 0x40900000, 0x40b00000, 0x40d00000,
        0x40f00000, 0x41100000, 0x0,
    ],
    // c0
    [
        0x0, 0x3d6fb9c9, 0x3d8fc35f, 0x3daf9169, 0x3dcf49ab, 0x3deee849, 0x3e0f0ee8, 0x3e2e4984,
        0x3e4d2f8e, 0x3e6bb32e, 0x3e8c51cd, 0x3ea96163, 0x3ec543f1, 0x3edfd735, 0x3f028438,
        0x3f18abf0, 0x3f2bc480, 0x3f3bec1c, 0x3f4f2e5b, 0x3f613c53, 0x3f6ce37d, 0x3f743c4f,
        0x3f7a5feb, 0x3f7dea85, 0x3f7f3b3d, 0x3f7fb78c, 0x3f7fefd4, 0x3f7ffdd0, 0x3f7fffb4,
        0x3f7ffff6, 0x3f7fffff, 0x3f800000,
    ],
    // c1
    [
        0x3f800000, 0x3f7f1f84, 0x3f7ebd11, 0x3f7e1e5f, 0x3f7d609f, 0x3f7c842d, 0x3f7b00e5,
        0x3f789580, 0x3f75b8ad, 0x3f726fd9, 0x3f6cc59b, 0x3f63fb92, 0x3f59ff97, 0x3f4f11d7,
        0x3f3d7573, 0x3f24f360, 0x3f0cbfe7, 0x3eec1a69, 0x3eb0a801, 0x3e6753a2, 0x3e132f1a,
        0x3db7e7d3, 0x3d320845, 0x3c84d3d4, 0x3bc477b7, 0x3b10d3da, 0x3a01601e, 0x388c1a3b,
        0x3717b0da, 0x35a43bce, 0x338306c6, 0x0,
    ],
    // c2
    [
        0xb0343c7b, 0xbd6ee69d, 0xbd8f0da7, 0xbdae477d, 0xbdcd2a1f, 0xbdeba80d, 0xbe0c443b,
        0xbe293cf3, 0xbe44f282, 0xbe5f3651, 0xbe81c7c0, 0xbe96d7ca, 0xbea7fb8e, 0xbeb50e9e,
        0xbec12efe, 0xbec4be92, 0xbebce070, 0xbead510e, 0xbe8ef7d6, 0xbe4b8704, 0xbe083237,
        0xbdaf7449, 0xbd2e1ec4, 0xbc83bf06, 0xbbc3e0b5, 0xbb10aadc, 0xba0157db, 0xb88c18f2,
        0xb717b096, 0xb5a43bae, 0xb383012c, 0x0,
    ],
    // c3
    [
        0xbeaaaaa5, 0xbeab0612, 0xbea7f01f, 0xbea4e120, 0xbea387b7, 0xbea15962, 0xbe9d57f7,
        0xbe976b5a, 0xbe90230d, 0xbe880dff, 0xbe7479b3, 0xbe4c3d88, 0xbe212482, 0xbdeb8cba,
        0xbd5e78ad, 0x3c6b5e6e, 0x3d839143, 0x3dc21ee1, 0x3de347af, 0x3dcbec96, 0x3d99ef2d,
        0x3d542ea1, 0x3cdde701, 0x3c2cca67, 0x3b81cb27, 0x3ac073a1, 0x39ac3032, 0x383a94d9,
        0x36ca081d, 0x355abd4c, 0x332b3cb6, 0x0,
    ],
    // c4
    [
        0xb76dd6b9, 0xbe1c276d, 0x3c1dcf2f, 0x3dc1a78d, 0x3d96f985, 0x3da2b61b, 0x3dc13397,
        0x3dd2f670, 0x3df48a0a, 0x3e06c5a8, 0x3e1a3aba, 0x3e27c405, 0x3e2e78d0, 0x3e2c3e44,
        0x3e1d3097, 0x3df4a8f4, 0x3da38508, 0x3d31416a, 0x3b562657, 0xbcaeeac9, 0xbcce9419,
        0xbcaaeac4, 0xbc49e7d0, 0xbba71ddd, 0xbb003b0e, 0xba3f9a05, 0xb92c08a7, 0xb7ba9232,
        0xb64a0b0f, 0xb4dac169, 0xb2ab78ac, 0x0,
    ],
    // c5
    [
        0x3e0910e9, 0x43761143, 0x4165ecdc, 0xc190f756, 0xc08c097d, 0xc02ba813, 0xbf7f6bda,
        0x3f2b1dc0, 0x3ece105d, 0x3f426a94, 0xbadb0dc4, 0x3da43b17, 0xbd51ab88, 0xbcaea23d,
        0xbd3b6d8d, 0xbd6caaad, 0xbd795bed, 0xbd5fddda, 0xbd038f3b, 0xbc1cad63, 0x3abb4766,
        0x3b95f10b, 0x3b825873, 0x3afaea66, 0x3a49f878, 0x39996bf3, 0x388f3e6c, 0x371bb0e3,
        0x35a8a5e6, 0x34369b17, 0x322487b0, 0x0,
    ],
    // c6
    [
        0xbc0e2f66, 0x460bda12, 0x43d638ef, 0xc3e11c3e, 0xc2baa4e9, 0xc249da2d, 0xc1859b82,
        0x40dd5b57, 0x40494640, 0x40c730a8, 0xbf0f160e, 0x3e30e76f, 0xbea81387, 0xbdb26a1c,
        0xbd351e57, 0xbb4c01a0, 0x3c1d7bfb, 0x3c722cd1, 0x3c973f1c, 0x3c33a31b, 0x3b862ef4,
        0x3a27b3d0, 0xba3b5907, 0xba0efc22, 0xb97f9f0f, 0xb8c8af50, 0xb7bdddfb, 0xb64f2950,
        0xb4e085b1, 0xb3731dfa, 0xb15a1f04, 0x0,
    ],
];

/// `np.tanh(x)` for one float32 lane of numpy's FMA kernel (`simd_tanh_f32`).
pub fn tanh_f32(x: f32) -> f32 {
    if x.is_nan() {
        return f32::NAN;
    }
    let bits = x.to_bits() as i32;
    // The exponent and top mantissa bits select the subinterval; beyond 0x7f000000 (|x| huge or
    // infinite) the result is +-1.
    let exponent_bits = bits & 0x7fe0_0000;
    let sign = x.to_bits() & 0x8000_0000;
    let r = if exponent_bits <= 0x7f00_0000 {
        let index = ((exponent_bits - 0x3d40_0000).clamp(0, 0x03e0_0000) as u32 >> 21) as usize;
        let c = |row: usize| f32::from_bits(TANH_LUT[row][index]);
        let y = x.abs() - c(0);
        let mut r = c(7).mul_add(y, c(6));
        r = r.mul_add(y, c(5));
        r = r.mul_add(y, c(4));
        r = r.mul_add(y, c(3));
        r = r.mul_add(y, c(2));
        r.mul_add(y, c(1))
    } else {
        1.0
    };
    f32::from_bits(r.to_bits() | sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_correctly_rounded_exp_within_the_kernels_error() {
        // numpy documents a maximum error of 2.52 ulp for this kernel.
        let mut worst = 0i64;
        let mut x = -20.0f32;
        while x < 20.0 {
            let want = (x as f64).exp() as f32;
            let got = exp_f32(x);
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            worst = worst.max(ulps);
            x += 0.001_37;
        }
        assert!(worst <= 3, "worst {worst} ulp");
    }

    #[test]
    fn tanh_agrees_with_the_correctly_rounded_tanh_closely() {
        let mut worst = 0i64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = (x as f64).tanh() as f32;
            let got = tanh_f32(x);
            worst = worst.max((got.to_bits() as i64 - want.to_bits() as i64).abs());
            x += 0.000_97;
        }
        assert!(worst <= 2, "worst {worst} ulp");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(-100.0), -1.0);
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn special_values() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    /// Bit patterns `np.exp` / `np.tanh` gave for these float32 inputs with numpy 2.4.6 on this
    /// kind of machine (x86-64, AVX2/FMA3), including subnormal exp results.
    const EXP_BITS: [u32; 10] = [
        27, 584744, 7123644, 1, 1131720994, 1061004867, 1079767613, 970808449, 1572935978,
        816566744,
    ];
    const TANH_BITS: [u32; 10] = [
        3212781204, 3206199257, 1008981412, 1050965540, 1063761867, 1065251935, 1065348159,
        1065353010, 1065353215, 3212836863,
    ];

    #[test]
    fn matches_numpy_bit_for_bit() {
        let xs = [
            -100.0f32, -90.0, -87.5, -103.0, 5.5, -0.3, 1.2345, -7.77, 42.0, -20.5,
        ];
        let want = EXP_BITS;
        for (x, w) in xs.iter().zip(want) {
            assert_eq!(exp_f32(*x).to_bits(), w, "exp({x})");
        }
        let xs = [-3.2f32, -0.7, 0.01, 0.333, 1.5, 2.9, 4.4, 6.0, 8.9, -9.5];
        for (x, w) in xs.iter().zip(TANH_BITS) {
            assert_eq!(tanh_f32(*x).to_bits(), w, "tanh({x})");
        }
    }
}
