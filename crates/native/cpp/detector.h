// detbench native engine: one torchvision detector assembled from its parts
// (GeneralizedRCNN / RetinaNet forward in eval mode, after GeneralizedRCNNTransform): backbone,
// RPN and RoI heads or the RetinaNet head, then transform.postprocess's box rescaling and the
// boxes Mask R-CNN pastes its masks at. Everything in `forward` has fixed shapes and reads the
// per-image sizes from device memory, so one CUDA graph can hold it.
#pragma once

#include <map>
#include <memory>

#include "backbone.h"
#include "retinanet.h"
#include "roi_heads.h"
#include "rpn.h"

namespace dn {

// GeneralizedRCNNTransform's settings (eval): resize so the short side is min_size unless the
// long side would exceed max_size, normalise, pad to a multiple of size_divisible.
struct Preprocessing {
  int64_t min_size = 800, max_size = 1333, size_divisible = 32;
  std::vector<double> mean, std;
};

// What `forward` needs that depends only on the batch's padded shape; made outside any capture.
struct ShapeConsts {
  RpnShape rpn;
  std::vector<at::Tensor> retina_anchors;
  Pooler pooler;
  at::Tensor half_one;  // 0.5 as a 0-dim tensor in the engine's dtype on its device
};

struct Outputs {
  at::Tensor packed;       // float32 [N, D * 6 + 2]: D x (x1, y1, x2, y2, score, label), count, inexact
  at::Tensor mask_probs;   // Mask R-CNN: [N, D, m, m] probabilities of each detection's class
  at::Tensor paste_boxes;  // Mask R-CNN: [N, D, 4] int64, expanded boxes in original pixels
  at::Tensor count;        // [N] int64
};

class Detector {
 public:
  Detector(const ModelFile& f, const Settings& s);
  Arch arch() const { return arch_; }
  const Preprocessing& preprocessing() const { return pre_; }
  int64_t max_detections() const { return max_detections_; }
  bool masks() const { return arch_ == Arch::MaskRcnn; }

  // Pyramid heights for a padded input height (the strided convolutions' output sizes).
  std::vector<int64_t> pooler_heights(int64_t padded_h) const;
  ShapeConsts prepare(const at::Tensor& images, const Pooler& pooler) const;
  // images [N, 3, H, W] normalised and padded; info float32 [N, 4] (ImageInfo). `dumps`, when
  // given, receives the intermediate tensors by stage name (never during a capture).
  Outputs forward(const at::Tensor& images, const at::Tensor& info, const ShapeConsts& c,
                  Dumps* dumps = nullptr) const;
  std::vector<at::Tensor> backbone(const at::Tensor& images) const { return backbone_->forward(images); }

 private:
  Settings s_;
  Arch arch_;
  Preprocessing pre_;
  std::unique_ptr<ResNetFpn> backbone_;
  std::unique_ptr<Rpn> rpn_;
  std::unique_ptr<RoiHeads> roi_heads_;
  std::unique_ptr<RetinaHead> retina_;
  int64_t max_detections_;
};

}  // namespace dn
