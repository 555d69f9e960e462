// detbench native engine: box and mask heads (see roi_heads.h).
#include "roi_heads.h"

#include "ops.h"

namespace dn {

RoiHeads::RoiHeads(const ModelFile& f, const Settings& s, bool masks) : s_(s), masks_(masks) {
  const auto output_size = f.attr_ints("roi_heads.box_roi_pool.output_size");
  box_pooled_ = output_size.at(0);
  box_sampling_ = f.attr_int("roi_heads.box_roi_pool.sampling_ratio");
  // The pooled features arrive as [R, p, p, C]; fc6 expects torchvision's flatten order
  // (C, p, p), so its input columns are permuted once here.
  auto w6 = f.tensor("roi_heads.box_head.fc6.weight");
  const int64_t channels = w6.size(1) / (box_pooled_ * box_pooled_);
  if (!s.exact) {
    w6 = w6.view({w6.size(0), channels, box_pooled_, box_pooled_}).permute({0, 2, 3, 1}).reshape({w6.size(0), -1});
  }
  fc6_ = Linear{prepare(w6, s), prepare(f.tensor("roi_heads.box_head.fc6.bias"), s)};
  fc7_ = load_linear(f, "roi_heads.box_head.fc7", s);
  auto cls_w = f.tensor("roi_heads.box_predictor.cls_score.weight");
  num_classes_ = cls_w.size(0);
  // 91 + 364 outputs padded to 456 (kChannelMultiple); the last is never read.
  predict_.weight = prepare(
      pad_rows(at::cat({cls_w, f.tensor("roi_heads.box_predictor.bbox_pred.weight")}, 0), kChannelMultiple), s);
  predict_.bias = prepare(pad_rows(at::cat({f.tensor("roi_heads.box_predictor.cls_score.bias"),
                                            f.tensor("roi_heads.box_predictor.bbox_pred.bias")}, 0),
                                   kChannelMultiple),
                          s);
  if (s.exact) {
    cls_ = load_linear(f, "roi_heads.box_predictor.cls_score", s);
    bbox_ = load_linear(f, "roi_heads.box_predictor.bbox_pred", s);
  }
  const auto weights = f.attr_doubles("roi_heads.box_coder.weights");
  coder_ = BoxCoder{weights.at(0), weights.at(1), weights.at(2), weights.at(3),
                    f.attr_double("roi_heads.box_coder.bbox_xform_clip")};
  score_thresh_ = f.attr_double("roi_heads.score_thresh");
  nms_thresh_ = f.attr_double("roi_heads.nms_thresh");
  detections_per_img_ = f.attr_int("roi_heads.detections_per_img");
  if (masks_) {
    mask_pooled_ = f.attr_ints("roi_heads.mask_roi_pool.output_size").at(0);
    mask_sampling_ = f.attr_int("roi_heads.mask_roi_pool.sampling_ratio");
    for (int i = 0; f.has("roi_heads.mask_head." + std::to_string(i) + ".0.weight"); i++) {
      mask_convs_.push_back(load_conv(f, "roi_heads.mask_head." + std::to_string(i) + ".0", 1, 1, s));
    }
    deconv_weight_ = prepare(f.tensor("roi_heads.mask_predictor.conv5_mask.weight"), s);
    deconv_bias_ = prepare(f.tensor("roi_heads.mask_predictor.conv5_mask.bias"), s);
    mask_logits_ = load_conv(f, "roi_heads.mask_predictor.mask_fcn_logits", 1, 0, s);
  }
}

at::Tensor RoiHeads::pool(const std::vector<at::Tensor>& features, const Pooler& pooler,
                          const at::Tensor& boxes, int64_t pooled, int64_t sampling_ratio) const {
  const int64_t n = boxes.size(0), k = boxes.size(1);
  // float32 for the RoIs and for the level mapping alike (map_levels computes in float32).
  auto flat = boxes.reshape({n * k, 4}).to(at::kFloat);
  // _convert_to_roi_format: (image index, x1, y1, x2, y2).
  auto ids = at::arange(n, flat.options()).view({n, 1}).expand({n, k}).reshape({n * k, 1});
  auto rois = at::cat({ids, flat}, 1);
  auto levels = map_levels(flat, pooler.k_min, pooler.k_max);
  std::vector<at::Tensor> maps(features.begin(), features.begin() + pooler.scales.size());
  return roi_align_levels(maps, pooler.scales, rois, levels, pooled, sampling_ratio, false);
}

Detections RoiHeads::forward(const std::vector<at::Tensor>& features, const Pooler& pooler,
                             const Proposals& proposals, const at::Tensor& limits,
                             const at::Tensor& half_one, Dumps* dumps) const {
  const int64_t n = proposals.boxes.size(0), p = proposals.boxes.size(1);
  auto x = pool(features, pooler, proposals.boxes, box_pooled_, box_sampling_);
  if (dumps) (*dumps)["box.pooled"] = x.permute({0, 3, 1, 2});
  // [R, p, p, C]: flattened as is (fc6's columns were permuted to match), or, exact, in
  // torchvision's order (C, p, p).
  x = s_.exact ? x.permute({0, 3, 1, 2}).reshape({n * p, -1}) : x.reshape({n * p, -1});
  x = at::relu(at::linear(x, fc6_.weight, fc6_.bias));
  x = at::relu(at::linear(x, fc7_.weight, fc7_.bias));
  at::Tensor class_logits, box_regression;
  if (s_.exact) {
    class_logits = at::linear(x, cls_.weight, cls_.bias);
    box_regression = at::linear(x, bbox_.weight, bbox_.bias);
  } else {
    auto y = at::linear(x, predict_.weight, predict_.bias);
    class_logits = y.narrow(1, 0, num_classes_);
    box_regression = y.narrow(1, num_classes_, 4 * num_classes_);
  }
  if (dumps) {
    (*dumps)["box.fc7"] = x;
    (*dumps)["box.class_logits"] = class_logits;
    (*dumps)["box.regression"] = box_regression;
  }

  // postprocess_detections.
  auto pred_boxes = decode_boxes(coder_, box_regression, proposals.boxes.reshape({n * p, 4}), half_one)
                        .view({n, p, num_classes_, 4});
  auto pred_scores = at::softmax(class_logits, -1).view({n, p, num_classes_});
  auto boxes = clip_boxes(pred_boxes, limits);
  const int64_t c = num_classes_ - 1;  // without the background class
  boxes = boxes.narrow(2, 1, c).reshape({n, -1, 4});
  auto scores = pred_scores.narrow(2, 1, c).reshape({n, -1});
  auto labels = at::arange(1, num_classes_, scores.options().dtype(at::kLong))
                    .view({1, 1, c})
                    .expand({n, p, c})
                    .reshape({n, -1});
  auto from_valid = proposals.valid.unsqueeze(2).expand({n, p, c}).reshape({n, -1});
  auto valid = at::logical_and(at::logical_and(at::gt(scores, score_thresh_), from_valid),
                               boxes_not_small(boxes, 1e-2));
  auto kept = batched_nms(boxes, scores, labels, valid, nms_thresh_, detections_per_img_,
                          s_.nms_capacity, vanilla_above(s_), !is_cuda(s_));
  Detections d;
  d.boxes = gather_rows(boxes, kept.index);
  d.scores = gather_rows(scores, kept.index);
  d.labels = gather_rows(labels, kept.index);
  d.count = kept.count;
  d.inexact = kept.inexact;
  return d;
}

at::Tensor RoiHeads::mask_probs(const std::vector<at::Tensor>& features, const Pooler& pooler,
                                const Detections& d) const {
  const int64_t n = d.boxes.size(0), k = d.boxes.size(1);
  // [R, p, p, C] is the channels-last layout of [R, C, p, p].
  auto x = pool(features, pooler, d.boxes, mask_pooled_, mask_sampling_).permute({0, 3, 1, 2});
  if (!s_.channels_last) x = x.contiguous();
  for (const auto& conv : mask_convs_) x = run_conv(conv, x, Act::Relu, s_);
  x = at::relu(at::conv_transpose2d(x, deconv_weight_, deconv_bias_, {2, 2}));
  x = run_conv(mask_logits_, x, Act::None, s_);
  // maskrcnn_inference: sigmoid, then the map of each detection's label.
  auto probs = at::sigmoid(x);
  const int64_t m = probs.size(2);
  auto index = d.labels.reshape({n * k, 1, 1, 1}).expand({n * k, 1, m, m});
  return probs.gather(1, index).view({n, k, m, m});
}

}  // namespace dn
