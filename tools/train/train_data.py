"""The data side of detbench-train in Python, for the peer benchmark (python_train_bench.py).

A line-for-line port of crates/train/src/sampler.rs (SplitMix64 shuffle and flips,
DistributedSampler sharding, GroupedBatchSampler) and of the dataset the reference builds
(references/detection/coco_utils.py: CocoDetection order, _coco_remove_images_without_annotations,
ConvertCocoPolysToMask; transforms.py: RandomHorizontalFlip, ToDtype), so that both sides see the
same batches with the same flips.
"""
import math

import numpy as np

MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK64

    @classmethod
    def for_epoch(cls, seed, epoch):
        return cls(seed ^ (((epoch + 1) * 0xD1B54A32D192ED03) & MASK64))

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def next_f64(self):
        return (self.next_u64() >> 11) / float(1 << 53)


def epoch_order(n, seed, epoch, hflip_prob):
    rng = SplitMix64.for_epoch(seed, epoch)
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.next_u64() % (i + 1)
        order[i], order[j] = order[j], order[i]
    return [(index, rng.next_f64() < hflip_prob) for index in order]


def shard(order, rank, world_size):
    if world_size <= 1 or not order:
        return list(order)
    total = math.ceil(len(order) / world_size) * world_size
    padded = (order * math.ceil(total / len(order)))[:total]
    return padded[rank:total:world_size]


def aspect_ratio_groups(ratios, k):
    bins = (2 ** np.linspace(-1, 1, 2 * k + 1)).tolist() if k > 0 else [1.0]
    import bisect
    return [bisect.bisect_right(sorted(bins), r) for r in ratios]


def batches(picks, groups, batch):
    expected = len(picks) // batch
    if groups is None:
        return [picks[i:i + batch] for i in range(0, expected * batch, batch)]
    from collections import defaultdict
    buffer_per_group = defaultdict(list)
    samples_per_group = defaultdict(list)
    out = []
    for pick in picks:
        g = groups[pick[0]]
        buffer_per_group[g].append(pick)
        samples_per_group[g].append(pick)
        if len(buffer_per_group[g]) == batch:
            out.append(buffer_per_group[g])
            del buffer_per_group[g]
        assert len(buffer_per_group[g]) < batch
    remaining = expected - len(out)
    if remaining > 0:
        for g, _ in sorted(buffer_per_group.items(), key=lambda x: len(x[1]), reverse=True):
            need = batch - len(buffer_per_group[g])
            pool = samples_per_group[g] * math.ceil(need / len(samples_per_group[g]))
            buffer_per_group[g].extend(pool[:need])
            out.append(buffer_per_group[g])
            remaining -= 1
            if remaining == 0:
                break
    return out


def epoch_batches(n, seed, epoch, hflip_prob, rank, world_size, groups, batch):
    return batches(shard(epoch_order(n, seed, epoch, hflip_prob), rank, world_size), groups, batch)


class TrainSet:
    """CocoDetection + _coco_remove_images_without_annotations + ConvertCocoPolysToMask."""

    def __init__(self, annotations, images, with_masks, with_keypoints, limit=None):
        from pycocotools.coco import COCO
        self.coco = COCO(annotations)
        self.images = images
        self.with_masks = with_masks
        self.with_keypoints = with_keypoints
        ids = []
        for img_id in sorted(self.coco.imgs.keys()):
            anno = self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id, iscrowd=None))
            if _has_valid_annotation(anno):
                ids.append(img_id)
        self.ids = ids[:limit] if limit else ids

    def __len__(self):
        return len(self.ids)

    def aspect_ratios(self):
        return [float(self.coco.imgs[i]["width"]) / float(self.coco.imgs[i]["height"]) for i in self.ids]

    def __getitem__(self, pick):
        import torch
        from PIL import Image
        index, flip = pick
        img_id = self.ids[index]
        info = self.coco.imgs[img_id]
        image = Image.open(f"{self.images}/{info['file_name']}").convert("RGB")
        target = self._target(img_id, image.size)
        image = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()
        if flip:  # transforms.RandomHorizontalFlip
            width = image.shape[-1]
            image = image.flip(-1)
            target["boxes"][:, [0, 2]] = width - target["boxes"][:, [2, 0]]
            if "masks" in target:
                target["masks"] = target["masks"].flip(-1)
            if "keypoints" in target:
                target["keypoints"] = _flip_keypoints(target["keypoints"], width)
        return image.to(torch.float32) / 255.0, target

    def _target(self, img_id, size):
        import torch
        from pycocotools import mask as coco_mask
        w, h = size
        anno = [o for o in self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id)) if o["iscrowd"] == 0]
        boxes = torch.as_tensor([o["bbox"] for o in anno], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        boxes[:, 0::2].clamp_(min=0, max=w)
        boxes[:, 1::2].clamp_(min=0, max=h)
        labels = torch.tensor([o["category_id"] for o in anno], dtype=torch.int64)
        keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
        target = {"boxes": boxes[keep], "labels": labels[keep]}
        if self.with_masks:
            masks = []
            for o in anno:
                m = coco_mask.decode(coco_mask.frPyObjects(o["segmentation"], h, w))
                if len(m.shape) < 3:
                    m = m[..., None]
                masks.append(torch.as_tensor(m, dtype=torch.uint8).any(dim=2))
            masks = torch.stack(masks) if masks else torch.zeros((0, h, w), dtype=torch.uint8)
            target["masks"] = masks[keep]
        if self.with_keypoints and anno and "keypoints" in anno[0]:
            kp = torch.as_tensor([o["keypoints"] for o in anno], dtype=torch.float32)
            target["keypoints"] = kp.view(kp.shape[0], -1, 3)[keep]
        return target


def _flip_keypoints(kps, width):
    flip_inds = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    flipped = kps[:, flip_inds]
    flipped[..., 0] = width - flipped[..., 0]
    flipped[flipped[..., 2] == 0] = 0
    return flipped


def _has_valid_annotation(anno):
    if len(anno) == 0:
        return False
    if all(any(o <= 1 for o in obj["bbox"][2:]) for obj in anno):
        return False
    if "keypoints" not in anno[0]:
        return True
    return sum(sum(1 for v in a["keypoints"][2::3] if v > 0) for a in anno) >= 10
