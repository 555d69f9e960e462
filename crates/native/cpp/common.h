// detbench native engine: declarations every part shares (errors, settings, small helpers).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace dn {

// What went wrong, as the C ABI reports it (crates/native/src/ffi.rs mirrors these numbers).
enum class ErrorKind : int {
  Other = 1,
  UnknownArchitecture = 2,
  UnsupportedPrecision = 3,
  CudaLibrary = 4,
  OutOfMemory = 5,
  BadInput = 6,
  ModelFile = 7,
};

struct EngineError : std::runtime_error {
  ErrorKind kind;
  EngineError(ErrorKind k, const std::string& message) : std::runtime_error(message), kind(k) {}
};

// Named intermediate tensors of one forward pass (Engine::stages, for the parity scripts).
using Dumps = std::map<std::string, at::Tensor>;

enum class Arch { FasterRcnn, MaskRcnn, RetinaNet };
const char* arch_name(Arch arch);

// Engine settings (crates/native/src/config.rs holds their documentation and parsing).
struct Settings {
  int device = -1;          // CUDA device index, -1 = CPU
  bool half = false;        // fp16 weights and activations (CUDA only)
  bool graphs = true;       // CUDA graphs per input-size bucket
  bool fused_conv = true;   // cuDNN conv+bias+ReLU(+add) fusion (CUDA only)
  bool channels_last = true;
  bool cudnn_benchmark = false;
  bool allow_tf32 = true;   // PyTorch's default for cuDNN convolutions
  int64_t nms_capacity = 8192;  // candidates the box head's class-wise NMS considers per image
  // torchvision's own arithmetic where the fast path reorders it: FrozenBatchNorm2d kept as a
  // separate multiply-add, no merged 1x1 convolutions or linear layers, fc6 on torchvision's
  // flatten order (used with channels_last and fused_conv off, for bitwise parity checks).
  bool exact = false;
};

inline bool is_cuda(const Settings& s) { return s.device >= 0; }

// A convolution with BatchNorm folded in (or its own bias), ready on the engine's device.
struct Conv {
  at::Tensor weight, bias;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  // Settings::exact: FrozenBatchNorm2d after a bias-free convolution, as x * bn_scale + bn_shift.
  at::Tensor bn_scale, bn_shift;
};

// How `run_conv` finishes a convolution.
enum class Act { None, Relu };

// x -> conv(x) [+ residual] [relu]. Fused cuDNN kernels on CUDA when enabled.
at::Tensor run_conv(const Conv& conv, const at::Tensor& x, Act act, const Settings& settings,
                    const at::Tensor* residual = nullptr);

// The dtype of the engine's activations.
inline at::ScalarType act_dtype(const Settings& s) { return s.half ? at::kHalf : at::kFloat; }

// Per-image values the graph reads from device memory (float32 [N, 4]): resized height and width
// (what torchvision calls image_sizes), and the original/resized ratios of height and width.
enum ImageInfo { kResizedH = 0, kResizedW = 1, kRatioH = 2, kRatioW = 3 };

}  // namespace dn
