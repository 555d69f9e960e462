// detbench native engine: the CUDA path (see engine.h): a dedicated stream, one bucket per
// batch shape with static input buffers and the forward pass captured as a CUDA graph (all
// buckets share one memory pool: they are replayed one at a time), pinned host buffers, and one
// stream synchronisation per call. A forward pass that cannot be captured (an operation that
// synchronises with the host) runs un-graphed and the bucket records why.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/core/InferenceMode.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <sstream>

#include "backbone.h"
#include "engine_impl.h"
#include "ops.h"

namespace dn {

at::Tensor pinned_bytes(at::Tensor& t, int64_t bytes) {
  if (!t.defined() || t.numel() < bytes) {
    t = at::empty({std::max<int64_t>(bytes, 1)}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  }
  return t;
}

std::unique_ptr<Engine::CudaState> Engine::make_cuda_state(const Settings& s) {
  if (!at::hasCUDA() || at::cuda::device_count() == 0) {
    throw EngineError(ErrorKind::CudaLibrary,
                      "CUDA was asked for, but libtorch sees no CUDA device (no NVIDIA driver, no "
                      "GPU, or CUDA_VISIBLE_DEVICES hides them)");
  }
  if (s.device >= at::cuda::device_count()) {
    throw EngineError(ErrorKind::BadInput, "cuda:" + std::to_string(s.device) + " was asked for, but there are " +
                                               std::to_string(at::cuda::device_count()) + " CUDA device(s)");
  }
  at::globalContext().setBenchmarkCuDNN(s.cudnn_benchmark);
  at::globalContext().setAllowTF32CuDNN(s.allow_tf32);
  c10::cuda::CUDAGuard device_guard(static_cast<c10::DeviceIndex>(s.device));
  auto state = std::make_unique<CudaState>(
      c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(s.device)));
  state->pool = at::cuda::graph_pool_handle();
  cuda::ensure_kernels();
  return state;
}

namespace {

int64_t count_kernel_nodes(cudaGraph_t graph) {
  size_t count = 0;
  if (cudaGraphGetNodes(graph, nullptr, &count) != cudaSuccess) return -1;
  std::vector<cudaGraphNode_t> nodes(count);
  if (cudaGraphGetNodes(graph, nodes.data(), &count) != cudaSuccess) return -1;
  int64_t kernels = 0;
  for (auto node : nodes) {
    cudaGraphNodeType type;
    if (cudaGraphNodeGetType(node, &type) == cudaSuccess && type == cudaGraphNodeTypeKernel) kernels++;
  }
  return kernels;
}

}  // namespace

void Engine::capture(Bucket& b) {
  b.graph = std::make_unique<at::cuda::CUDAGraph>(/*keep_graph=*/true);
  bool begun = false;
  try {
    b.graph->capture_begin(cuda_->pool);
    begun = true;
    b.out = detector_->forward(b.images, b.info, b.consts);
    begun = false;
    b.graph->capture_end();
    b.graph_kernels = count_kernel_nodes(b.graph->raw_cuda_graph());
    b.graph->instantiate();
    b.graphed = true;
  } catch (const std::exception& e) {
    b.graph_error = e.what();
    if (begun) {
      try {
        b.graph->capture_end();
      } catch (...) {
      }
    }
    cudaGetLastError();
    b.graph.reset();
    b.graphed = false;
    if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) throw;
  }
}

Engine::Bucket& Engine::bucket(const Batch& batch) {
  auto it = buckets_.find(batch.key());
  if (it != buckets_.end()) return *it->second;
  auto b = std::make_unique<Bucket>();
  auto options = at::TensorOptions().dtype(act_dtype(s_)).device(at::kCUDA, s_.device);
  b->images = at::zeros({batch.n, 3, batch.height, batch.width}, options);
  if (s_.channels_last) b->images = b->images.contiguous(at::MemoryFormat::ChannelsLast);
  // Plausible sizes for the warm-up and capture (the real ones are copied in before each replay).
  std::vector<float> info;
  for (int64_t i = 0; i < batch.n; i++) {
    info.insert(info.end(), {static_cast<float>(batch.height), static_cast<float>(batch.width), 1.0f, 1.0f});
  }
  b->info = at::tensor(info, at::kFloat).view({batch.n, 4}).to(options.dtype(at::kFloat));
  b->consts = detector_->prepare(b->images, batch.pooler);
  // Warm-up: cuDNN/cuBLAS handles, workspaces and algorithm choices before the capture.
  b->out = detector_->forward(b->images, b->info, b->consts);
  cuda_->stream.synchronize();
  if (s_.graphs) capture(*b);
  cuda_->stream.synchronize();
  return *buckets_.emplace(batch.key(), std::move(b)).first->second;
}

