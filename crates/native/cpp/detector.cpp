// detbench native engine: detector assembly (see detector.h).
#include "detector.h"

namespace dn {

Detector::Detector(const ModelFile& f, const Settings& s) : s_(s), arch_(f.arch()) {
  const auto min_sizes = f.attr_ints("transform.min_size");
  pre_.min_size = min_sizes.back();  // eval uses self.min_size[-1]
  pre_.max_size = f.attr_int("transform.max_size");
  pre_.size_divisible = f.attr_int("transform.size_divisible");
  pre_.mean = f.attr_doubles("transform.image_mean");
  pre_.std = f.attr_doubles("transform.image_std");
  if (arch_ == Arch::RetinaNet) {
    backbone_ = std::make_unique<ResNetFpn>(f, s, std::vector<int>{2, 3, 4}, Extra::P6P7);
    retina_ = std::make_unique<RetinaHead>(f, s);
    max_detections_ = f.attr_int("detections_per_img");
  } else {
    backbone_ = std::make_unique<ResNetFpn>(f, s, std::vector<int>{1, 2, 3, 4}, Extra::MaxPool);
    rpn_ = std::make_unique<Rpn>(f, s);
    roi_heads_ = std::make_unique<RoiHeads>(f, s, arch_ == Arch::MaskRcnn);
    max_detections_ = roi_heads_->detections_per_img();
  }
}

std::vector<int64_t> Detector::pooler_heights(int64_t padded_h) const {
  // conv1 (7x7/2, pad 3), max pool (3x3/2, pad 1), then one stride-2 3x3 (pad 1) per stage:
  // each gives floor((h - 1) / 2) + 1.
  auto half = [](int64_t h) { return (h - 1) / 2 + 1; };
  int64_t h = half(half(padded_h));
  std::vector<int64_t> out{h};
  for (int i = 0; i < 3; i++) {
    h = half(h);
    out.push_back(h);
  }
  return out;  // the RoI poolers read levels '0'..'3' (stride 4..32)
}

ShapeConsts Detector::prepare(const at::Tensor& images, const Pooler& pooler) const {
  ShapeConsts c;
  c.pooler = pooler;
  c.half_one = at::scalar_tensor(0.5, images.options().dtype(act_dtype(s_)));
  auto features = backbone_->forward(images);
  const int64_t h = images.size(2), w = images.size(3);
  if (retina_) {
    c.retina_anchors = retina_->anchors(features, h, w);
  } else {
    c.rpn = rpn_->shape(features, h, w);
  }
  return c;
}


Outputs Detector::forward(const at::Tensor& images, const at::Tensor& info, const ShapeConsts& c,
                          Dumps* dumps) const {
  const auto dtype = act_dtype(s_);
  auto features = backbone_->forward(images, dumps);
  if (dumps) {
    (*dumps)["images"] = images;
    for (size_t i = 0; i < features.size(); i++) (*dumps)["features." + std::to_string(i)] = features[i];
  }
  auto limits = at::stack({info.select(1, kResizedW), info.select(1, kResizedH),
                           info.select(1, kResizedW), info.select(1, kResizedH)},
                          1)
                    .to(dtype);
  Detections d;
  if (retina_) {
    d = retina_->forward(features, c.retina_anchors, limits, c.half_one);
  } else {
    auto proposals = rpn_->forward(features, c.rpn, limits, c.half_one, dumps);
    if (dumps) {
      (*dumps)["proposals.boxes"] = proposals.boxes;
      (*dumps)["proposals.valid"] = proposals.valid;
    }
    d = roi_heads_->forward(features, c.pooler, proposals, limits, c.half_one, dumps);
  }
  if (dumps) {
    (*dumps)["detections.boxes"] = d.boxes;
    (*dumps)["detections.scores"] = d.scores;
    (*dumps)["detections.labels"] = d.labels;
    (*dumps)["detections.count"] = d.count;
  }
  Outputs out;
  if (masks()) out.mask_probs = roi_heads_->mask_probs(features, c.pooler, d);
  // transform.postprocess -> resize_boxes: coordinate * (original / resized), the float32 ratio
  // taken in the boxes' dtype (as a 0-dim tensor of another dtype is in PyTorch's kernels).
  auto ratio_h = info.select(1, kRatioH).to(dtype).unsqueeze(1);
  auto ratio_w = info.select(1, kRatioW).to(dtype).unsqueeze(1);
  auto boxes = at::stack({d.boxes.select(-1, 0) * ratio_w, d.boxes.select(-1, 1) * ratio_h,
                          d.boxes.select(-1, 2) * ratio_w, d.boxes.select(-1, 3) * ratio_h},
                         -1);
  if (masks()) {
    const int64_t m = out.mask_probs.size(-1);
    out.paste_boxes = expand_boxes_int(boxes, static_cast<double>(m + 2) / m);
  }
  const int64_t n = boxes.size(0);
  out.count = d.count;
  out.packed = at::cat({at::cat({boxes.to(at::kFloat), d.scores.to(at::kFloat).unsqueeze(-1),
                                 d.labels.to(at::kFloat).unsqueeze(-1)},
                                -1)
                            .reshape({n, -1}),
                        d.count.to(at::kFloat).unsqueeze(1), d.inexact.to(at::kFloat).unsqueeze(1)},
                       1);
  return out;
}

}  // namespace dn
