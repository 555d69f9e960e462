// detbench native engine: torchvision's RegionProposalNetwork in eval mode (rpn.py): the shared
// head over every pyramid level, anchors, box decoding, per-level top-n, clipping, small-box
// removal and NMS per level, for fixed shapes: always post_nms_top_n proposals per image, the
// ones past what NMS kept marked invalid.
#pragma once

#include "boxes.h"
#include "weights.h"

namespace dn {

// What depends only on the batch's padded shape, made before a graph is captured.
struct RpnShape {
  at::Tensor anchors;                    // [A, 4], the engine's dtype
  at::Tensor levels;                     // [A] int64 level of each anchor
  std::vector<int64_t> per_level;        // anchors per level
};

struct Proposals {
  at::Tensor boxes;  // [N, post_nms_top_n, 4]
  at::Tensor valid;  // [N, post_nms_top_n] bool
};

class Rpn {
 public:
  Rpn(const ModelFile& f, const Settings& s);
  RpnShape shape(const std::vector<at::Tensor>& features, int64_t image_h, int64_t image_w) const;
  // limits [N, 4] (w, h, w, h) of each image's resized size, in the engine's dtype. `dumps`,
  // when given, receives the intermediate tensors (rpn.objectness, rpn.proposals before the
  // top-n, rpn.top_idx, and of the top-n candidates rpn.scores, rpn.boxes clipped, rpn.valid,
  // then rpn.kept: their positions NMS kept, -1 after the last).
  Proposals forward(const std::vector<at::Tensor>& features, const RpnShape& shape,
                    const at::Tensor& limits, const at::Tensor& half_one,
                    Dumps* dumps = nullptr) const;
  int64_t post_nms_top_n() const { return post_nms_top_n_; }

 private:
  Settings s_;
  Conv conv_, predict_;  // predict_: cls_logits and bbox_pred as one 1x1 convolution
  Conv cls_, bbox_;      // Settings::exact: the two as torchvision runs them
  int64_t anchors_per_location_;
  std::vector<at::Tensor> cell_anchors_;
  BoxCoder coder_;
  int64_t pre_nms_top_n_, post_nms_top_n_;
  double nms_thresh_, score_thresh_, min_size_;
};

}  // namespace dn