std::vector<ImageResult>& Engine::detect_cuda(const std::vector<ImageView>& images,
                                              const Batch& batch) {
  c10::cuda::CUDAGuard device_guard(static_cast<c10::DeviceIndex>(s_.device));
  c10::cuda::CUDAStreamGuard stream_guard(cuda_->stream);
  const size_t n = images.size();
  if (cuda_->staging.size() < n) cuda_->staging.resize(n);
  if (cuda_->masks_host.size() < n) cuda_->masks_host.resize(n);
  try {
    timing_.new_bucket = buckets_.count(batch.key()) == 0;
    Bucket& b = bucket(batch);
    at::cuda::CUDAEvent start(cudaEventDefault), fwd_start(cudaEventDefault),
        fwd_end(cudaEventDefault), end(cudaEventDefault);
    start.record(cuda_->stream);
    preprocess(images, batch, b.images, b.info);
    fwd_start.record(cuda_->stream);
    if (b.graphed) {
      b.graph->replay();
    } else {
      b.out = detector_->forward(b.images, b.info, b.consts);
    }
    b.replays++;
    fwd_end.record(cuda_->stream);
    std::vector<at::Tensor> masks;
    if (detector_->masks()) {
      for (size_t i = 0; i < n; i++) {
        const auto idx = static_cast<int64_t>(i);
        auto bits = paste_masks(b.out.mask_probs[idx], b.out.paste_boxes[idx],
                                b.out.count.narrow(0, idx, 1), images[i].height, images[i].width, 0.5);
        auto& host = cuda_->masks_host[i];
        pinned_bytes(host, bits.numel() * 4);
        auto view = host.narrow(0, 0, bits.numel() * 4).view(at::kInt).view(bits.sizes());
        view.copy_(bits, /*non_blocking=*/true);
        masks.push_back(view);
        timing_.other_launches += 2;
      }
    }
    pinned_bytes(cuda_->packed_host, b.out.packed.numel() * 4);
    auto packed = cuda_->packed_host.narrow(0, 0, b.out.packed.numel() * 4)
                      .view(at::kFloat)
                      .view(b.out.packed.sizes());
    packed.copy_(b.out.packed, /*non_blocking=*/true);
    timing_.other_launches += 1;
    end.record(cuda_->stream);
    cuda_->stream.synchronize();
    timing_.gpu_ms = start.elapsed_time(end);
    timing_.forward_ms = fwd_start.elapsed_time(fwd_end);
    timing_.graphed = b.graphed;
    timing_.graph_kernels = b.graphed ? b.graph_kernels : 0;
    read_results(images, packed, masks);
    return results_;
  } catch (const c10::OutOfMemoryError& e) {
    buckets_.erase(batch.key());
    cudaGetLastError();
    c10::cuda::CUDACachingAllocator::emptyCache();
    throw EngineError(ErrorKind::OutOfMemory,
                      "out of GPU memory for a batch of " + std::to_string(batch.n) + " at " +
                          std::to_string(batch.height) + "x" + std::to_string(batch.width) + ": " +
                          std::string(e.what()).substr(0, 300));
  }
}

std::string Engine::describe_cuda() const {
  if (!is_cuda(s_)) return "";
  std::ostringstream o;
  const auto* props = at::cuda::getDeviceProperties(s_.device);
  o << ",\"gpu\":\"" << props->name << "\",\"compute_capability\":\"" << props->major << "."
    << props->minor << "\",\"nvrtc\":\"" << cuda::nvrtc_library() << "\"";
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  o << ",\"cuda_runtime\":" << runtime;
  return o.str();
}

std::pair<double, double> Engine::profile_backbone(int64_t n, int64_t h, int64_t w, int iters) {
  if (!is_cuda(s_)) throw EngineError(ErrorKind::BadInput, "the backbone profile runs on CUDA only");
  c10::InferenceMode mode;
  c10::cuda::CUDAGuard device_guard(static_cast<c10::DeviceIndex>(s_.device));
  c10::cuda::CUDAStreamGuard stream_guard(cuda_->stream);
  auto options = at::TensorOptions().dtype(act_dtype(s_)).device(at::kCUDA, s_.device);
  auto input = at::randn({n, 3, h, w}, options);
  if (s_.channels_last) input = input.contiguous(at::MemoryFormat::ChannelsLast);
  detector_->backbone(input);
  reset_conv_flops();
  detector_->backbone(input);
  const double flops = conv_flops();
  cuda_->stream.synchronize();
  at::cuda::CUDAGraph graph;
  graph.capture_begin();  // a private pool: this graph dies with the call
  auto features = detector_->backbone(input);
  graph.capture_end();
  std::vector<double> samples;
  for (int i = 0; i < iters; i++) {
    at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
    a.record(cuda_->stream);
    graph.replay();
    b.record(cuda_->stream);
    b.synchronize();
    samples.push_back(a.elapsed_time(b));
  }
  std::sort(samples.begin(), samples.end());
  return {samples.empty() ? 0.0 : samples[samples.size() / 2], flops};
}

}  // namespace dn
