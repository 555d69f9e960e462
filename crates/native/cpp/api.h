// detbench native engine: the C interface of libdetbench_native.so, which the Rust crate loads at
// run time (crates/native/src/ffi.rs declares the same items). Every function catches C++
// exceptions: it returns 0 on success or a dn::ErrorKind number, with a message in `error`.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

typedef struct dn_engine dn_engine;

typedef struct {
  int32_t device;  // CUDA device index, -1 = CPU
  int32_t half;
  int32_t graphs;
  int32_t fused_conv;
  int32_t channels_last;
  int32_t cudnn_benchmark;
  int32_t allow_tf32;
  int64_t nms_capacity;
  int32_t exact;
} dn_settings;

typedef struct {
  const uint8_t* bgr;
  int64_t height;
  int64_t width;
} dn_image;

typedef struct {
  int64_t count;
  const float* boxes;        // [count, 4]
  const float* scores;       // [count]
  const int64_t* labels;     // [count]
  int32_t inexact;
  const uint32_t* mask_bits; // [count, width, mask_words] or null
  int64_t mask_words;
} dn_result;

typedef struct {
  double gpu_ms;
  double forward_ms;
  int64_t graph_kernels;
  int64_t other_launches;
  int32_t graphed;
  int32_t new_bucket;
} dn_timing;

int dn_engine_open(const char* path, const dn_settings* settings, dn_engine** out, char* error,
                   size_t error_length);
// Results stay valid until the next call on the engine.
int dn_engine_detect(dn_engine* engine, const dn_image* images, int64_t count, dn_result* results,
                     char* error, size_t error_length);
void dn_engine_timing(const dn_engine* engine, dn_timing* out);
// JSON, valid until the next call on the engine.
const char* dn_engine_describe(dn_engine* engine);
int dn_engine_profile_backbone(dn_engine* engine, int64_t n, int64_t h, int64_t w, int32_t iters,
                               double* median_ms, double* flops, char* error, size_t error_length);
// Writes each intermediate tensor of one un-graphed forward pass to `folder`/<stage>.npy.
int dn_engine_dump_stages(dn_engine* engine, const dn_image* images, int64_t count,
                          const char* folder, char* error, size_t error_length);
void dn_engine_free(dn_engine* engine);

// The kernels compiled to PTX for `arch` (e.g. "compute_90") by NVRTC, no GPU needed. The text
// is valid until the next call.
int dn_compile_kernels(const char* arch, const char** ptx, char* error, size_t error_length);

// Single operations on host buffers (CPU), for the parity tests against torchvision.
// `half`: the boxes and scores rounded to fp16 first (the engine's fp16 path); `cuda_semantics`:
// torchvision's CUDA choices (coordinate trick up to 100,000 box elements, IoU compared in float)
// instead of its CPU ones (4,000, double).
int dn_op_batched_nms(const float* boxes, const float* scores, const int64_t* idxs, int64_t n,
                      double iou_threshold, int32_t half, int32_t cuda_semantics, int64_t* keep,
                      int64_t* keep_count, char* error, size_t error_length);
int dn_op_roi_align(const float* features, int64_t channels, int64_t height, int64_t width,
                    const float* rois, int64_t num_rois, double spatial_scale, int64_t pooled,
                    int64_t sampling_ratio, int32_t aligned, float* out, char* error,
                    size_t error_length);
int dn_op_multiscale_roi_align(const float* const* features, const int64_t* heights,
                               const int64_t* widths, int64_t levels, int64_t channels,
                               const float* boxes, int64_t num_boxes, int64_t image_h,
                               int64_t image_w, int64_t pooled, int64_t sampling_ratio, float* out,
                               char* error, size_t error_length);
int dn_op_decode_boxes(const float* codes, const float* boxes, int64_t m, const double* weights,
                       double clip, float* out, char* error, size_t error_length);
// MultiScaleRoIAlign's LevelMapper: boxes [m, 4] (as fp16 first when `half`) -> out [m], the
// level index counted from k_min.
int dn_op_map_levels(const float* boxes, int64_t m, int32_t half, int64_t k_min, int64_t k_max,
                     int64_t* out, char* error, size_t error_length);
// GeneralizedRCNNTransform on one image through the engine's fused preprocessing (CPU): bgr
// [height, width, 3] -> out [3, pad_h, pad_w] float32 (resized to out_h x out_w, zero padding).
int dn_op_preprocess(const uint8_t* bgr, int64_t height, int64_t width, int64_t out_h,
                     int64_t out_w, int64_t pad_h, int64_t pad_w, const double* mean,
                     const double* std, float* out, char* error, size_t error_length);
int dn_op_paste_masks(const float* masks, int64_t count, int64_t m, const float* boxes,
                      int64_t image_h, int64_t image_w, uint32_t* bits, char* error,
                      size_t error_length);
}
