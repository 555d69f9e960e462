// detbench native engine: box arithmetic shared by the detectors, as torchvision's
// models/detection/_utils.py (BoxCoder), ops/boxes.py (clip, remove_small_boxes, batched_nms),
// ops/poolers.py (LevelMapper) and anchor_utils.py (AnchorGenerator), written for fixed shapes:
// where torchvision drops elements, these keep them and carry a validity mask.
#pragma once

#include "common.h"

namespace dn {

struct BoxCoder {
  double wx = 1, wy = 1, ww = 1, wh = 1;
  double clip = 0;  // bbox_xform_clip, log(1000 / 16)
};

// BoxCoder.decode_single: rel_codes [M, 4k], boxes [M, 4] -> [M, 4k], in rel_codes' dtype.
// `half_one`: the 0-dim tensor holding 0.5 in the codes' dtype, made before any graph capture
// (decode_single builds it with torch.tensor on the device).
at::Tensor decode_boxes(const BoxCoder& c, const at::Tensor& rel_codes, const at::Tensor& boxes,
                        const at::Tensor& half_one);

// clip_boxes_to_image with per-image limits: boxes [N, ..., 4], limits [N, 4] (w, h, w, h) in
// the boxes' dtype (torchvision's Python ints, exact in both fp32 and fp16).
at::Tensor clip_boxes(const at::Tensor& boxes, const at::Tensor& limits);

// remove_small_boxes as a mask: both sides >= min_size.
at::Tensor boxes_not_small(const at::Tensor& boxes, double min_size);

// batched_nms over candidate lists with a validity mask, per image:
//   boxes [N, L, 4], scores [N, L], idxs [N, L] int64 (class or level), valid [N, L] bool.
// Candidates are sorted by decreasing score (stable), at most `capacity` of them are considered.
// As torchvision, when the candidate count * 4 is at most `vanilla_above` the IoU is computed on
// boxes offset per class (the coordinate trick: in fp16 the offset boxes of different classes
// can overlap, and then suppress each other as in torchvision), otherwise on the boxes as they
// are, class by class (_batched_nms_vanilla).
struct NmsResult {
  at::Tensor index;    // [N, max_keep] int64 into the candidate list, -1 after the last kept
  at::Tensor count;    // [N] int64 kept
  at::Tensor inexact;  // [N] bool: more candidates than `capacity` and fewer than max_keep kept
};
NmsResult batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                      const at::Tensor& valid, double iou_threshold, int64_t max_keep,
                      int64_t capacity, int64_t vanilla_above, bool on_cpu);

// torchvision's batched_nms size threshold (numel of the boxes) above which it runs one NMS per
// class: 4,000 on the CPU, 100,000 elsewhere (ops/boxes.py, torchvision 0.26).
inline int64_t vanilla_above(const Settings& s) { return is_cuda(s) ? 100000 : 4000; }

// expand_boxes (roi_heads.py, Mask R-CNN's pasting) then .to(torch.int64): boxes [..., 4].
at::Tensor expand_boxes_int(const at::Tensor& boxes, double scale);

// Gathers rows of x [N, L, ...] at index [N, K] (clamped at 0) along dim 1.
at::Tensor gather_rows(const at::Tensor& x, const at::Tensor& index);

// LevelMapper (canonical scale 224, level 4, eps 1e-6): the pyramid level of each box, 0-based.
at::Tensor map_levels(const at::Tensor& boxes, int64_t k_min, int64_t k_max);

// MultiScaleRoIAlign's scales for a batch: scale = 2^round(log2(feature / image)) from the first
// (height) dimension, image = the largest resized height of the batch (_infer_scale).
std::vector<double> infer_scales(const std::vector<int64_t>& feature_heights, int64_t max_height);

// AnchorGenerator.grid_anchors for one batch shape: cell_anchors (float32, as stored) per level,
// grid sizes from the feature maps, strides = image size // grid size. [sum(HWA), 4] in `dtype`.
at::Tensor grid_anchors(const std::vector<at::Tensor>& cell_anchors,
                        const std::vector<at::Tensor>& features, int64_t image_h, int64_t image_w,
                        at::ScalarType dtype);

}  // namespace dn
