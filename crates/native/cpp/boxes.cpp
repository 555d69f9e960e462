// detbench native engine: box arithmetic (see boxes.h). Each function runs the ATen operations
// of its torchvision counterpart in the same order and dtypes, so fp32 and fp16 results match
// torchvision's on the same device; only the data-dependent selections are replaced by masks.
#include "boxes.h"

#include <cmath>
#include <limits>

#include "ops.h"

namespace dn {

at::Tensor decode_boxes(const BoxCoder& c, const at::Tensor& rel_codes, const at::Tensor& boxes_in,
                        const at::Tensor& half_one) {
  using at::indexing::None;
  using at::indexing::Slice;
  auto boxes = boxes_in.to(rel_codes.scalar_type());
  auto widths = boxes.select(1, 2) - boxes.select(1, 0);
  auto heights = boxes.select(1, 3) - boxes.select(1, 1);
  auto ctr_x = boxes.select(1, 0) + widths * 0.5;
  auto ctr_y = boxes.select(1, 1) + heights * 0.5;
  auto dx = rel_codes.index({Slice(), Slice(0, None, 4)}) / c.wx;
  auto dy = rel_codes.index({Slice(), Slice(1, None, 4)}) / c.wy;
  auto dw = rel_codes.index({Slice(), Slice(2, None, 4)}) / c.ww;
  auto dh = rel_codes.index({Slice(), Slice(3, None, 4)}) / c.wh;
  dw = at::clamp_max(dw, c.clip);
  dh = at::clamp_max(dh, c.clip);
  auto pred_ctr_x = dx * widths.unsqueeze(1) + ctr_x.unsqueeze(1);
  auto pred_ctr_y = dy * heights.unsqueeze(1) + ctr_y.unsqueeze(1);
  auto pred_w = at::exp(dw) * widths.unsqueeze(1);
  auto pred_h = at::exp(dh) * heights.unsqueeze(1);
  auto c_to_c_h = half_one * pred_h;
  auto c_to_c_w = half_one * pred_w;
  return at::stack({pred_ctr_x - c_to_c_w, pred_ctr_y - c_to_c_h, pred_ctr_x + c_to_c_w,
                    pred_ctr_y + c_to_c_h},
                   2)
      .flatten(1);
}

at::Tensor clip_boxes(const at::Tensor& boxes, const at::Tensor& limits) {
  // clamp(min=0, max=limit) == min(max(x, 0), limit), coordinate by coordinate.
  std::vector<int64_t> shape(boxes.dim(), 1);
  shape[0] = limits.size(0);
  shape.back() = 4;
  return at::minimum(at::clamp_min(boxes, 0), limits.view(shape));
}

at::Tensor boxes_not_small(const at::Tensor& boxes, double min_size) {
  auto ws = boxes.select(-1, 2) - boxes.select(-1, 0);
  auto hs = boxes.select(-1, 3) - boxes.select(-1, 1);
  return at::logical_and(at::ge(ws, min_size), at::ge(hs, min_size));
}

at::Tensor expand_boxes_int(const at::Tensor& boxes, double scale) {
  auto x0 = boxes.select(-1, 0), y0 = boxes.select(-1, 1);
  auto x1 = boxes.select(-1, 2), y1 = boxes.select(-1, 3);
  auto w_half = (x1 - x0) * 0.5;
  auto h_half = (y1 - y0) * 0.5;
  auto x_c = (x1 + x0) * 0.5;
  auto y_c = (y1 + y0) * 0.5;
  w_half = w_half * scale;
  h_half = h_half * scale;
  return at::stack({x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half}, -1).to(at::kLong);
}

at::Tensor gather_rows(const at::Tensor& x, const at::Tensor& index) {
  auto idx = index.clamp_min(0);
  if (x.dim() == 2) return x.gather(1, idx);
  std::vector<int64_t> shape = x.sizes().vec();
  shape[1] = idx.size(1);
  auto view = idx;
  for (int64_t d = 2; d < x.dim(); d++) view = view.unsqueeze(-1);
  return x.gather(1, view.expand(shape));
}

NmsResult batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                      const at::Tensor& valid, double iou_threshold, int64_t max_keep,
                      int64_t capacity, int64_t vanilla_above, bool on_cpu) {
  const double inf = std::numeric_limits<double>::infinity();
  const int64_t length = scores.size(1);
  const int64_t considered = std::min(length, capacity);
  auto count = valid.sum(1);
  auto invalid = valid.logical_not();
  // torchvision sorts the surviving candidates by score (nms: scores.sort(descending=True));
  // invalid ones sort last here and are never read past `count`.
  auto order = std::get<1>(at::sort(scores.masked_fill(invalid, -inf), /*stable=*/true, 1,
                                    /*descending=*/true))
                   .narrow(1, 0, considered);
  // _batched_nms_coordinate_trick: offsets = idxs * (boxes.max() + 1) over the candidates.
  auto max_coordinate = boxes.masked_fill(invalid.unsqueeze(-1), -inf).amax({1, 2});
  auto offsets = idxs.to(boxes.scalar_type()) * (max_coordinate + 1).unsqueeze(1);
  auto use_trick = at::le(count * 4, vanilla_above).unsqueeze(1);
  auto boxes_for_nms =
      at::where(use_trick.unsqueeze(-1), boxes + offsets.unsqueeze(-1), boxes);
  auto sorted_boxes = gather_rows(boxes_for_nms, order);
  // The coordinate trick keeps classes apart by the offsets alone, and torchvision's `nms` then
  // compares every pair: where fp16 rounds the offset boxes of neighbouring classes into each
  // other (offsets past 2048 are rounded to 2..32 pixels, past 65504 they are inf), boxes of
  // different classes do suppress each other. So the class test applies only to the per-class
  // path (_batched_nms_vanilla); with the trick every candidate is one class. In fp32 the offset
  // boxes of different classes never overlap, and both give the same result.
  auto sorted_idxs = at::where(use_trick, at::zeros_like(order), idxs.gather(1, order));
  auto considered_count = at::clamp_max(count, considered);
  auto [keep, keep_count] =
      nms_sorted(sorted_boxes.to(at::kFloat), sorted_idxs, considered_count, iou_threshold,
                 boxes.scalar_type() == at::kHalf, max_keep, /*compare_double=*/on_cpu);
  NmsResult r;
  r.index = at::where(at::ge(keep, 0), order.gather(1, keep.clamp_min(0)), -1);
  r.count = keep_count;
  r.inexact = at::logical_and(at::gt(count, considered), at::lt(keep_count, max_keep));
  return r;
}

