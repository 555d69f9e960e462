//! COCO run-length encoding (pycocotools `maskApi.c rleEncode`: alternating run lengths over the
//! column-major mask, starting with a run of zeros) straight from the engine's bit planes: one
//! `u32` word holds 32 rows of one column (bit k = row 32 * word + k). Whole words of zeros or
//! ones extend the current run without visiting their bits, so a mask costs about its box's area
//! rather than the image's. Tested against hotcoco's `mask::encode`.

use detbench_eval::Rle;

/// Encodes one mask: `bits` is `width * words` words, `words = ceil(height / 32)`.
pub fn encode_bits(bits: &[u32], height: usize, width: usize) -> Rle {
    let words = height.div_ceil(32);
    assert_eq!(
        bits.len(),
        width * words,
        "mask bit planes of the wrong size"
    );
    let mut counts: Vec<u32> = Vec::new();
    let mut value = 0u32;
    let mut run = 0u32;
    for column in bits.chunks_exact(words.max(1)).take(width) {
        for (w, &word) in column.iter().enumerate() {
            let rows = (height - 32 * w).min(32);
            let full = if rows == 32 {
                u32::MAX
            } else {
                (1u32 << rows) - 1
            };
            let word = word & full;
            if (value == 0 && word == 0) || (value == 1 && word == full) {
                run += rows as u32;
                continue;
            }
            for k in 0..rows {
                let bit = (word >> k) & 1;
                if bit != value {
                    counts.push(run);
                    value = bit;
                    run = 0;
                }
                run += 1;
            }
        }
    }
    counts.push(run);
    Rle {
        height: height as u32,
        width: width as u32,
        counts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column-major bytes -> bit planes.
    fn to_bits(mask: &[u8], height: usize, width: usize) -> Vec<u32> {
        let words = height.div_ceil(32);
        let mut bits = vec![0u32; width * words];
        for x in 0..width {
            for y in 0..height {
                if mask[x * height + y] != 0 {
                    bits[x * words + y / 32] |= 1 << (y % 32);
                }
            }
        }
        bits
    }

    fn check(mask: &[u8], height: usize, width: usize) {
        let ours = encode_bits(&to_bits(mask, height, width), height, width);
        let reference = hotcoco::mask::encode(mask, height as u32, width as u32).unwrap();
        assert_eq!(ours.counts, reference.counts, "{height}x{width}");
        assert_eq!((ours.height, ours.width), (reference.h, reference.w));
    }

    #[test]
    fn equals_hotcoco_on_masks_of_every_shape() {
        // Deterministic pseudo-random masks: blobs, stripes, full and empty, odd heights that
        // leave partial words, runs that cross column boundaries.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for &(h, w) in &[
            (1, 1),
            (31, 3),
            (32, 2),
            (33, 5),
            (64, 4),
            (70, 9),
            (100, 7),
        ] {
            let empty = vec![0u8; h * w];
            check(&empty, h, w);
            check(&vec![1u8; h * w], h, w);
            for _ in 0..20 {
                let (cy, cx) = ((next() % h as u64) as i64, (next() % w as u64) as i64);
                let r = (next() % 40) as i64;
                let noisy = next() % 3 == 0;
                let mask: Vec<u8> = (0..w * h)
                    .map(|i| {
                        let (x, y) = ((i / h) as i64, (i % h) as i64);
                        let inside = (x - cx).pow(2) + (y - cy).pow(2) <= r * r;
                        u8::from(inside ^ (noisy && next() % 7 == 0))
                    })
                    .collect();
                check(&mask, h, w);
            }
        }
    }
}
