// detbench native engine: the engine's internal types, shared by engine.cpp (planning,
// preprocessing, results, the CPU path) and engine_cuda.cpp (buckets, graphs, the CUDA path).
#pragma once

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>

#include "engine.h"

namespace dn {

// One call's batch: sizes after torchvision's resize, the padded batch shape, the pooler.
struct Engine::Batch {
  int64_t n = 0, height = 0, width = 0;   // padded
  std::vector<int64_t> resized_h, resized_w;
  std::vector<float> info;                 // [n, 4] ImageInfo
  Pooler pooler;
  std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t> key() const {
    return {n, height, width, pooler.k_min, pooler.k_max};
  }
};

// Static buffers and the captured graph of one batch shape.
struct Engine::Bucket {
  at::Tensor images;  // [n, 3, H, W] the engine's dtype (channels-last when set)
  at::Tensor info;    // [n, 4] float32
  ShapeConsts consts;
  Outputs out;        // the graph's outputs (valid after each replay)
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  bool graphed = false;
  std::string graph_error;  // why the forward pass could not be captured, if it could not
  int64_t graph_kernels = 0;
  int64_t replays = 0;
};

struct Engine::CudaState {
  c10::cuda::CUDAStream stream;
  c10::MempoolId_t pool;
  at::Tensor packed_host;                 // pinned
  std::vector<at::Tensor> staging;        // pinned, one per image slot
  std::vector<at::Tensor> masks_host;     // pinned, one per image slot
  at::Tensor info_host;                   // pinned
  explicit CudaState(c10::cuda::CUDAStream s) : stream(s) {}
};

// A pinned host tensor of at least `bytes` bytes, reusing `t` when it is large enough.
at::Tensor pinned_bytes(at::Tensor& t, int64_t bytes);

}  // namespace dn