at::Tensor map_levels(const at::Tensor& boxes, int64_t k_min, int64_t k_max) {
  // box_area, then Eqn. (1) of the FPN paper as LevelMapper.__call__ writes it. box_area upcasts
  // fp16 boxes to float32 first (torchvision/ops/boxes.py, `_upcast`: "protects from numerical
  // overflows"), so the whole mapping runs in float32 whatever the engine's dtype: in fp16 an
  // area past 65504 (a box over ~256x256 px) would be inf and pool from the coarsest level.
  auto b = boxes.to(at::kFloat);
  auto area = (b.select(-1, 2) - b.select(-1, 0)) * (b.select(-1, 3) - b.select(-1, 1));
  auto s = at::sqrt(area);
  auto eps = at::scalar_tensor(1e-6, at::TensorOptions().dtype(s.scalar_type()));  // CPU 0-dim
  auto target = at::floor(at::log2(s / 224) + 4 + eps);
  target = at::clamp(target, static_cast<double>(k_min), static_cast<double>(k_max));
  return target.to(at::kLong) - k_min;
}

std::vector<double> infer_scales(const std::vector<int64_t>& feature_heights, int64_t max_height) {
  std::vector<double> scales;
  for (int64_t h : feature_heights) {
    const double approx = static_cast<double>(h) / static_cast<double>(max_height);
    // torch.tensor(approx) is float32; log2 and round (half to even) in float32.
    const float l = std::nearbyint(std::log2(static_cast<float>(approx)));
    scales.push_back(std::pow(2.0, static_cast<double>(l)));
  }
  return scales;
}

at::Tensor grid_anchors(const std::vector<at::Tensor>& cell_anchors,
                        const std::vector<at::Tensor>& features, int64_t image_h, int64_t image_w,
                        at::ScalarType dtype) {
  std::vector<at::Tensor> out;
  const auto device = features[0].device();
  for (size_t l = 0; l < features.size(); l++) {
    const int64_t gh = features[l].size(2), gw = features[l].size(3);
    auto ints = at::TensorOptions().device(device);
    auto stride_h = at::empty({}, ints.dtype(at::kLong)).fill_(image_h / gh);
    auto stride_w = at::empty({}, ints.dtype(at::kLong)).fill_(image_w / gw);
    auto base = cell_anchors[l].to(at::TensorOptions().dtype(dtype).device(device));
    auto shifts_x = at::arange(0, gw, ints.dtype(at::kInt)) * stride_w;
    auto shifts_y = at::arange(0, gh, ints.dtype(at::kInt)) * stride_h;
    auto grid = at::meshgrid({shifts_y, shifts_x}, "ij");
    auto sx = grid[1].reshape(-1), sy = grid[0].reshape(-1);
    auto shifts = at::stack({sx, sy, sx, sy}, 1);
    out.push_back((shifts.view({-1, 1, 4}) + base.view({1, -1, 4})).reshape({-1, 4}));
  }
  return at::cat(out, 0);
}

}  // namespace dn
