// detbench native engine: the region proposal network (see rpn.h).
#include "rpn.h"

namespace dn {

namespace {

// permute_and_flatten (rpn.py): [N, A*C, H, W] -> [N, H*W*A, C].
at::Tensor permute_and_flatten(const at::Tensor& layer, int64_t c) {
  const int64_t n = layer.size(0), h = layer.size(2), w = layer.size(3);
  return layer.reshape({n, -1, c, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, c});
}

}  // namespace

Rpn::Rpn(const ModelFile& f, const Settings& s) : s_(s) {
  conv_ = load_conv(f, "rpn.head.conv.0.0", 1, 1, s);
  auto w = at::cat({f.tensor("rpn.head.cls_logits.weight"), f.tensor("rpn.head.bbox_pred.weight")}, 0);
  auto b = at::cat({f.tensor("rpn.head.cls_logits.bias"), f.tensor("rpn.head.bbox_pred.bias")}, 0);
  // 3 + 12 outputs padded to 16 (kChannelMultiple); the 16th is never read.
  predict_.weight = prepare(pad_rows(w, kChannelMultiple), s);
  predict_.bias = prepare(pad_rows(b, kChannelMultiple), s);
  if (s.exact) {
    cls_ = load_conv(f, "rpn.head.cls_logits", 1, 0, s);
    bbox_ = load_conv(f, "rpn.head.bbox_pred", 1, 0, s);
  }
  cell_anchors_ = f.attr_tensors("rpn.anchor_generator.cell_anchors");
  anchors_per_location_ = cell_anchors_.at(0).size(0);
  const auto weights = f.attr_doubles("rpn.box_coder.weights");
  coder_ = BoxCoder{weights.at(0), weights.at(1), weights.at(2), weights.at(3),
                    f.attr_double("rpn.box_coder.bbox_xform_clip")};
  pre_nms_top_n_ = f.attr_dict_int("rpn._pre_nms_top_n", "testing");
  post_nms_top_n_ = f.attr_dict_int("rpn._post_nms_top_n", "testing");
  nms_thresh_ = f.attr_double("rpn.nms_thresh");
  score_thresh_ = f.attr_double("rpn.score_thresh");
  min_size_ = f.attr_double("rpn.min_size");
}

RpnShape Rpn::shape(const std::vector<at::Tensor>& features, int64_t image_h,
                    int64_t image_w) const {
  RpnShape out;
  out.anchors = grid_anchors(cell_anchors_, features, image_h, image_w, act_dtype(s_));
  std::vector<at::Tensor> levels;
  for (size_t l = 0; l < features.size(); l++) {
    const int64_t n = features[l].size(2) * features[l].size(3) * anchors_per_location_;
    out.per_level.push_back(n);
    levels.push_back(at::full({n}, static_cast<int64_t>(l), out.anchors.options().dtype(at::kLong)));
  }
  out.levels = at::cat(levels, 0);
  return out;
}

Proposals Rpn::forward(const std::vector<at::Tensor>& features, const RpnShape& shape,
                       const at::Tensor& limits, const at::Tensor& half_one, Dumps* dumps) const {
  const int64_t n = features[0].size(0), a = anchors_per_location_;
  std::vector<at::Tensor> objectness_levels, deltas_levels;
  for (const auto& feature : features) {
    auto t = run_conv(conv_, feature, Act::Relu, s_);
    if (s_.exact) {
      objectness_levels.push_back(permute_and_flatten(run_conv(cls_, t, Act::None, s_), 1));
      deltas_levels.push_back(permute_and_flatten(run_conv(bbox_, t, Act::None, s_), 4));
      continue;
    }
    auto y = run_conv(predict_, t, Act::None, s_);
    objectness_levels.push_back(permute_and_flatten(y.narrow(1, 0, a), 1));
    deltas_levels.push_back(permute_and_flatten(y.narrow(1, a, 4 * a), 4));
  }
  // concat_box_prediction_layers, then BoxCoder.decode over every image's anchors.
  auto objectness = at::cat(objectness_levels, 1).reshape({n, -1});
  auto deltas = at::cat(deltas_levels, 1).reshape({-1, 4});
  auto anchors = shape.anchors.repeat({n, 1});
  auto proposals = decode_boxes(coder_, deltas, anchors, half_one).view({n, -1, 4});

  // filter_proposals: the top pre_nms_top_n per level (_get_top_n_idx).
  std::vector<at::Tensor> top;
  int64_t offset = 0;
  for (int64_t count : shape.per_level) {
    auto level = objectness.narrow(1, offset, count);
    top.push_back(std::get<1>(at::topk(level, std::min(pre_nms_top_n_, count), 1)) + offset);
    offset += count;
  }
  auto top_idx = at::cat(top, 1);
  auto scores = at::sigmoid(objectness.gather(1, top_idx));
  auto levels = shape.levels.index_select(0, top_idx.reshape(-1)).view(top_idx.sizes());
  auto boxes = clip_boxes(gather_rows(proposals, top_idx), limits);
  auto valid = at::logical_and(boxes_not_small(boxes, min_size_), at::ge(scores, score_thresh_));
  auto kept = batched_nms(boxes, scores, levels, valid, nms_thresh_, post_nms_top_n_,
                          top_idx.size(1), vanilla_above(s_), !is_cuda(s_));
  if (dumps) {
    (*dumps)["rpn.objectness"] = objectness;
    (*dumps)["rpn.proposals"] = proposals;
    (*dumps)["rpn.top_idx"] = top_idx;
    (*dumps)["rpn.scores"] = scores;
    (*dumps)["rpn.boxes"] = boxes;
    (*dumps)["rpn.valid"] = valid;
    (*dumps)["rpn.kept"] = kept.index;
  }
  return Proposals{gather_rows(boxes, kept.index), at::ge(kept.index, 0)};
}

}  // namespace dn
