//! Which images each step sees, and which are flipped: the reference's samplers with a
//! documented generator, so that tools/train/python_train_bench.py (which ports this file) feeds
//! torchvision exactly the batches detbench feeds libtorch.
//!
//! * Order: a Fisher-Yates shuffle per epoch driven by SplitMix64 (seed, epoch), standing in for
//!   `RandomSampler`'s `torch.randperm` (the reference does not fix its generator either).
//! * Flips: one draw per image position from the same generator, after the shuffle:
//!   `RandomHorizontalFlip(0.5)`'s `torch.rand(1) < p`.
//! * Data parallelism: `DistributedSampler` (shuffle=True, drop_last=False): the permutation is
//!   padded by repeating its head to a multiple of `world_size`, rank `r` takes positions
//!   `r, r + world_size, ...`.
//! * Batches: `GroupedBatchSampler` with `create_aspect_ratio_groups(k)` (group_by_aspect_ratio.py)
//!   when `k >= 0`, else `BatchSampler(drop_last=True)`; an epoch has `len(sampler) // batch`
//!   batches either way.

use std::collections::HashMap;

/// SplitMix64 (Steele, Lea and Flood 2014), as in `java.util.SplittableRandom`.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The generator of one epoch.
    pub fn for_epoch(seed: u64, epoch: usize) -> Self {
        SplitMix64(seed ^ (epoch as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One image of a batch: its index in the training set and whether it is flipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pick {
    pub index: usize,
    pub flip: bool,
}

/// The epoch's shuffled order with flips, over all ranks (before sharding).
pub fn epoch_order(n: usize, seed: u64, epoch: usize, hflip_prob: f64) -> Vec<Pick> {
    let mut rng = SplitMix64::for_epoch(seed, epoch);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
        .into_iter()
        .map(|index| Pick {
            index,
            flip: rng.next_f64() < hflip_prob,
        })
        .collect()
}

/// `DistributedSampler`'s share of `order` for `rank` (padding by repeating the head).
pub fn shard(order: &[Pick], rank: usize, world_size: usize) -> Vec<Pick> {
    if world_size <= 1 || order.is_empty() {
        return order.to_vec();
    }
    let total = order.len().div_ceil(world_size) * world_size;
    let padded: Vec<Pick> = order.iter().copied().cycle().take(total).collect();
    padded.into_iter().skip(rank).step_by(world_size).collect()
}

/// `create_aspect_ratio_groups(dataset, k)`: bins `2 ** linspace(-1, 1, 2k + 1)` (or `[1.0]`
/// for k = 0), group = `bisect_right(bins, ratio)`.
pub fn aspect_ratio_groups(ratios: &[f64], k: usize) -> Vec<usize> {
    let bins: Vec<f64> = if k > 0 {
        let n = 2 * k + 1;
        // numpy.linspace(-1, 1, n): start + i * step, the last point exactly `stop`.
        let step = 2.0 / (n - 1) as f64;
        (0..n)
            .map(|i| {
                let x = if i == n - 1 {
                    1.0
                } else {
                    -1.0 + i as f64 * step
                };
                2f64.powf(x)
            })
            .collect()
    } else {
        vec![1.0]
    };
    ratios
        .iter()
        .map(|&r| bins.partition_point(|&b| b <= r))
        .collect()
}

/// The batches of one epoch: `GroupedBatchSampler` when `groups` is given, else
/// `BatchSampler(drop_last=True)`.
pub fn batches(picks: &[Pick], groups: Option<&[usize]>, batch: usize) -> Vec<Vec<Pick>> {
    let expected = picks.len() / batch;
    let Some(groups) = groups else {
        return picks.chunks_exact(batch).map(<[Pick]>::to_vec).collect();
    };
    // buffer_per_group is a defaultdict: its key order is first insertion, and a group whose
    // buffer was yielded (del) is inserted again at the end by the next access.
    let mut buffers: Vec<(usize, Vec<Pick>)> = Vec::new();
    let mut seen: HashMap<usize, Vec<Pick>> = HashMap::new();
    let mut out = Vec::with_capacity(expected);
    for &pick in picks {
        let g = groups[pick.index];
        seen.entry(g).or_default().push(pick);
        let slot = match buffers.iter().position(|(id, _)| *id == g) {
            Some(i) => i,
            None => {
                buffers.push((g, Vec::new()));
                buffers.len() - 1
            }
        };
        buffers[slot].1.push(pick);
        if buffers[slot].1.len() == batch {
            let (_, full) = buffers.remove(slot);
            out.push(full);
            // `assert len(buffer_per_group[group_id]) < self.batch_size` re-inserts the key.
            buffers.push((g, Vec::new()));
        }
    }
    let mut remaining = expected.saturating_sub(out.len());
    if remaining > 0 {
        // sorted(buffer_per_group.items(), key=len, reverse=True): stable, largest first.
        let mut order: Vec<usize> = (0..buffers.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(buffers[i].1.len()));
        for i in order {
            let (g, buffer) = &buffers[i];
            let mut full = buffer.clone();
            let need = batch - full.len();
            // _repeat_to_at_least(samples_per_group[group_id], remaining)[:remaining]
            full.extend(seen[g].iter().copied().cycle().take(need));
            out.push(full);
            remaining -= 1;
            if remaining == 0 {
                break;
            }
        }
    }
    out
}

/// The batches rank `rank` runs in `epoch`.
#[allow(clippy::too_many_arguments)]
pub fn epoch_batches(
    n: usize,
    seed: u64,
    epoch: usize,
    hflip_prob: f64,
    rank: usize,
    world_size: usize,
    groups: Option<&[usize]>,
    batch: usize,
) -> Vec<Vec<Pick>> {
    let order = epoch_order(n, seed, epoch, hflip_prob);
    batches(&shard(&order, rank, world_size), groups, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_published_sequence() {
        // Reference values of SplitMix64 seeded with 0 (as in the xoshiro authors' splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn the_order_is_a_permutation_and_shards_cover_it() {
        let order = epoch_order(11, 7, 0, 0.5);
        let mut idx: Vec<usize> = order.iter().map(|p| p.index).collect();
        idx.sort();
        assert_eq!(idx, (0..11).collect::<Vec<_>>());
        assert_ne!(epoch_order(11, 7, 1, 0.5), order);
        let a = shard(&order, 0, 2);
        let b = shard(&order, 1, 2);
        assert_eq!((a.len(), b.len()), (6, 6));
        // padding repeats the head: position 11 is position 0
        assert_eq!(b[5], order[0]);
        let mut all: Vec<usize> = a.iter().chain(&b).map(|p| p.index).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 11);
    }

    #[test]
    fn groups_use_the_reference_bins() {
        // k = 3: bins 2^(-1, -2/3, ..., 1); a 4:3 image falls after 2^(1/3) = 1.26
        let g = aspect_ratio_groups(&[640.0 / 480.0, 480.0 / 640.0, 1.0, 3.0, 0.2], 3);
        assert_eq!(g, vec![5, 2, 4, 7, 0]);
        assert_eq!(aspect_ratio_groups(&[0.5, 1.0, 2.0], 0), vec![0, 1, 1]);
    }

    #[test]
    fn grouped_batches_keep_groups_together_then_fill_from_the_largest() {
        let picks: Vec<Pick> = (0..7).map(|index| Pick { index, flip: false }).collect();
        let groups = [0, 1, 0, 1, 1, 0, 1];
        let out = batches(&picks, Some(&groups), 2);
        let ids: Vec<Vec<usize>> = out
            .iter()
            .map(|b| b.iter().map(|p| p.index).collect())
            .collect();
        // 0:[0,2] yields, 1:[1,3] yields, 1:[4,6] yields; 7 // 2 = 3 batches, all full groups.
        assert_eq!(ids, vec![vec![0, 2], vec![1, 3], vec![4, 6]]);
        let groups = [0, 1, 2, 0, 1, 2, 2];
        let out = batches(&picks, Some(&groups), 3);
        let ids: Vec<Vec<usize>> = out
            .iter()
            .map(|b| b.iter().map(|p| p.index).collect())
            .collect();
        // 2:[2,5,6] yields; the rest: buffers 0:[0,3], 1:[1,4] (equal, insertion order), 2:[]
        assert_eq!(ids, vec![vec![2, 5, 6], vec![0, 3, 0]]);
        assert_eq!(batches(&picks, None, 3).len(), 2);
    }
}
