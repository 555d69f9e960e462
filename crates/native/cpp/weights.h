// detbench native engine: the model file. Weights and settings are read from the same
// TorchScript file the `torch` backend runs (tools/gpu/export_torchvision.py), BatchNorm is
// folded into the convolutions, and the architecture is recognised from the file's class and
// parameter names.
#pragma once

#include "common.h"

#include <memory>
#include <string>
#include <unordered_map>

namespace torch::jit {
struct Module;
}

namespace dn {

class ModelFile {
 public:
  // Loads `path` on the CPU (torchvision's ops must already be registered: the file's code calls
  // torchvision::nms). Throws EngineError(ModelFile) naming the file.
  explicit ModelFile(const std::string& path);
  ~ModelFile();

  const std::string& path() const { return path_; }
  // The scripted class, e.g. __torch__.torchvision.models.detection.faster_rcnn.FasterRCNN.
  const std::string& type_name() const { return type_name_; }
  // The architecture, or EngineError(UnknownArchitecture) naming what the file holds.
  Arch arch() const;

  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  // A parameter or buffer (CPU, as stored). Throws EngineError(ModelFile) naming the key.
  at::Tensor tensor(const std::string& name) const;

  // Attributes by dotted path from the root module ("roi_heads.score_thresh"); the last step may
  // name an attribute of a TorchScript object ("rpn.box_coder.weights").
  double attr_double(const std::string& path) const;
  int64_t attr_int(const std::string& path) const;
  std::vector<double> attr_doubles(const std::string& path) const;  // list or tuple
  std::vector<int64_t> attr_ints(const std::string& path) const;    // list or tuple
  std::vector<at::Tensor> attr_tensors(const std::string& path) const;
  int64_t attr_dict_int(const std::string& path, const std::string& key) const;

 private:
  struct Attr;
  Attr attr(const std::string& path) const;
  std::string path_, type_name_;
  std::unique_ptr<torch::jit::Module> module_;
  std::unordered_map<std::string, at::Tensor> tensors_;
};

// Moves a parameter to the engine's device and dtype (channels-last for 4-d conv weights when
// the settings ask for it).
at::Tensor prepare(const at::Tensor& t, const Settings& s);

// `prefix`.weight / `prefix`.bias of a plain convolution.
Conv load_conv(const ModelFile& f, const std::string& prefix, int64_t stride, int64_t padding,
               const Settings& s);

// The output channels (or rows) a fast-mode predictor is padded to a multiple of: fp16 tensor
// core kernels (cuDNN NHWC convolutions, cuBLAS GEMMs) need 16-byte aligned channel rows, and
// RetinaNet's 819 class logits, the RPN's 3 + 12 and the box predictor's 91 + 364 outputs are not.
constexpr int64_t kChannelMultiple = 8;

// Appends zero rows to dim 0 of `t` (a weight [K, ...] or bias [K]) up to a multiple of
// `multiple`; the extra outputs are zero and are never read.
at::Tensor pad_rows(const at::Tensor& t, int64_t multiple);

// A bias-free convolution followed by torchvision's FrozenBatchNorm2d (eps 1e-5), folded:
// scale = weight * rsqrt(running_var + eps), W' = W * scale, b' = bias - running_mean * scale,
// computed in fp32 on the CPU, then cast.
Conv load_conv_bn(const ModelFile& f, const std::string& conv, const std::string& bn,
                  int64_t stride, int64_t padding, const Settings& s);

// A linear layer [out, in] with bias.
struct Linear {
  at::Tensor weight, bias;
};
Linear load_linear(const ModelFile& f, const std::string& prefix, const Settings& s);

}  // namespace dn
