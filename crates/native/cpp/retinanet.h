// detbench native engine: torchvision's RetinaNet head and eval post-processing
// (retinanet.py: RetinaNetClassificationHead, RetinaNetRegressionHead, postprocess_detections),
// for fixed shapes: topk_candidates per level chosen among the scores above the threshold
// (the others masked), then class-wise batched NMS and the top detections_per_img.
#pragma once

#include "boxes.h"
#include "roi_heads.h"
#include "weights.h"

namespace dn {

class RetinaHead {
 public:
  RetinaHead(const ModelFile& f, const Settings& s);
  // Anchors per pyramid level for one batch shape ([H*W*A, 4] each, the engine's dtype).
  std::vector<at::Tensor> anchors(const std::vector<at::Tensor>& features, int64_t image_h,
                                  int64_t image_w) const;
  Detections forward(const std::vector<at::Tensor>& features,
                     const std::vector<at::Tensor>& anchors, const at::Tensor& limits,
                     const at::Tensor& half_one) const;

 private:
  Settings s_;
  std::vector<Conv> cls_tower_, reg_tower_;
  Conv cls_logits_, bbox_reg_;
  int64_t num_classes_, anchors_per_location_;
  std::vector<at::Tensor> cell_anchors_;
  BoxCoder coder_;
  double score_thresh_, nms_thresh_;
  int64_t detections_per_img_, topk_candidates_;
};

}  // namespace dn
