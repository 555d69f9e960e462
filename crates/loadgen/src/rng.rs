//! LoadGen's random numbers, bit for bit.
//!
//! LoadGen draws every random choice (the sample set, the sample order, the Server arrival
//! times, accuracy-log sampling) from `std::mt19937` — the 32-bit Mersenne Twister, not
//! `mt19937_64` — through libstdc++'s `uniform_int_distribution`, `exponential_distribution`,
//! `uniform_real_distribution` and `std::shuffle`. The C++ standard fixes the engine's output but
//! not the distributions' algorithms, so the same seed gives the same schedule only with the same
//! standard library. The `mlcommons-loadgen==6.0.17` wheel was built with GCC 14.2
//! (`readelf -p .comment`), so this module ports libstdc++'s algorithms (`bits/random.h`,
//! `bits/random.tcc`, `bits/uniform_int_dist.h`, `bits/stl_algo.h`) rather than using the `rand`
//! crate, whose distributions draw differently. The goldens in `tests/data/` (LoadGen's
//! `loaded_qsl_set`, `generated_query_duration` and accuracy-log sample order) prove the match.

/// `std::mt19937`: the 32-bit Mersenne Twister with the standard's parameters.
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

const N: usize = 624;
const M: usize = 397;

impl Mt19937 {
    /// `std::mt19937(seed)`. LoadGen passes its `uint64_t` seeds straight to the constructor,
    /// whose `result_type` is 64 bits wide on LP64; libstdc++'s `seed()` keeps the seed modulo
    /// 2^32 (`__detail::__mod<_UIntType, 2^w>`), hence the truncation.
    pub fn new(seed: u64) -> Self {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: N }
    }

    /// The next 32-bit output (`operator()`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % N] & 0x7fff_ffff);
            let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
            self.state[i] = self.state[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }
}

/// The engine's range, `max() - min()`.
const URNG_RANGE: u64 = u32::MAX as u64;

/// `std::uniform_int_distribution<I>(a, b)(g)` for any integer type of at most 64 bits, as
/// libstdc++ computes it in `uniform_int_dist.h`: with a 32-bit engine, ranges below 2^32 use
/// Lemire's nearly-divisionless method (`_S_nd` with 64-bit products), wider ones the upscaling
/// loop. `a <= b` is the caller's contract (LoadGen never draws from an empty range).
pub fn uniform_int(g: &mut Mt19937, a: u64, b: u64) -> u64 {
    let urange = b.wrapping_sub(a);
    let ret = if URNG_RANGE > urange {
        lemire(g, (urange + 1) as u32)
    } else if URNG_RANGE < urange {
        loop {
            let erng = URNG_RANGE + 1;
            let high = uniform_int(g, 0, urange / erng);
            let tmp = erng.wrapping_mul(high);
            let ret = tmp.wrapping_add(u64::from(g.next_u32()));
            if !(ret > urange || ret < tmp) {
                break ret;
            }
        }
    } else {
        u64::from(g.next_u32())
    };
    ret.wrapping_add(a)
}

/// libstdc++'s `_S_nd<uint64_t>(g, range)`.
fn lemire(g: &mut Mt19937, range: u32) -> u64 {
    let mut product = u64::from(g.next_u32()) * u64::from(range);
    let mut low = product as u32;
    if low < range {
        let threshold = range.wrapping_neg() % range;
        while low < threshold {
            product = u64::from(g.next_u32()) * u64::from(range);
            low = product as u32;
        }
    }
    product >> 32
}

/// `std::generate_canonical<double, 53>(g)` (libstdc++ `random.tcc`): two 32-bit draws summed
/// in `double`, divided by 2^64, clamped below 1.
pub fn generate_canonical(g: &mut Mt19937) -> f64 {
    let r = 4_294_967_296.0f64; // max() - min() + 1
    let mut sum = 0.0f64;
    let mut tmp = 1.0f64;
    for _ in 0..2 {
        sum += f64::from(g.next_u32()) * tmp;
        tmp *= r;
    }
    let ret = sum / tmp;
    if ret >= 1.0 {
        // std::nextafter(1.0, 0.0)
        1.0 - f64::EPSILON / 2.0
    } else {
        ret
    }
}

/// `std::uniform_real_distribution<double>(a, b)(g)`: `canonical * (b - a) + a`.
pub fn uniform_real(g: &mut Mt19937, a: f64, b: f64) -> f64 {
    generate_canonical(g) * (b - a) + a
}

/// `std::exponential_distribution<double>(lambda)(g)`: `-log(1 - canonical) / lambda`.
pub fn exponential(g: &mut Mt19937, lambda: f64) -> f64 {
    -(1.0 - generate_canonical(g)).ln() / lambda
}

/// `std::shuffle(first, last, g)` as libstdc++ implements it (`stl_algo.h`): when the squared
/// length fits the engine's range, two swap positions come from one draw
/// (`__gen_two_uniform_ints`); otherwise one draw per element.
pub fn shuffle<T>(v: &mut [T], g: &mut Mt19937) {
    let len = v.len() as u64;
    if len == 0 {
        return;
    }
    if URNG_RANGE / len >= len {
        let mut i = 1usize;
        if len.is_multiple_of(2) {
            let j = uniform_int(g, 0, 1) as usize;
            v.swap(i, j);
            i += 1;
        }
        while i < v.len() {
            let swap_range = i as u64 + 1;
            let (b0, b1) = (swap_range, swap_range + 1);
            let x = uniform_int(g, 0, b0 * b1 - 1);
            v.swap(i, (x / b1) as usize);
            v.swap(i + 1, (x % b1) as usize);
            i += 2;
        }
        return;
    }
    for i in 1..v.len() {
        let j = uniform_int(g, 0, i as u64) as usize;
        v.swap(i, j);
    }
}

/// Nanoseconds from a `std::chrono::duration<double>` of `seconds`, as
/// `duration_cast<nanoseconds>` computes it: multiply in `double`, truncate toward zero.
pub fn seconds_to_ns_trunc(seconds: f64) -> i64 {
    (seconds * 1e9) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_standard() {
        // [rand.predef]: the 10000th consecutive invocation of a default-constructed
        // std::mt19937 (seed 5489) produces 4123659995.
        let mut g = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = g.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn seeds_are_taken_modulo_2_pow_32() {
        let mut a = Mt19937::new(0x1_0000_0005);
        let mut b = Mt19937::new(5);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut g = Mt19937::new(7);
        for len in [0usize, 1, 2, 3, 10, 101] {
            let mut v: Vec<usize> = (0..len).collect();
            shuffle(&mut v, &mut g);
            let mut sorted = v.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..len).collect::<Vec<_>>());
        }
    }

    #[test]
    fn uniform_int_stays_in_range() {
        let mut g = Mt19937::new(1);
        for _ in 0..1000 {
            let x = uniform_int(&mut g, 3, 9);
            assert!((3..=9).contains(&x));
        }
        // Wider than the engine: the upscaling branch.
        for _ in 0..100 {
            let x = uniform_int(&mut g, 0, (1u64 << 40) - 1);
            assert!(x < 1u64 << 40);
        }
    }
}
