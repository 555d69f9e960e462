// detbench native engine: torchvision's RoIHeads in eval mode (roi_heads.py): multi-scale
// RoIAlign, the two-layer box head, the class-wise post-processing (softmax, decoding, score
// threshold, small-box removal, batched NMS, top detections_per_img), and Mask R-CNN's mask
// head and per-class mask selection. Fixed shapes: post_nms_top_n proposals and
// detections_per_img detections per image, with device-side counts.
#pragma once

#include "boxes.h"
#include "rpn.h"
#include "weights.h"

namespace dn {

struct Detections {
  at::Tensor boxes;    // [N, D, 4] in resized-image pixels, the engine's dtype
  at::Tensor scores;   // [N, D]
  at::Tensor labels;   // [N, D] int64
  at::Tensor count;    // [N] int64
  at::Tensor inexact;  // [N] bool (see NmsResult)
};

// MultiScaleRoIAlign's settings for one batch shape (setup_scales).
struct Pooler {
  std::vector<double> scales;
  int64_t k_min = 2, k_max = 5;
};

class RoiHeads {
 public:
  RoiHeads(const ModelFile& f, const Settings& s, bool masks);
  // `dumps`, when given, receives the box head's tensors over every proposal slot (box.pooled
  // [N*K, C, p, p], box.fc7, box.class_logits, box.regression).
  Detections forward(const std::vector<at::Tensor>& features, const Pooler& pooler,
                     const Proposals& proposals, const at::Tensor& limits,
                     const at::Tensor& half_one, Dumps* dumps = nullptr) const;
  // Mask R-CNN: the probability map of each detection's class, [N, D, m, m].
  at::Tensor mask_probs(const std::vector<at::Tensor>& features, const Pooler& pooler,
                        const Detections& d) const;
  int64_t detections_per_img() const { return detections_per_img_; }

 private:
  // MultiScaleRoIAlign over boxes [N, K, 4]: [N*K, p, p, C].
  at::Tensor pool(const std::vector<at::Tensor>& features, const Pooler& pooler,
                  const at::Tensor& boxes, int64_t pooled, int64_t sampling_ratio) const;

  Settings s_;
  Linear fc6_, fc7_, predict_;  // predict_: cls_score and bbox_pred as one layer
  Linear cls_, bbox_;            // Settings::exact: the two as torchvision runs them
  int64_t num_classes_;
  BoxCoder coder_;
  double score_thresh_, nms_thresh_;
  int64_t detections_per_img_;
  int64_t box_pooled_, box_sampling_;
  bool masks_;
  std::vector<Conv> mask_convs_;
  at::Tensor deconv_weight_, deconv_bias_;
  Conv mask_logits_;
  int64_t mask_pooled_ = 14, mask_sampling_ = 2;
};

}  // namespace dn
