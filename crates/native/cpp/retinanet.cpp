// detbench native engine: RetinaNet head and post-processing (see retinanet.h).
#include "retinanet.h"

#include <limits>

namespace dn {

namespace {

// The class logits (A * 91 = 819 channels) and box regression (A * 4 = 36) convolutions; in fast
// mode their output channels are padded to kChannelMultiple (824, 40) so that cuDNN's NHWC
// tensor-core kernels get aligned channel rows. The padded outputs are never read.
Conv load_predictor(const ModelFile& f, const std::string& prefix, const Settings& s) {
  if (s.exact) return load_conv(f, prefix, 1, 1, s);
  Conv c;
  c.weight = prepare(pad_rows(f.tensor(prefix + ".weight"), kChannelMultiple), s);
  c.bias = prepare(pad_rows(f.tensor(prefix + ".bias"), kChannelMultiple), s);
  c.stride = 1;
  c.padding = 1;
  return c;
}

}  // namespace

RetinaHead::RetinaHead(const ModelFile& f, const Settings& s) : s_(s) {
  for (int i = 0; f.has("head.classification_head.conv." + std::to_string(i) + ".0.weight"); i++) {
    cls_tower_.push_back(load_conv(f, "head.classification_head.conv." + std::to_string(i) + ".0", 1, 1, s));
    reg_tower_.push_back(load_conv(f, "head.regression_head.conv." + std::to_string(i) + ".0", 1, 1, s));
  }
  cls_logits_ = load_predictor(f, "head.classification_head.cls_logits", s);
  bbox_reg_ = load_predictor(f, "head.regression_head.bbox_reg", s);
  num_classes_ = f.attr_int("head.classification_head.num_classes");
  anchors_per_location_ = f.attr_int("head.classification_head.num_anchors");
  cell_anchors_ = f.attr_tensors("anchor_generator.cell_anchors");
  const auto weights = f.attr_doubles("box_coder.weights");
  coder_ = BoxCoder{weights.at(0), weights.at(1), weights.at(2), weights.at(3),
                    f.attr_double("box_coder.bbox_xform_clip")};
  score_thresh_ = f.attr_double("score_thresh");
  nms_thresh_ = f.attr_double("nms_thresh");
  detections_per_img_ = f.attr_int("detections_per_img");
  topk_candidates_ = f.attr_int("topk_candidates");
}

std::vector<at::Tensor> RetinaHead::anchors(const std::vector<at::Tensor>& features,
                                            int64_t image_h, int64_t image_w) const {
  auto all = grid_anchors(cell_anchors_, features, image_h, image_w, act_dtype(s_));
  std::vector<at::Tensor> out;
  int64_t offset = 0;
  for (const auto& f : features) {
    const int64_t count = f.size(2) * f.size(3) * anchors_per_location_;
    out.push_back(all.narrow(0, offset, count));
    offset += count;
  }
  return out;
}

namespace {

// [N, A*C, H, W] -> [N, H*W*A, C], as the heads' view/permute/reshape.
at::Tensor flatten_head(const at::Tensor& layer, int64_t c) {
  const int64_t n = layer.size(0), h = layer.size(2), w = layer.size(3);
  return layer.reshape({n, -1, c, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, c});
}

}  // namespace

Detections RetinaHead::forward(const std::vector<at::Tensor>& features,
                               const std::vector<at::Tensor>& anchors, const at::Tensor& limits,
                               const at::Tensor& half_one) const {
  const int64_t n = features[0].size(0), k = num_classes_;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<at::Tensor> all_boxes, all_scores, all_labels, all_valid;
  for (size_t l = 0; l < features.size(); l++) {
    auto c = features[l], r = features[l];
    for (size_t i = 0; i < cls_tower_.size(); i++) {
      c = run_conv(cls_tower_[i], c, Act::Relu, s_);
      r = run_conv(reg_tower_[i], r, Act::Relu, s_);
    }
    const int64_t a = anchors_per_location_;
    auto logits = flatten_head(run_conv(cls_logits_, c, Act::None, s_).narrow(1, 0, a * k), k);
    auto regression = flatten_head(run_conv(bbox_reg_, r, Act::None, s_).narrow(1, 0, a * 4), 4);
    // postprocess_detections, per level: scores above the threshold, the top candidates.
    auto scores = at::sigmoid(logits).reshape({n, -1});
    auto keep = at::gt(scores, score_thresh_);
    const int64_t topk = std::min(topk_candidates_, scores.size(1));
    auto [top_scores, top_idx] = at::topk(scores.masked_fill(keep.logical_not(), -inf), topk, 1);
    auto anchor_idx = at::div(top_idx, k, "floor");
    auto labels = at::remainder(top_idx, k);
    auto codes = gather_rows(regression, anchor_idx).reshape({-1, 4});
    auto reference = anchors[l].index_select(0, anchor_idx.reshape(-1));
    auto boxes = decode_boxes(coder_, codes, reference, half_one).view({n, topk, 4});
    all_boxes.push_back(clip_boxes(boxes, limits));
    all_scores.push_back(top_scores);
    all_labels.push_back(labels);
    all_valid.push_back(at::gt(top_scores, score_thresh_));
  }
  auto boxes = at::cat(all_boxes, 1), scores = at::cat(all_scores, 1);
  auto labels = at::cat(all_labels, 1), valid = at::cat(all_valid, 1);
  auto kept = batched_nms(boxes, scores, labels, valid, nms_thresh_, detections_per_img_,
                          boxes.size(1), vanilla_above(s_), !is_cuda(s_));
  Detections d;
  d.boxes = gather_rows(boxes, kept.index);
  d.scores = gather_rows(scores, kept.index);
  d.labels = gather_rows(labels, kept.index);
  d.count = kept.count;
  d.inexact = kept.inexact;
  return d;
}

}  // namespace dn
