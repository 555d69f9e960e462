// detbench native engine: the ResNet-50 body and the feature pyramid of torchvision's v1
// detectors (`resnet_fpn_backbone` / `_resnet_fpn_extractor`, ops/feature_pyramid_network.py).
#pragma once

#include "common.h"
#include "weights.h"

namespace dn {

// The pyramid's extra levels: Faster/Mask R-CNN's `LastLevelMaxPool` ("pool") or RetinaNet's
// `LastLevelP6P7` (from P5, `use_P5`).
enum class Extra { MaxPool, P6P7 };

struct Bottleneck {
  Conv conv1, conv2, conv3, down;
  bool has_down = false;
};

class ResNetFpn {
 public:
  // `returned` are the ResNet stages feeding the pyramid (1-based: {1,2,3,4} or {2,3,4}).
  ResNetFpn(const ModelFile& f, const Settings& s, std::vector<int> returned, Extra extra);

  // [N, 3, H, W] normalised, padded images -> pyramid levels, finest first. `dumps`, when given,
  // receives the stem's and each ResNet stage's output (body.stem, body.layer1..4).
  std::vector<at::Tensor> forward(const at::Tensor& images, Dumps* dumps = nullptr) const;

 private:
  at::Tensor block(const Bottleneck& b, const at::Tensor& x) const;

  Settings s_;
  Conv stem_;
  std::vector<std::vector<Bottleneck>> stages_;
  std::vector<int> returned_;
  std::vector<Conv> inner_, layer_;
  Extra extra_;
  Conv p6_, p7_;
};

// Multiply-add count of the convolutions run on this thread since the last reset (2 FLOPs per
// multiply-add), for the performance report.
void reset_conv_flops();
double conv_flops();

}  // namespace dn
