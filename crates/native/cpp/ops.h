// detbench native engine: the operations torchvision runs through its own kernels or through
// shape-changing indexing, rewritten for fixed shapes with device-side counts so that a whole
// forward pass can be captured in one CUDA graph. Each runs the kernels of
// kernels/kernels.cuh: compiled by NVRTC on CUDA tensors (ops_cuda.cpp), looped on the CPU
// (ops_cpu.cpp).
#pragma once

#include "common.h"

namespace dn {

// Greedy NMS over boxes already sorted by decreasing score, per image of a batch.
//   boxes [N, C, 4] float32 (fp16 boxes converted exactly; `half_boxes` rounds as half math),
//   classes [N, C] int64 (suppression only within a class), counts [N] int64 (valid prefix).
// Returns keep [N, max_keep] int64 positions in the sorted list (-1 after the last) and
// keep_count [N] int64. `compare_double`: compare the IoU with the threshold in double, as
// torchvision's CPU kernel does (its CUDA kernel compares in float).
std::pair<at::Tensor, at::Tensor> nms_sorted(const at::Tensor& boxes, const at::Tensor& classes,
                                             const at::Tensor& counts, double threshold,
                                             bool half_boxes, int64_t max_keep,
                                             bool compare_double);

// Multi-level RoIAlign: rois [R, 5] float32 (batch index, x1, y1, x2, y2), level [R] int64
// choosing one of `features` (each [N, C, H, W], any layout) with its spatial scale. Returns
// [R, pooled, pooled, C] in the features' dtype (the channels-last order of [R, C, p, p]).
at::Tensor roi_align_levels(const std::vector<at::Tensor>& features,
                            const std::vector<double>& scales, const at::Tensor& rois,
                            const at::Tensor& level, int64_t pooled, int64_t sampling_ratio,
                            bool aligned);

// Pastes masks [D, m, m] (probabilities of each detection's class) at boxes [D, 4] int64 (the
// expanded, truncated boxes of paste_masks_in_image) into an image_h x image_w image and
// thresholds them: int32 bits [D, image_w, ceil(image_h / 32)], column-major bit planes.
// Only the first count[0] detections are written.
at::Tensor paste_masks(const at::Tensor& masks, const at::Tensor& boxes, const at::Tensor& count,
                       int64_t image_h, int64_t image_w, double threshold);

// GeneralizedRCNNTransform's preprocessing of one image into `out` ([3, H, W] slot of the padded
// batch, any layout, the model's dtype): bgr is the decoded image (height x width x 3 bytes, on
// out's device), table the 256 values pixel / 255 (float32), mean/std as in the model. Writes
// every element of the slot (zeros past the resized size).
void preprocess_into(const at::Tensor& bgr, int64_t height, int64_t width, int64_t out_h,
                     int64_t out_w, const at::Tensor& table, const std::vector<double>& mean,
                     const std::vector<double>& std, at::Tensor out);

// The CUDA versions (ops_cuda.cpp) and the kernel compiler (nvrtc.cpp).
namespace cuda {
std::pair<at::Tensor, at::Tensor> nms_sorted(const at::Tensor& boxes, const at::Tensor& classes,
                                             const at::Tensor& counts, double threshold,
                                             bool half_boxes, int64_t max_keep);
at::Tensor roi_align_levels(const std::vector<at::Tensor>& features,
                            const std::vector<double>& scales, const at::Tensor& rois,
                            const at::Tensor& level, int64_t pooled, int64_t sampling_ratio,
                            bool aligned);
at::Tensor paste_masks(const at::Tensor& masks, const at::Tensor& boxes, const at::Tensor& count,
                       int64_t image_h, int64_t image_w, double threshold);
void preprocess_into(const at::Tensor& bgr, const at::Tensor& table, const void* params,
                     at::Tensor out);
// Compiles kernels.cuh to PTX for `arch` (e.g. "compute_90"); throws EngineError(CudaLibrary)
// when NVRTC cannot be loaded, EngineError(Other) with the log when compilation fails.
std::string compile_ptx(const std::string& arch);
// Compiles and loads the kernels for the current device now (they are otherwise compiled on
// first use), so that a missing NVRTC or driver is reported when the engine opens.
void ensure_kernels();
// Where NVRTC was loaded from.
std::string nvrtc_library();
}  // namespace cuda

}  // namespace dn
